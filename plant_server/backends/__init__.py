"""Plant backends: what the plant loop reads states from and applies forces to.

A backend is driven by the plant loop on one time axis (nanoseconds):

- `apply(u, t_ns)`: from `t_ns` on, the plant's input is `u`, one float per input (zero-order
  hold).
  The loop calls it when a valid control arrives and when it applies the safe output.
- `advance(t_ns) -> state`: bring the plant to `t_ns` and return its state (a view owned by
  the backend; copy it to keep it).
- `describe()`: name, state names and units, limits, parameters (sent in the handshake).

- `align_start_ns(t_ns) -> t_ns`: the first tick, moved so ticks follow a rig's states
  (the simulation returns `t_ns`);
- `fault`: None, or why the plant can no longer be trusted (a rig gone silent, unplugged
  or faulted, naming its port); the loop checks it every tick, applies its safe output and
  ends the run with it (always None for the simulation).

`SimBackend` integrates a numba model; `serial.SerialBackend` bridges a rig on a serial
port (firmware_protocol), imported from its module so the simulation needs no pyserial.
"""

from plant_server.backends.sim import SimBackend

__all__ = ["SimBackend"]
