"""The shared-memory data plane (hil/link/shm.py, hil/link/dataplane.py) between real
processes: no torn or reordered message through the seqlock under a writer at full speed,
the doorbell wakes a sleeping reader, every wait is bounded, a killed plant's segment is
replaced and a live one refused, only the attached session's controls count, and a control
from shared memory is validated as one from the wire."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NO_HTML

from hil.link import messages as msg
from hil.link import shm
from hil.link.dataplane import (
    LOOP_WORK_NS,
    MAX_LOOP_SHARE,
    ShmControllerData,
    ShmPlantData,
    control_message,
    controller_data,
    loop_cpus,
    pin_loop,
    spin_ns,
)

ROOT = Path(__file__).resolve().parents[3]
N = 6

# A writer at full speed for at least N messages and S seconds (argv 2 and 3; the time so that
# a reader on a loaded machine gets the CPU while it writes): state seq k carries t_ns = 7k,
# flags = k % 5 and every entry = k. It prints the last seq it wrote.
_WRITER = """
import sys, time
from hil.link import shm
seg = shm.Segment.open(sys.argv[1])
w = shm.StateWriter(seg)
print("ready", flush=True)
n = int(sys.argv[2])
k, until = 0, time.monotonic() + float(sys.argv[3] if len(sys.argv) > 3 else 0)
while k < n or time.monotonic() < until:
    k += 1
    w.write(k, 7 * k, [float(k)] * seg.n_states, k % 5)
seg.close()
print(k, flush=True)
"""

# Holds a segment as a plant would, then waits to be killed.
_HOLDER = """
import sys, time
from hil.link import shm
seg = shm.Segment.create(sys.argv[1], 6)
print(seg.name, flush=True)
time.sleep(600)
"""


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path}/test-{time.monotonic_ns()}"


@pytest.fixture
def segment(tmp_path: Path):  # type: ignore[no-untyped-def]
    seg = shm.Segment.create(_endpoint(tmp_path), N)
    try:
        yield seg
    finally:
        seg.close()


def test_a_reader_never_takes_a_torn_or_older_state_from_a_writer_at_full_speed(
        segment: shm.Segment) -> None:
    writer = _python(_WRITER, segment.name, "200000", "1.0")
    reader = shm.StateReader(segment)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    taken, last, first = 0, 0, 0
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:
        got = reader.take()
        if got is None:
            if writer.poll() is not None and not reader.has_new():
                break  # the writer is done and everything it wrote was looked at
            continue
        seq, t_ns, flags, values = got
        assert seq > last, "newest-state: never an older one"
        assert t_ns == 7 * seq and flags == seq % 5 and values == [float(seq)] * N, got
        taken += 1
        last = seq
        first = first or seq
    assert writer.wait(timeout=60) == 0, writer.stderr.read() if writer.stderr else ""
    total = int(writer.stdout.read())
    assert total >= 200_000 and last == total
    # Every message from the first taken on was taken or counted as overwritten, none both.
    assert taken + reader.overwritten == total - first + 1
    # It raced the writer: it took a few messages and caught it mid-write at least once (on
    # a loaded machine it may get the CPU for a small part of the writer's second).
    assert taken > 10 and reader.retries > 0, (taken, reader.overwritten, reader.retries, total)


def test_a_state_published_before_the_controller_opened_the_segment_is_taken(
        segment: shm.Segment) -> None:
    # The plant may start its clock while the controller still syncs clocks: in lockstep
    # state 0 is the one it waits on, so the reader must not start past it.
    shm.StateWriter(segment).write(0, 5, [0.25] * N, 0)
    reader = shm.StateReader(segment)
    assert reader.take() == (0, 5, 0, [0.25] * N)
    assert reader.take() is None and reader.overwritten == 0


def test_the_doorbell_wakes_a_sleeping_reader_and_a_silent_peer_only_costs_the_timeout(
        segment: shm.Segment) -> None:
    reader = shm.StateReader(segment)
    # Silence: the wait ends at its deadline (no spinning for ever), having slept on the bell.
    cpu0, t0 = time.thread_time_ns(), time.monotonic_ns()
    assert not reader.wait(t0 + 30_000_000, reader.has_new, time.monotonic_ns)
    waited, cpu = time.monotonic_ns() - t0, time.thread_time_ns() - cpu0
    assert 30_000_000 <= waited < 30_000_000 + 200_000_000
    assert cpu < waited / 2  # it slept, it did not spin
    assert segment.state_bell.sleeps >= 2  # in slices of at most MAX_SLEEP_NS
    # A write from another process wakes it long before its 20 s deadline.
    writer = _python(_WRITER.replace("print(\"ready\", flush=True)",
                                     "print('ready', flush=True); time.sleep(0.3)"),
                     segment.name, "1")
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    t0 = time.monotonic_ns()
    assert reader.wait(t0 + 20_000_000_000, reader.has_new, time.monotonic_ns)
    assert time.monotonic_ns() - t0 < 5_000_000_000
    assert reader.take() == (1, 7, 1, [1.0] * N)
    assert writer.wait(timeout=60) == 0


def test_a_killed_plants_segment_is_replaced_and_a_live_ones_refused(tmp_path: Path) -> None:
    endpoint = _endpoint(tmp_path)
    holder = _python(_HOLDER, endpoint)
    try:
        assert holder.stdout is not None
        name = holder.stdout.readline().strip()
        assert name == shm.segment_name(endpoint) and Path(f"/dev/shm/{name}").exists()
        with pytest.raises(shm.SharedMemoryError,
                           match=rf"belongs to a running hil-plant \(pid {holder.pid}\): stop it "
                                 "first, or use another plant.endpoint"):
            shm.Segment.create(endpoint, N)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert Path(f"/dev/shm/{name}").exists()  # a SIGKILL leaves it behind
        seg = shm.Segment.create(endpoint, N)  # ... and the next plant replaces it
        try:
            assert seg.plant_pid == os.getpid() and seg.session == 0
        finally:
            seg.close()
        assert not Path(f"/dev/shm/{name}").exists()  # the owner unlinks it
    finally:
        holder.kill()
        holder.wait()


def test_a_starting_plant_sweeps_killed_plants_segments_under_other_endpoints(
        tmp_path: Path) -> None:
    """Real plants' segments (the holder creates one as a plant does): a SIGKILLed one's is
    removed when any plant starts; a live one's, another pid namespace's, a foreign file named
    hil-*, and one being created (no magic yet) stay."""
    live = _python(_HOLDER, _endpoint(tmp_path / "live"))
    killed = _python(_HOLDER, _endpoint(tmp_path / "killed"))
    other_ns = _python(_HOLDER, _endpoint(tmp_path / "other-ns"))
    foreign = Path(f"/dev/shm/hil-test-foreign-{os.getpid()}")
    names: dict[str, str] = {}
    try:
        for key, holder in (("live", live), ("killed", killed), ("other_ns", other_ns)):
            assert holder.stdout is not None
            names[key] = holder.stdout.readline().strip()
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        other_ns.send_signal(signal.SIGKILL)
        other_ns.wait(timeout=30)
        with open(f"/dev/shm/{names['other_ns']}", "r+b") as f:  # as if from another container
            f.seek(32)
            f.write((12345).to_bytes(8, "little"))
        foreign.write_bytes(b"\0" * 512)  # not ours: no magic
        assert all(Path(f"/dev/shm/{n}").exists() for n in names.values())

        seg = shm.Segment.create(_endpoint(tmp_path / "new"), N)
        try:
            assert not Path(f"/dev/shm/{names['killed']}").exists()
            assert Path(f"/dev/shm/{names['live']}").exists()
            assert Path(f"/dev/shm/{names['other_ns']}").exists()
            assert foreign.exists()
        finally:
            seg.close()
        assert shm.sweep_stale() == []  # nothing else of a dead plant in our namespace
    finally:
        for holder in (live, killed, other_ns):
            holder.kill()
            holder.wait()
        foreign.unlink(missing_ok=True)
        for name in names.values():
            shm._unlink(name)


def test_a_controller_on_another_host_is_told_to_use_zmq() -> None:
    with pytest.raises(shm.SharedMemoryError, match=r"segment /dev/shm/hil-nothing-here is not "
                       r"on this machine: .* use run.transport zmq across machines"):
        shm.Segment.open("hil-nothing-here")


class _Sock:
    """Only the ZeroMQ end's surface the data plane reads: endpoint and `sock` for EVENTS."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PAIR)
        self.endpoint = endpoint

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def test_only_the_attached_sessions_controls_count_and_each_is_validated(
        tmp_path: Path) -> None:
    sock = _Sock(_endpoint(tmp_path))
    plant = ShmPlantData(sock, N, 1, 0)  # type: ignore[arg-type]
    try:
        first = plant.attach()
        assert first["transport"] == "shm" and first["shm"]["segment"] == plant.segment.name
        ctl = controller_data(sock, first)  # type: ignore[arg-type]
        assert isinstance(ctl, ShmControllerData)
        plant.send_state(b"", 3, 30, [0.5] * N, msg.FLAG_SAFE)
        state = ctl.take_state()
        assert state is not None and state.kind == "state"
        assert state.fields == {"seq": 3, "t_ns": 30, "state": [0.5] * N, "flags": msg.FLAG_SAFE}
        ctl.send_control(1, 3, [2.5], 31, 32, 33)
        attached, m = plant.take_control()  # type: ignore[misc]
        assert attached and isinstance(m, msg.Message)
        assert m.fields == {"seq": 1, "state_seq": 3, "u": [2.5], "t_state_rx_ns": 31,
                            "t_send_ns": 32, "compute_ns": 33}
        ctl.send_control(2, 3, [math.nan], 31, 32, 33)
        attached, bad = plant.take_control()  # type: ignore[misc]
        assert attached and isinstance(bad, msg.MessageError) and bad.kind == "non_finite"
        assert math.isnan(bad.value)  # type: ignore[arg-type]
        # A new attach (a replacement controller): the old session's writer writes nothing.
        second = plant.attach()
        with pytest.raises(shm.Replaced, match="replaced"):
            ctl.send_control(3, 3, [1.0], 31, 32, 33)
        assert plant.take_control() is None
        replacement = controller_data(sock, second)  # type: ignore[arg-type]
        replacement.send_control(1, 3, [4.0], 31, 32, 33)
        attached, m = plant.take_control()  # type: ignore[misc]
        assert attached and isinstance(m, msg.Message) and m["u"] == [4.0]
        ctl.close()
        replacement.close()
    finally:
        plant.close()
        sock.close()


def _cpu_wanted_ns() -> int:
    """This thread's time on a CPU plus its time waiting for one (/proc/thread-self/schedstat):
    a spinner's whole stretch however loaded the machine is, where its CPU time alone is what
    the scheduler gave it (a third of the stretch beside three CPU hogs)."""
    on_cpu, runqueue = Path("/proc/thread-self/schedstat").read_text().split()[:2]
    return int(on_cpu) + int(runqueue)


def test_a_realtime_wait_spins_the_planes_spin_unless_asked_for_none(tmp_path: Path) -> None:
    """A deadline wait spins its last stretch (the plane's own spin: both loops the same); a
    wait that is not for a deadline (spin 0: the controller's wait for a late state) sleeps
    on the doorbell throughout. Told apart over a 100 ms wait with an 80 ms spin and nothing
    arriving: the sleeper uses almost no CPU time; the spinner wants a CPU (runs, or waits
    to run on a loaded machine) the whole spin."""
    sock = _Sock(_endpoint(tmp_path))
    plant = ShmPlantData(sock, N, 1, 80_000_000)  # type: ignore[arg-type]
    try:
        used_ms, wanted_ms = {}, {}
        for spin in (0, 1):
            start, start_wanted = time.thread_time_ns(), _cpu_wanted_ns()
            plant.wait_until(time.monotonic_ns() + 100_000_000, lambda: False, spin,
                             time.monotonic_ns)
            used_ms[spin] = (time.thread_time_ns() - start) / 1e6
            wanted_ms[spin] = (_cpu_wanted_ns() - start_wanted) / 1e6
        assert used_ms[0] < 15 and wanted_ms[1] > 60, (used_ms, wanted_ms)
    finally:
        plant.close()
        sock.close()


def test_a_write_that_raced_in_never_hides_the_next_writers_control(segment) -> None:  # type: ignore[no-untyped-def]
    """Two writers on the control slot (a replaced controller's last write racing its
    replacement's first): each write starts from the slot's counter, so the reader sees
    every newer control; with a private counter per writer the second write restored a
    counter the reader had already seen, and the control was lost."""
    session = segment.new_session()
    reader = shm.ControlReader(segment)
    early, late = shm.ControlWriter(segment, session), shm.ControlWriter(segment, session)
    late.write(1, 0, [1.0], 0, 0, 0)
    got = reader.take()
    assert got is not None and got[1:3] == (1, 0) and got[6] == [1.0]
    early.write(2, 0, [2.0], 0, 0, 0)
    got = reader.take()
    assert got is not None and got[1:3] == (2, 0) and got[6] == [2.0]
    late.write(3, 0, [3.0], 0, 0, 0)
    got = reader.take()
    assert got is not None and got[1:3] == (3, 0) and got[6] == [3.0]
    assert reader.overwritten == 0 and reader.take() is None


def test_the_control_slot_carries_the_plants_inputs_in_order(tmp_path: Path) -> None:
    """A segment sized for the plant's inputs (up to MAX_INPUTS, filling the segment): each
    control's whole vector arrives, with every other field in place."""
    assert shm.MAX_INPUTS == 8 and shm.VERSION == 2
    for n_inputs in (1, 2, shm.MAX_INPUTS):
        seg = shm.Segment.create(_endpoint(tmp_path), N, n_inputs)
        try:
            assert seg.n_inputs == n_inputs and seg.n_states == N
            session = seg.new_session()
            reader = shm.ControlReader(seg)
            writer = shm.ControlWriter(seg, session)
            u = [float(i) + 0.5 for i in range(n_inputs)]
            writer.write(9, 8, u, 31, 32, 33)
            assert reader.take() == (session, 9, 8, 31, 32, 33, u)
            u[-1] = -1e300  # the newest control wins; the last entry is not left behind
            writer.write(10, 9, u, 41, 42, 43)
            assert reader.take() == (session, 10, 9, 41, 42, 43, u)
            assert reader.take() is None
        finally:
            seg.close()


def test_a_segment_of_no_or_too_many_inputs_is_refused_naming_the_limit(tmp_path: Path) -> None:
    for n_inputs in (0, shm.MAX_INPUTS + 1):
        with pytest.raises(shm.SharedMemoryError,
                           match=rf"shared memory carries 1\.\.8 inputs, the plant has "
                                 rf"{n_inputs}"):
            shm.Segment.create(_endpoint(tmp_path), N, n_inputs)


def test_a_control_of_the_wrong_count_does_not_fit_the_slot(segment: shm.Segment) -> None:
    """The slot holds exactly the plant's inputs: a writer given another count raises (the
    controller learns the count from the plant's description, so this is a bug, not a peer's
    message to count)."""
    writer = shm.ControlWriter(segment, segment.new_session())
    for u in ([1.0, 2.0], []):
        with pytest.raises(ValueError, match=f"a control of {len(u)} inputs; the plant has 1 "
                                             "input: one number per input"):
            writer.write(1, 0, u, 0, 0, 0)


def test_a_refused_write_leaves_the_control_slot_as_it_was(segment: shm.Segment) -> None:
    writer = shm.ControlWriter(segment, segment.new_session())
    reader = shm.ControlReader(segment)
    with pytest.raises(ValueError):
        writer.write(1, 0, [1.0, 2.0], 0, 0, 0)
    assert not reader.has_new() and reader.take() is None


def test_a_writer_killed_mid_write_never_holds_the_reader(segment: shm.Segment) -> None:
    writer = shm.ControlWriter(segment, segment.new_session())
    reader = shm.ControlReader(segment)
    writer.write(1, 0, [1.0], 0, 0, 0)
    assert reader.take() is not None
    at = shm._CONTROL_AT // 8
    segment.u64[at] += 1  # odd: a write begun and never finished
    assert reader.has_new()
    assert reader.take() is None  # gives up after MAX_TAKE_TRIES, the loop goes on
    assert reader.retries == shm.MAX_TAKE_TRIES
    writer.write(2, 0, [3.0], 0, 0, 0)  # the next write (from the slot's counter) is taken
    got = reader.take()
    assert got is not None and got[1] == 2 and got[6] == [3.0]


def test_the_plants_data_plane_sizes_the_segment_for_its_inputs(tmp_path: Path) -> None:
    sock = _Sock(_endpoint(tmp_path))
    plant = ShmPlantData(sock, N, 2, 0)  # type: ignore[arg-type]
    try:
        assert plant.segment.n_inputs == 2
        ctl = controller_data(sock, plant.attach())  # type: ignore[arg-type]
        ctl.send_control(1, 0, [2.5, -1.0], 1, 2, 3)
        attached, m = plant.take_control()  # type: ignore[misc]
        assert attached and isinstance(m, msg.Message) and m["u"] == [2.5, -1.0]
        ctl.send_control(2, 0, [2.5, math.inf], 1, 2, 3)
        attached, bad = plant.take_control()  # type: ignore[misc]
        assert attached and isinstance(bad, msg.MessageError) and bad.kind == "non_finite"
        assert bad.detail == "control.u[1] is inf"
        ctl.close()
    finally:
        plant.close()
        sock.close()


def _in_thread(fn):  # type: ignore[no-untyped-def]
    """Run `fn` in a fresh thread (affinity is per thread: the test's own stays as it was)."""
    import threading

    out = []
    t = threading.Thread(target=lambda: out.append((fn(), os.sched_getaffinity(0))))
    t.start()
    t.join(10)
    return out[0]


def test_loop_cpus_are_two_different_cpus_and_a_pinned_loop_keeps_its_cpu() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    pairs = {loop_cpus(f"hil-{i}") for i in range(50)}
    if len(cpus) < 2:
        assert pairs == {None}
        return
    for pair in pairs:
        assert pair is not None and pair[0] != pair[1] and set(pair) <= set(cpus)
    assert loop_cpus("hil-x") == loop_cpus("hil-x")  # plant and controller agree
    # A free thread goes to the CPU asked for...
    got, mask = _in_thread(lambda: pin_loop(cpus[-1]))
    assert got == cpus[-1] and mask == {cpus[-1]}
    # ...one pinned already (realtime.plant_cpu / controller_cpu) keeps its CPU.
    got, mask = _in_thread(lambda: (os.sched_setaffinity(0, {cpus[0]}), pin_loop(cpus[-1]))[1])
    assert got is None and mask == {cpus[0]}
    # No CPU offered, or one this process may not use: left as it was, not an error.
    got, mask = _in_thread(lambda: pin_loop(None))
    assert got is None and mask == set(cpus)
    got, mask = _in_thread(lambda: pin_loop(max(cpus) + 4096))
    assert got is None and mask == set(cpus)


def test_a_pinned_lockstep_loop_that_keeps_stalling_goes_back_to_all_its_cpus(
        tmp_path: Path) -> None:
    """A pinned loop starved of its CPU (here: no answer at all, each wait times out after
    6 ms) unpins itself after STALLS_TO_UNPIN stalls, and the report says so."""
    from hil.link.dataplane import STALL_NS, STALLS_TO_UNPIN

    sock = _Sock(_endpoint(tmp_path))
    plant = ShmPlantData(sock, N, 1, 0)  # type: ignore[arg-type]
    cpus = set(os.sched_getaffinity(0))
    try:
        def loop() -> list[object]:
            plant.start_loop(True)
            seen = [os.sched_getaffinity(0)]
            for _ in range(STALLS_TO_UNPIN):
                assert not plant.wait_for(STALL_NS + 1_000_000, lambda: False, 0,
                                          time.monotonic_ns)
                seen.append(os.sched_getaffinity(0))
            return seen

        seen, _mask = _in_thread(loop)
        report = plant.report()
        if len(cpus) >= 2:
            assert report["cpu"] is not None and seen[0] == {report["cpu"]}
            assert all(m == {report["cpu"]} for m in seen[1:-1])  # pinned until the last
            assert seen[-1] == cpus and report["unpinned_after_stalls"] is True
            assert report["stalls"] == STALLS_TO_UNPIN
        else:
            assert report["cpu"] is None and report["unpinned_after_stalls"] is False
    finally:
        plant.close()
        sock.close()


def test_control_message_matches_the_wire_decoder() -> None:
    for u in ([-1.25], [-1.25, 3.0, 0.0]):
        fields = (4, 2, u, 10, 11, 12)
        assert control_message(*fields).fields == msg.decode(msg.pack_control(*fields)).fields
    for bad in (math.inf, -math.inf, math.nan):
        for u in ([bad], [0.5, bad], [bad, math.nan]):
            with pytest.raises(msg.MessageError) as wire:
                msg.decode(msg.pack_control(4, 2, u, 10, 11, 12))
            with pytest.raises(msg.MessageError) as shared:
                control_message(4, 2, u, 10, 11, 12)
            assert shared.value.kind == wire.value.kind == "non_finite"
            assert shared.value.detail == wire.value.detail
            assert repr(shared.value.value) == repr(wire.value.value) == repr(bad)


@pytest.mark.parametrize("mode", ["realtime", "lockstep"])
def test_hil_run_over_shm(tmp_path: Path, mode: str) -> None:
    """Both modes end to end through `hil run --transport shm`: the run passes, nothing is
    dropped from the recordings, the report says shm and has every latency figure."""
    hil = Path(sys.executable).with_name("hil")
    out = tmp_path / mode
    # Not a test of the watchdog (tests/faults is): a 250 ms one, so a loaded machine's stall
    # of both loops does not latch the plant for the rest of the run.
    done = subprocess.run([str(hil), "run", *NO_HTML, "--transport", "shm", "--mode", mode,
                           "--rate", "1000", "--duration", "2", "--endpoint",
                           _endpoint(tmp_path), "--out", str(out),
                           "--set", "plant.watchdog_timeout_ms=250"],
                          capture_output=True, text=True, timeout=110)
    report = json.loads((out / "report.json").read_text())
    plant = json.loads((out / "plant.json").read_text())
    controller = json.loads((out / "controller.json").read_text())
    assert plant["transport"]["kind"] == controller["transport"]["kind"] == "shm"
    # One host, one clock: no estimated offset (it was off by up to 30 us)
    assert controller["clock"] == {"offset_ns": 0, "sync_rtt_ns": None, "same_clock": True}
    # Both loops spin what the plant chose: the default, not capped at 1 kHz.
    assert plant["transport"]["spin_us"] == controller["transport"]["spin_us"] == 120.0
    assert "shm_spin_us capped" not in (out / "plant.log.jsonl").read_text()
    # In lockstep each loop on its own CPU (dataplane.loop_cpus), the two different, when
    # there are two; in realtime neither is pinned (a pinned SCHED_FIFO loop cannot move away
    # from other real-time work).
    cpus = sorted(os.sched_getaffinity(0))
    pinned = (plant["transport"]["cpu"], controller["transport"]["cpu"])
    if len(cpus) >= 2 and mode == "lockstep":
        assert pinned[0] != pinned[1] and set(pinned) <= set(cpus), pinned
    else:
        assert pinned == (None, None)
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["dropped_records"]["passed"] and gates["dropped_records"]["value"] == 0
    late = ("plant_lateness", "controller_lateness") if mode == "realtime" else ()  # deadlines
    for figure in ("round_trip", "controller_to_plant", *late[:1]):
        assert plant["latency_us"][figure]["count"] > 0, (figure, plant["latency_us"])
    for figure in ("state_to_controller", "compute", *late[1:]):
        assert controller["latency_us"][figure]["count"] > 0, (figure, controller["latency_us"])
    if mode == "lockstep":  # deterministic: every state answered, in 2001 cycles
        assert plant["cycles"] == 2001 and plant["controls_applied"] == 2000
        assert report["verdict"] == "PASS" and done.returncode == 0, done.stderr
    else:
        # Two thirds of the 2000 ticks answered at least (as two thirds of 3000 were).
        assert plant["end_reason"] == "duration" and plant["controls_applied"] > 2000 * 2 / 3
    assert not Path(f"/dev/shm/{plant['transport']['segment']}").exists()


def test_the_realtime_spin_is_capped_to_leave_each_loop_idle_time() -> None:
    assert (MAX_LOOP_SHARE, LOOP_WORK_NS) == (0.85, 40_000)
    assert spin_ns(120, "realtime", 1_000_000) == 120_000  # 1 kHz: as asked
    assert spin_ns(120, "realtime", 200_000) == 120_000  # 5 kHz: under the cap of 130 us
    assert spin_ns(150, "realtime", 200_000) == 130_000  # ... which 150 is over
    assert spin_ns(120, "realtime", 100_000) == 45_000  # 10 kHz: capped
    assert spin_ns(120, "realtime", 40_000) == 0  # 25 kHz: no spin at all
    assert spin_ns(0, "realtime", 1_000_000) == 0
    assert spin_ns(500, "lockstep", 100_000) == 500_000  # lockstep waits for an answer


def test_a_plant_asked_to_spin_past_the_cap_spins_the_cap_and_says_so(tmp_path: Path) -> None:
    """A real hil-plant asked for 1000 us of each 1000 us period: it logs the cap (810 us)
    when it sets up its data plane (before any controller: none comes, it gives up after its
    attach timeout). No loop runs: spinning 81 % of a period under coverage's slower Python
    reached the kernel's real-time throttling."""
    cfg = tmp_path / "plant.yaml"
    cfg.write_text("run:\n  transport: shm\n  shm_spin_us: 1000\nplant:\n"
                   "  attach_timeout_s: 0.5\nrecord:\n  enabled: false\n")
    plant = Path(sys.executable).with_name("hil-plant")
    subprocess.run([str(plant), "--config", str(cfg), "--endpoint", _endpoint(tmp_path),
                    "--out", str(tmp_path / "out")], capture_output=True, text=True,
                   timeout=110)
    capped = [json.loads(line) for line in
              (tmp_path / "out" / "plant.log.jsonl").read_text().splitlines()
              if "shm_spin_us capped" in line]
    assert [(c["asked_us"], c["spin_us"], c["period_us"]) for c in capped] == [
        (1000.0, 810.0, 1000.0)]


def test_hil_doctor_measures_the_fast_path_against_the_period() -> None:
    from hil.app import doctor
    from hil.config import load_config

    assert "shm_fast_path" in doctor.CHECK_NAMES
    slow = doctor.check_shm_fast_path(load_config(None, {"run.rate_hz": 1.0}), n=300)
    assert slow.status == doctor.PASS, slow
    assert slow.figures is not None and slow.figures["n"] == 300
    assert 0 < slow.figures["p50_us"] <= slow.figures["p99_us"] < 300_000
    assert "shared-memory round trip p50" in slow.detail and "1e+06 us period" in slow.detail
