"""The emulated rig, as firmware: real pseudo-terminals, a real emulator process, a raw host.

The host side here is pyserial plus `firmware_protocol`, not the plant's bridge, so each
test pins one rule of PROTOCOL.md sections 9 and 10 as the rig implements it.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import serial
from rigkit import NINE_STATES, EmulatedRig, RawHost, pid_alive, rig_config

import firmware_protocol
from firmware_protocol import (
    Capabilities,
    Clear,
    Control,
    Estop,
    Fault,
    FaultCode,
    Flags,
    Frame,
    FrameRejected,
    Heartbeat,
    Hello,
    SequenceGap,
    State,
    StateLayout,
    encode,
    frame_bytes,
)
from hil.config import ConfigError, load_config
from hil.dynamics import create_model
from plant_server.rig_emulator import UartLine, build

INITIAL = [0.0, 0.1, -0.05, 0.0, 0.0, 0.0]  # the config default
f32 = np.float32


def arm(host: RawHost) -> tuple[int, Frame]:
    """HELLO then CLEAR; the first STATE that shows the motor enabled."""
    host.send(Hello())
    host.wait_for(Capabilities)
    host.send(Clear())
    return host.wait_for(State, flags=Flags.MOTOR_ENABLED)


def feed(host: RawHost, duration_s: float) -> list[tuple[int, object]]:
    """Answer every STATE with a zero CONTROL for `duration_s`; return what arrived."""
    seen = []
    give_up = time.monotonic() + duration_s
    while time.monotonic() < give_up:
        for t, event in host.events(0.002):
            seen.append((t, event))
            if isinstance(event, Frame) and isinstance(event.message, State):
                host.send(Control(commands=(0.0,), state_seq=event.seq))
    return seen


@pytest.mark.realtime
def test_the_rig_powers_up_latched_and_answers_hello_with_capabilities_then_streams(
        tmp_path: Path) -> None:
    cfg = rig_config(tmp_path, rate_hz=100, watchdog_ms=40, rig_id=0xC0FFEE)
    with EmulatedRig(cfg, tmp_path / "rig", via_hil=True) as rig:
        host = RawHost(rig.port)
        before = host.events(0.25)  # nothing but HEARTBEATs before HELLO
        assert before, "the rig is silent before HELLO: it must send a HEARTBEAT every 100 ms"
        for _, event in before:
            assert isinstance(event, Frame) and isinstance(event.message, Heartbeat | Capabilities)
            assert event.flags & Flags.FAULT_LATCHED and not event.flags & Flags.MOTOR_ENABLED
        host.send(Hello())
        _, caps = host.wait_for(Capabilities)
        c = caps.message
        assert (c.rig_id, c.state_rate_hz, c.watchdog_ms, c.input_limits) == (
            0xC0FFEE, 100, 40, ((-150.0, 150.0),))
        assert c.state_layout is StateLayout.DOUBLE_INVERTED_PENDULUM
        states = [e for _, e in host.events(0.35)
                  if isinstance(e, Frame) and isinstance(e.message, State)]
        host.close()
    assert len(states) >= 20
    steps = np.diff([s.message.timestamp_us for s in states])
    assert np.all(steps % 10_000 == 0) and np.median(steps) == 10_000  # 100 Hz, rig clock
    for s in states:  # held at the initial state, disarmed, until CLEAR
        assert s.flags & Flags.FAULT_LATCHED and not s.flags & Flags.MOTOR_ENABLED
        assert s.message.values == tuple(float(f32(v)) for v in INITIAL)


@pytest.mark.realtime
def test_only_control_feeds_the_watchdog_and_its_fault_latches_until_clear(
        tmp_path: Path) -> None:
    # 150 ms: this test's host is an ordinary process on a loaded machine
    with EmulatedRig(rig_config(tmp_path, watchdog_ms=150), tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        host.send(Hello())
        host.wait_for(Capabilities)
        cleared = host.send(Clear())
        host.wait_for(State, flags=Flags.MOTOR_ENABLED)
        seen: list = []
        give_up = time.monotonic() + 1.0
        fault = None
        while fault is None and time.monotonic() < give_up:  # HEARTBEATs, no CONTROL
            host.send(Heartbeat(timestamp_us=0))
            for t, e in host.events(0.01):
                if isinstance(e, Frame) and isinstance(e.message, Fault):
                    fault = (t, e)
        assert fault is not None, "the watchdog did not trip on HEARTBEATs alone"
        t_fault, frame = fault
        assert frame.message.code is FaultCode.WATCHDOG and frame.message.detail == 150
        assert frame.flags & Flags.FAULT_LATCHED and not frame.flags & Flags.MOTOR_ENABLED
        assert (t_fault - cleared) / 1e6 >= 150
        # CONTROL after the trip is ignored: it does not re-arm the rig.
        for _ in range(5):
            _, state = host.wait_for(State)
            host.send(Control(commands=(1.0,), state_seq=state.seq))
            assert not state.flags & Flags.MOTOR_ENABLED
        # CLEAR re-arms; then a CONTROL per STATE keeps it armed for 4 watchdog periods.
        host.send(Clear())
        host.wait_for(State, flags=Flags.MOTOR_ENABLED, seen=seen)
        after = feed(host, 0.6)
        host.send(Hello())  # disarm: the end of the test is no silence
        host.close()
        report = rig.stop()
    assert not any(isinstance(e, Frame) and isinstance(e.message, Fault) for _, e in after)
    assert report["firmware"]["counters"]["watchdog_trips"] == 1
    assert report["firmware"]["counters"]["controls_ignored_safe"] >= 5


@pytest.mark.realtime
def test_estop_is_obeyed_even_with_a_repeated_seq_and_hello_always_disarms(
        tmp_path: Path) -> None:
    with EmulatedRig(rig_config(tmp_path, watchdog_ms=200), tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        host.send_raw(encode(Hello(), seq=10))
        host.wait_for(Capabilities)
        host.send_raw(encode(Clear(), seq=11))
        _, state = host.wait_for(State, flags=Flags.MOTOR_ENABLED)
        host.send_raw(encode(Control(commands=(0.0,), state_seq=state.seq), seq=12))
        host.send_raw(encode(Estop(), seq=12))  # the seq of the CONTROL before it: a duplicate
        _, fault = host.wait_for(Fault)
        assert fault.message.code is FaultCode.ESTOP
        assert fault.flags & Flags.ESTOP_LATCHED and not fault.flags & Flags.MOTOR_ENABLED
        host.send_raw(encode(Clear(), seq=13))
        host.wait_for(State, flags=Flags.MOTOR_ENABLED)
        seen: list = []
        host.send_raw(encode(Hello(), seq=14))
        host.wait_for(Capabilities, seen=seen)
        _, state = host.wait_for(State, seen=seen)
        host.close()
        report = rig.stop()
    assert not state.flags & Flags.MOTOR_ENABLED  # HELLO disarmed it
    assert not any(isinstance(e, Frame) and isinstance(e.message, Fault) for _, e in seen)
    assert report["firmware"]["counters"]["estops"] == 1
    assert report["firmware"]["decoder"]["duplicates"] == 1  # the ESTOP, counted and obeyed


@pytest.mark.realtime
def test_bytes_leave_no_faster_than_the_baud_rate(tmp_path: Path) -> None:
    # At 9600 baud a HELLO (15 bytes) and the CAPABILITIES answering it (46) take 64 ms.
    cfg = rig_config(tmp_path, rate_hz=20, baud=9600)
    wire_ms = (frame_bytes(Hello()) + 46) * 10 / 9600 * 1e3
    with EmulatedRig(cfg, tmp_path / "rig") as rig:
        host = RawHost(rig.port, 9600)
        host.send(Hello())
        host.events(0.3)  # the power-up CAPABILITIES and the first answer
        round_trips = []
        for _ in range(3):
            sent = host.send(Hello())
            t, _ = host.wait_for(Capabilities)
            round_trips.append((t - sent) / 1e6)
            host.events(0.1)
        states = [(t, e) for t, e in host.events(0.5)
                  if isinstance(e, Frame) and isinstance(e.message, State)]
        host.close()
        report = rig.stop()
    assert wire_ms == pytest.approx(63.5416, rel=1e-4)
    assert min(round_trips) >= wire_ms, round_trips
    assert min(round_trips) < wire_ms + 150, round_trips
    # A 40-byte STATE takes 41.7 ms: it arrives at least that long after the rig sampled it
    # (the rig's clock read `clock_start_us` = 0 at `boot_ns`).
    lags_ms = [(t - report["firmware"]["boot_ns"]) / 1e6 - e.message.timestamp_us / 1e3
               for t, e in states]
    assert len(states) >= 8 and min(lags_ms) >= 40 * 10 / 9600 * 1e3, lags_ms


@pytest.mark.realtime
def test_a_version_1_hello_gets_capabilities_in_the_rigs_own_version(tmp_path: Path) -> None:
    """A real version-1 HELLO (vectors.json's `version_1_hello`) is answered with version-2
    CAPABILITIES carrying nonce 0, and does not open a session (PROTOCOL.md section 9)."""
    vectors = json.loads(Path(firmware_protocol.__file__).with_name("vectors.json").read_text())
    v1_hello = bytes.fromhex(next(e["hex"] for e in vectors["rejects"]
                                  if e["name"] == "version_1_hello"))
    with EmulatedRig(rig_config(tmp_path), tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        host.send_raw(v1_hello)
        _, caps = host.wait_for(Capabilities)
        host.events(0.2)  # no STATE stream: a version-1 HELLO opens no session
        host.close()
        report = rig.stop()
    assert caps.message.nonce == 0 and caps.message.state_rate_hz == 100
    counters = report["firmware"]["counters"]
    assert (counters["other_version_hellos"], counters["hellos"], counters["states_tx"]) == (
        1, 0, 0)
    assert report["firmware"]["decoder"]["rejected"] == 1


@pytest.mark.realtime
def test_a_control_answering_a_stale_state_is_refused_and_does_not_feed_the_watchdog(
        tmp_path: Path) -> None:
    # watchdog 60 ms at 100 Hz: a CONTROL more than 6 STATEs behind is stale.
    with EmulatedRig(rig_config(tmp_path, watchdog_ms=60), tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        arm(host)
        fault = None
        # The trip itself is due 60 ms after arming; the bound is for a loaded machine, where
        # the emulator's stall compensation moves its watchdog back by each stall it sees.
        give_up = time.monotonic() + 5.0
        while fault is None and time.monotonic() < give_up:
            _, state = host.wait_for(State)
            host.send(Control(commands=(0.0,), state_seq=(state.seq - 10) % 65536))
            for _, e in host.events(0.005):
                if isinstance(e, Frame) and isinstance(e.message, Fault):
                    fault = e
        host.close()
        report = rig.stop()
    assert fault is not None and fault.message.code is FaultCode.WATCHDOG
    assert report["firmware"]["counters"]["controls_stale"] >= 3
    assert report["firmware"]["counters"]["controls_applied"] == 0


@pytest.mark.realtime
def test_the_pendulum_evolves_by_the_model_on_the_rigs_clock(tmp_path: Path) -> None:
    with EmulatedRig(rig_config(tmp_path, watchdog_ms=30), tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        arm(host)  # no CONTROL follows: zero force, the watchdog trips, the motor stays off
        states = [e.message for _, e in host.events(0.4)
                  if isinstance(e, Frame) and isinstance(e.message, State)]
        host.close()
    model = create_model("dip")
    out = np.empty(6)
    checked = 0
    for a, b in itertools.pairwise(states):
        if b.timestamp_us - a.timestamp_us != 10_000:
            continue  # a skipped tick on a loaded machine
        model.step(np.array(a.values), 0.0, 0.01, out)
        np.testing.assert_allclose(b.values, out, rtol=0, atol=2e-5)
        checked += 1
    assert checked >= 20
    assert abs(states[-1].values[1] - INITIAL[1]) > 0.01  # it is falling: the model runs


@pytest.mark.realtime
def test_corruption_and_frame_drops_reach_the_host_and_are_counted(tmp_path: Path) -> None:
    cfg = rig_config(tmp_path, corrupt_byte_rate=0.01, drop_frame_rate=0.1, seed=7)
    with EmulatedRig(cfg, tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        host.send(Hello())
        events = host.events(1.0)
        host.close()
        report = rig.stop()
    rejected = [e for _, e in events if isinstance(e, FrameRejected)]
    gaps = [e for _, e in events if isinstance(e, SequenceGap)]
    stats = host.decoder.statistics()
    assert rejected and gaps and stats.crc_errors >= 1
    line = report["line"]["tx"]
    assert line["corrupted_bytes"] >= 1 and line["dropped_frames"] >= 3


def test_the_line_corrupts_the_same_bytes_for_the_same_seed_at_the_configured_rate() -> None:
    data = bytes(range(1, 201)) * 5000  # 1e6 bytes

    def corrupt(seed: int) -> bytes:
        line = UartLine(115_200, 1e-3, 0.0, random.Random(seed))
        return b"".join(line.corrupt(data[i:i + 40]) for i in range(0, len(data), 40))

    a, b, c = corrupt(1), corrupt(1), corrupt(2)
    assert a == b and a != c
    flipped = sum(x != y for x, y in zip(a, data, strict=True))
    assert 850 <= flipped <= 1150  # 1000 expected, sd 32
    assert UartLine(115_200, 0.0, 0.0, random.Random(1)).corrupt(data) == data


@pytest.mark.realtime
def test_unplug_closes_the_port_after_arming_and_ends_the_emulator(tmp_path: Path) -> None:
    cfg = rig_config(tmp_path, unplug_after_s=0.3)
    rig = EmulatedRig(cfg, tmp_path / "rig")
    try:
        host = RawHost(rig.port)
        arm(host)
        armed = time.monotonic()
        with pytest.raises(serial.SerialException):
            while time.monotonic() < armed + 3:
                feed(host, 0.05)
        gone = time.monotonic()
        host.close()
        assert rig.proc.wait(timeout=5) == 0
        report = rig.stop()
    finally:
        rig.stop()
    assert 0.25 < gone - armed < 1.5
    assert not rig.link.exists() and not pid_alive(rig.proc.pid)
    assert report["end_reason"] == "unplugged"
    unplugged_after_ms = (report["unplugged_at_ns"] - report["firmware"]["first_armed_ns"]) / 1e6
    assert 300 <= unplugged_after_ms < 400


@pytest.mark.realtime
def test_a_stalled_emulator_does_not_blame_the_host_for_its_own_stall(tmp_path: Path) -> None:
    with EmulatedRig(rig_config(tmp_path, watchdog_ms=100), tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        arm(host)
        before = feed(host, 0.1)
        seq = [e.seq for _, e in before if isinstance(e, Frame)
               and isinstance(e.message, State)][-1]
        rig.signal(signal.SIGSTOP)  # the host keeps sending: its CONTROLs wait in the pty
        give_up = time.monotonic() + 0.25  # 2.5 watchdog periods
        while time.monotonic() < give_up:
            host.send(Control(commands=(0.0,), state_seq=seq))
            time.sleep(0.01)
        rig.signal(signal.SIGCONT)
        after = feed(host, 0.3)
        host.send(Hello())  # disarms without a fault: the end of the test is no silence
        host.close()
        report = rig.stop()
    faults = [e for _, e in after if isinstance(e, Frame) and isinstance(e.message, Fault)]
    assert not faults, faults
    assert report["firmware"]["stalls"] >= 1 and report["firmware"]["longest_stall_ms"] >= 200
    assert report["firmware"]["counters"]["watchdog_trips"] == 0


HELICOPTER = {"model": "helicopter", "initial_state": [0.0, 0.0, 0.0, 0.0]}


@pytest.mark.realtime
def test_a_two_input_rig_declares_its_inputs_applies_both_and_refuses_a_wrong_count(
        tmp_path: Path) -> None:
    """The 2-DOF helicopter (two motor voltages) as a rig: layout DECLARED, CAPABILITIES
    with both inputs' limits, a two-command CONTROL applied (each within its own limits), a
    one-command CONTROL never applied: counted, FAULT CONTROL_COUNT, latched SAFE."""
    # A patient rig watchdog: the subject is the inputs, and a loaded machine's 50 ms stall of
    # this test's host (plain Python) would latch the rig before the wrong count reaches it.
    config = rig_config(tmp_path, plant=HELICOPTER, watchdog_ms=1000)
    with EmulatedRig(config, tmp_path / "rig") as rig:
        host = RawHost(rig.port)
        host.send(Hello(nonce=0xABCDEF))
        answers = [host.wait_for(Capabilities)[1]]
        if answers[0].message.nonce == 0:  # the power-up one (unasked) came first
            answers.append(host.wait_for(Capabilities)[1])
        caps = answers[-1]
        assert caps.message.nonce == 0xABCDEF
        host.send(Clear())
        _, state = host.wait_for(State, flags=Flags.MOTOR_ENABLED)
        pitch_up = []
        for _ in range(40):  # 0.4 s of full pitch voltage (saturated from 99 V to 24 V)
            host.send(Control(commands=(99.0, 0.0), state_seq=state.seq))
            _, state = host.wait_for(State)
            pitch_up.append(state.message.values[0])
        host.send(Control(commands=(12.0,), state_seq=state.seq))
        _, fault = host.wait_for(Fault)
        host.events(0.05)
        host.close()
        report = rig.stop()
    assert caps.message.state_layout is StateLayout.DECLARED
    assert caps.message.input_limits == ((-24.0, 24.0), (-15.0, 15.0))
    assert len(state.message.values) == 4
    assert pitch_up[-1] > pitch_up[0] + 0.05, pitch_up  # 24 V lifts the nose
    assert (fault.message.code, fault.message.detail) == (FaultCode.CONTROL_COUNT, 1)
    assert fault.flags & Flags.FAULT_LATCHED and not fault.flags & Flags.MOTOR_ENABLED
    counters = report["firmware"]["counters"]
    assert counters["controls_wrong_count"] == 1 and counters["controls_applied"] >= 40
    assert report["firmware"]["capabilities"]["input_limits"] == [[-24.0, 24.0],
                                                                  [-15.0, 15.0]]


def test_a_plant_with_more_states_than_a_state_frame_carries_is_refused(tmp_path: Path) -> None:
    (tmp_path / "chain.py").write_text(NINE_STATES)
    config = rig_config(tmp_path, plant={"model": "chain:Chain", "initial_state": [0.0] * 9})
    with pytest.raises(ConfigError, match=r"has 9 states; a rig's STATE frame carries at most 8"):
        build(load_config(config))
