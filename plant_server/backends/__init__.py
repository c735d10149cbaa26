"""Plant backends: what the plant loop reads states from and applies forces to.

A backend is driven by the plant loop on one time axis (nanoseconds):

- `apply(force_n, t_ns)`: from `t_ns` on, the plant's input is `force_n` (zero-order hold).
  The loop calls it when a valid control arrives and when it applies the safe output.
- `advance(t_ns) -> state`: bring the plant to `t_ns` and return its state (a view owned by
  the backend; copy it to keep it).
- `describe()`: name, state names and units, limits, parameters (sent in the handshake).

`SimBackend` integrates a numba model; a rig backend reads its frames instead.
"""

from plant_server.backends.sim import SimBackend

__all__ = ["SimBackend"]
