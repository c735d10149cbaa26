"""The plant's loops: they own the plant node (`PlantServer`) and drive it tick by tick.

`realtime`: each plant period the loop (1) advances the plant to this tick's grid time,
integrating piecewise so each control acts from the moment it arrived (zero-order hold
between arrivals, as on a rig), (2) scores the previous state's deadline, (3) checks the
watchdog and the safety gates, (4) publishes the state, then (5) waits for the next tick
while handling incoming messages as they arrive, so each control is timestamped on arrival.
The wait also ends at the watchdog's deadline, so an expiry reaches the safe output at once,
not at the next tick.

`lockstep`: the plant advances one period per control that answers the newest state:
deterministic and as fast as the link allows. A lockstep run ends at its first trip (there
is no operator to clear a run that goes as fast as the link allows).

Start-up: the watchdog is armed at t0 with the controller's start-up budget
(`first_control_timeout_ns`: its clock sync and warm-up), and from its first valid control on
with the watchdog's own timeout; deadlines are scored from the first control on.
"""

from __future__ import annotations

from hil.link import messages as msg
from hil.link.transport import wait_until
from hil.runtime.schedule import Schedule
from plant_server.server import PlantServer


def run(server: PlantServer) -> str:
    """Run until the duration ends or a stop; return the end reason."""
    if not _wait_for_controller(server):
        server.go_safe(server.end_reason, server.clock())
        return server.end_reason
    if server.on_attach is not None:
        server.on_attach()
    _hold_until_t0(server)
    # shm lockstep: the loop's thread to its own CPU (dataplane.loop_cpus)
    server.data.start_loop(server.times.lockstep)
    server.guard.watchdog.arm(first_timeout_ns=server.settings.first_control_timeout_ns)
    if server.times.lockstep:
        _run_lockstep(server)
    else:
        _run_realtime(server)
    _send_final(server)
    return server.end_reason


def _hold_until_t0(server: PlantServer) -> None:
    """Hold the initial state until t0, still answering handshakes and operators."""

    def drain_and_go_on() -> bool:
        server.drain()
        return False

    wait_until(server.sock.sock, server.times.t0_ns, drain_and_go_on,
               spin_ns=server.settings.spin_ns, clock=server.clock)


def _wait_for_controller(server: PlantServer) -> bool:
    clock = server.clock
    give_up = clock() + server.settings.attach_timeout_ns
    while server.peer is None:
        if server.stop_requested():
            server.end_reason = "stopped before a controller attached"
            return False
        if server.guard.latch.estop_reason is not None:
            server.end_reason = f"estop: {server.guard.latch.estop_reason}"
            return False
        now = clock()
        if now >= give_up:
            server.end_reason = "no controller attached"
            return False
        wait_until(server.sock.sock, min(give_up, now + 50_000_000), server.drain, spin_ns=0,
                   clock=clock)
    return True


def stopping(server: PlantServer, now: int) -> bool:
    """A stop signal, an e-stop or the controller's bye: safe output first, then end."""
    if server.stop_requested():
        server.go_safe("stopped by a signal", now)
        server.end_reason = "stopped"
    elif server.guard.latch.estop_reason is not None:
        server.end_reason = f"estop: {server.guard.latch.estop_reason}"
    elif server.ending:
        server.go_safe("controller left", now)
        server.end_reason = "controller left"
    else:
        return False
    return True


def _run_realtime(server: PlantServer) -> None:
    period = server.settings.period_ns
    total = round(server.settings.duration_s * 1e9 / period)
    sched = Schedule(server.times.t0_ns, period)
    prev_grid = server.times.t0_ns
    clock = server.clock
    server.backend.start(server.times.t0_ns)
    while True:
        grid = sched.deadline_ns
        now = clock()
        if stopping(server, now):
            return
        server.lateness_ns = now - grid
        server.latency.record_ns("plant_lateness", server.lateness_ns)
        server.state = server.backend.advance(grid)
        if _backend_failed(server, now):
            return
        if server.seq >= 0:
            # The previous state's deadline: answered before this tick? Ticks the plant
            # itself skipped (it woke a whole period late) count as misses too.
            server.score_deadline(server.intake.answered_seq >= server.seq, now)
            for _ in range((grid - prev_grid) // period - 1):
                server.score_deadline(False, now)
        prev_grid = grid
        server.inbox.stranger.open()
        server.check_watchdog(now)
        server.check_state(now)
        server.cycles += 1
        if sched.index >= total:
            server.end_reason = "duration"
            return
        server.publish(server.flags())
        skipped = sched.advance(clock())
        if skipped and server.counters.allow_warning("overrun"):
            server.log.warning("plant overrun: ticks skipped", skipped=skipped,
                               suppressed=server.counters.suppressed("overrun"))
        _wait_tick(server, sched.deadline_ns)


def _backend_failed(server: PlantServer, now: int) -> bool:
    """The backend's fault (a rig silent, gone or faulted; a simulated model whose step
    failed): the plant goes safe and the run ends with it as the reason, told to the
    controller in the final state and bye."""
    fault = server.backend.fault
    if fault is None:
        return False
    server.go_safe(fault, now)
    server.end_reason = fault
    return True


def _wait_tick(server: PlantServer, tick_ns: int) -> None:
    """Wait for the next tick, handling messages; wake early for the watchdog's deadline
    and for messages held by fault injection."""
    watchdog, clock, spin = server.guard.watchdog, server.clock, server.settings.spin_ns
    while not server.ending:
        target = tick_ns
        wd = watchdog.deadline_ns
        if wd is not None and not watchdog.latched and wd < target:
            target = wd
        held = server.faulty.next_due_ns() if server.faulty is not None else None
        if held is not None and held < target:
            target = held
        server.data.wait_until(target, server.drain, spin, clock)
        now = clock()
        server.release_held(now)
        server.check_watchdog(now)
        if now >= tick_ns:
            return


def _run_lockstep(server: PlantServer) -> None:
    period = server.settings.period_ns
    total = round(server.settings.duration_s * 1e9 / period)
    clock = server.clock
    server.backend.start(0)
    for k in range(total + 1):
        if stopping(server, clock()):
            return
        server.times.sim_t_ns = k * period
        server.state = server.backend.advance(server.times.sim_t_ns)
        if _backend_failed(server, clock()):
            return
        server.check_state(clock())
        server.cycles += 1
        if k == total:
            server.end_reason = "duration"
            return
        if server.guard.latch.safe:
            server.end_reason = server.guard.latch.reason or "safe"
            return
        server.publish(server.flags())
        if not _lockstep_answer(server):
            return


def _lockstep_answer(server: PlantServer) -> bool:
    """Wait for the answer to the newest state and score it; False when the run ends."""
    clock = server.clock
    timeout = server.settings.watchdog_timeout_ns
    if not server.guard.under_control:
        timeout = max(timeout, server.settings.first_control_timeout_ns)
    server.data.wait_for(timeout, server.drain, server.settings.lockstep_spin_ns, clock)
    if stopping(server, clock()):
        return False
    if server.guard.latch.safe:  # tripped while waiting (a NaN control)
        server.end_reason = server.guard.latch.reason or "safe"
        return False
    answered = server.intake.answered_seq >= server.seq
    if not answered:
        server.check_watchdog(clock())
        if server.guard.watchdog.latched:
            server.end_reason = "watchdog: controller silent in lockstep"
            return False
    server.score_deadline(answered, clock())
    return True


def _send_final(server: PlantServer) -> None:
    # The actuator is left at the safe output whatever ended the run.
    guard = server.guard
    if not guard.latch.safe:
        guard.apply_safe(guard.gates.safe_input(server.state),
                    guard.times.backend_time(server.clock()))
    server.publish(server.flags() | msg.FLAG_FINAL)
    if server.peer is not None:
        server.sock.send(server.peer, msg.encode("bye", server.end_reason))
