"""The C firmware as the rig, over real pseudo-terminals: the host build and the QEMU
(mps2-an386, Cortex-M4F) image, spoken to by pyserial and the Python firmware_protocol codec.

Both builds: the watchdog latches the motor off and only CLEAR releases it; ESTOP (even with
a repeated seq) latches SAFE. The host build also: its fault knobs (corrupted bytes reach the
host as CRC errors; unplug removes the port). QEMU: a stall of the emulator itself (its
process stopped for longer than the watchdog) is not taken for the host's silence.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fp_vectors import REJECTS
from fw_kit import HostRig, QemuRig, RawHost, realtime_host
from rigkit import new_session

from firmware_protocol import (
    Capabilities,
    Clear,
    Control,
    Estop,
    Fault,
    FaultCode,
    Flags,
    Frame,
    Heartbeat,
    Hello,
    State,
    encode,
)

RATE_HZ, WATCHDOG_MS, BAUD = 200, 50, 230_400


@pytest.fixture(scope="module", params=["host", "qemu"])
def shared_rig_port(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One rig of each build for the tests that speak to it without reading its rig.json
    (one QEMU boot, not one a test). Each test starts its own session, as a host reopening
    the port does: its HELLO disarms the rig (latching POWER_ON if it was armed), and its
    CLEAR releases whatever the test before left latched."""
    settings = {"rate_hz": RATE_HZ, "watchdog_ms": WATCHDOG_MS, "baud": BAUD,
                "rig_id": 0xF1F2F3F4}
    if request.param == "host":
        with HostRig(tmp_path_factory.mktemp("host-rig") / "rig", **settings) as rig:
            yield rig.port
    else:
        with QemuRig(**settings) as rig:
            yield rig.port


@pytest.fixture
def rig_port(shared_rig_port: str) -> str:
    """The shared rig, disarmed, with nothing left unread from the test before."""
    new_session(shared_rig_port, BAUD)
    return shared_rig_port


def arm(host: RawHost) -> Frame:
    host.send(Hello())
    _, caps = host.wait_for(Capabilities, timeout_s=3.0)
    assert caps.flags & Flags.FAULT_LATCHED
    assert caps.message.rig_id == 0xF1F2F3F4 and caps.message.state_rate_hz == RATE_HZ
    assert caps.message.firmware_version == (2, 0, 0)
    host.send(Clear())
    return host.wait_for(State, flags=Flags.MOTOR_ENABLED)[1]


def feed(host: RawHost, duration_s: float) -> tuple[int, list[Frame]]:
    """Answer each STATE with a CONTROL for `duration_s`: (last CONTROL's time, frames)."""
    frames: list[Frame] = []
    last = 0
    give_up = time.monotonic() + duration_s
    while time.monotonic() < give_up:
        for _, event in host.events(0.002):
            if isinstance(event, Frame):
                frames.append(event)
                if isinstance(event.message, State):
                    last = host.send(Control(commands=(1.0,), state_seq=event.seq))
    return last, frames


@pytest.mark.realtime
def test_the_watchdog_latches_the_motor_off_until_clear(rig_port: str) -> None:
    host = RawHost(rig_port, BAUD)
    try:
        arm(host)
        last_control, fed = feed(host, 0.3)
        states = [f for f in fed if isinstance(f.message, State)]
        assert len(states) >= 0.3 * RATE_HZ * 0.5
        assert all(f.flags & Flags.MOTOR_ENABLED for f in states[2:])  # fed: stays ARMED
        # Silence, but HEARTBEATs: they never feed the watchdog.
        host.send(Heartbeat(timestamp_us=1))
        t_fault, fault = host.wait_for(Fault, timeout_s=1.0)
        assert fault.message.code == FaultCode.WATCHDOG
        assert fault.message.detail == WATCHDOG_MS
        assert fault.flags & Flags.FAULT_LATCHED and not fault.flags & Flags.MOTOR_ENABLED
        silence_ms = (t_fault - last_control) / 1e6
        assert WATCHDOG_MS * 0.8 <= silence_ms <= WATCHDOG_MS + 100, silence_ms
        # CONTROL after the trip does not re-arm it.
        _, after = feed(host, 0.2)
        states = [f for f in after if isinstance(f.message, State)]
        assert states and all(f.flags & Flags.FAULT_LATCHED for f in states)
        assert not any(f.flags & Flags.MOTOR_ENABLED for f in states)
        host.send(Clear())
        host.wait_for(State, flags=Flags.MOTOR_ENABLED)
    finally:
        host.close()


@pytest.mark.realtime
def test_estop_latches_safe_even_with_a_repeated_seq(rig_port: str) -> None:
    host = RawHost(rig_port, BAUD)
    try:
        arm(host)
        feed(host, 0.1)
        sent = host.send(Estop())
        t_fault, fault = host.wait_for(Fault, timeout_s=1.0)
        assert fault.message.code == FaultCode.ESTOP and fault.message.detail == 0
        assert fault.flags & Flags.ESTOP_LATCHED and fault.flags & Flags.FAULT_LATCHED
        assert (t_fault - sent) / 1e6 < 1000 / RATE_HZ + 50  # within a period (+ the pty)
        _, state = host.wait_for(State)
        assert state.flags & Flags.ESTOP_LATCHED and not state.flags & Flags.MOTOR_ENABLED
        # CLEAR releases it; an ESTOP repeating the CLEAR's seq is still obeyed.
        seq = host.encoder.next_seq
        host.send_raw(encode(Clear(), seq=seq))
        host.wait_for(State, flags=Flags.MOTOR_ENABLED)
        host.send_raw(encode(Estop(), seq=seq))
        _, again = host.wait_for(Fault, timeout_s=1.0)
        assert again.message.code == FaultCode.ESTOP and again.flags & Flags.ESTOP_LATCHED
    finally:
        host.close()


@pytest.mark.realtime
def test_host_build_corrupts_bytes_at_its_knob_and_the_host_counts_crc_errors(
        tmp_path: Path) -> None:
    with HostRig(tmp_path / "rig", rate_hz=RATE_HZ, baud=BAUD, corrupt_byte_rate=2e-3,
                 seed=3) as rig:
        host = RawHost(rig.port, BAUD)
        try:
            host.send(Hello())
            host.wait_for(Capabilities, timeout_s=3.0)
            host.events(1.0)
            stats = host.decoder.statistics()
        finally:
            host.close()
        report = rig.stop()
    assert report["line"]["tx"]["corrupted_bytes"] >= 3
    assert stats.crc_errors + stats.cobs_errors + stats.length_errors >= 1
    assert stats.frames_ok >= RATE_HZ * 0.5  # resynchronised after each


@pytest.mark.realtime
def test_host_build_unplug_removes_the_port_after_arming(tmp_path: Path) -> None:
    with HostRig(tmp_path / "rig", rate_hz=RATE_HZ, baud=BAUD, unplug_after_s=0.3,
                 rig_id=0xF1F2F3F4) as rig:
        host = RawHost(rig.port, BAUD)
        try:
            arm(host)
            armed_at = time.monotonic()
            rig.proc.wait(timeout=5)
            assert 0.2 < time.monotonic() - armed_at < 1.5
            assert not Path(rig.port).exists()
        finally:
            host.close()
        report = rig.stop()
    assert report["end_reason"] == "unplugged" and report["unplugged_at_ns"] is not None
    assert report["firmware"]["counters"]["clears"] == 1


@pytest.mark.realtime
@pytest.mark.parametrize("compensated", [True, False])
def test_a_qemu_stall_longer_than_the_watchdog_is_not_the_hosts_silence(
        compensated: bool) -> None:
    """QEMU stopped (SIGSTOP) for 3x the watchdog, 25 ms after the host's last CONTROL; the
    host answers every STATE before and after: the port sees its clock jump, counts the stall
    and moves the deadline, so the rig stays ARMED. With the compensation off (stall_comp=0)
    the same stall trips the watchdog at once: the test can fail."""
    stop_s = WATCHDOG_MS * 3 / 1e3
    with realtime_host(), QemuRig(rate_hz=RATE_HZ, watchdog_ms=WATCHDOG_MS, baud=BAUD,
                                  rig_id=0xF1F2F3F4, stall_comp=int(compensated)) as rig:
        host = RawHost(rig.port, BAUD)
        try:
            arm(host)
            for _ in range(3):  # a loaded machine may trip it before the stop: arm again
                _, before = feed(host, 0.2)
                # then 25 ms quiet: no CONTROL in flight (read after the stop, it would reload)
                before += [e for _, e in host.events(0.025) if isinstance(e, Frame)]
                if (before and before[-1].flags & Flags.MOTOR_ENABLED
                        and not any(isinstance(f.message, Fault) for f in before)):
                    break
                host.send(Clear())
                host.wait_for(State, flags=Flags.MOTOR_ENABLED)
            else:
                pytest.fail("the rig did not stay armed for 0.2 s three times: overloaded")
            os.kill(rig.proc.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            while time.monotonic() - stopped < stop_s:  # the host keeps listening
                host.events(0.005)
            os.kill(rig.proc.pid, signal.SIGCONT)
            _, fed = feed(host, 0.3)
        finally:
            host.close()
        rig.stop()
        out = rig.output()
    stalls = [int(n) for n in re.findall(r"stalls \d+ longest (\d+) us", out)]
    faults = [f for f in fed if isinstance(f.message, Fault)]
    states = [f for f in fed if isinstance(f.message, State)]
    assert states
    if compensated:
        assert not faults, (faults, out)
        assert all(f.flags & Flags.MOTOR_ENABLED for f in states), out
        assert stalls and max(stalls) >= stop_s * 1e6 * 0.9 - 1000 * 1000 / RATE_HZ, out
    else:
        assert [f.message.code for f in faults] == [FaultCode.WATCHDOG], out
        assert "watchdog trip" in out


@pytest.mark.realtime
def test_a_control_with_the_wrong_count_latches_the_armed_rig_safe(rig_port: str) -> None:
    """Both builds: two commands for the one-input double pendulum are never applied: FAULT
    CONTROL_COUNT (detail 2), SAFE until CLEAR; the nonce of the HELLO comes back."""
    host = RawHost(rig_port, BAUD)
    try:
        host.send(Hello(nonce=0x0BADF00D))
        _, caps = host.wait_for(Capabilities, timeout_s=3.0)
        if caps.message.nonce == 0:  # the power-up one, sent before the HELLO was heard
            _, caps = host.wait_for(Capabilities)
        host.send(Clear())
        _, state = host.wait_for(State, flags=Flags.MOTOR_ENABLED)
        host.send(Control(commands=(1.0, 1.0), state_seq=state.seq))
        _, fault = host.wait_for(Fault, timeout_s=1.0)
        _, after = host.wait_for(State)
    finally:
        host.close()
    assert caps.message.nonce == 0x0BADF00D
    assert caps.message.input_limits == ((-150.0, 150.0),)
    assert (fault.message.code, fault.message.detail) == (FaultCode.CONTROL_COUNT, 2)
    assert after.flags & Flags.FAULT_LATCHED and not after.flags & Flags.MOTOR_ENABLED


@pytest.mark.realtime
def test_host_build_counts_wrong_counts_and_other_version_hellos_in_rig_json(
        tmp_path: Path) -> None:
    v1_hello = next(v.wire for v in REJECTS if v.name == "version_1_hello")
    with HostRig(tmp_path / "rig", rate_hz=RATE_HZ, baud=BAUD) as rig:
        host = RawHost(rig.port, BAUD)
        try:
            host.send_raw(v1_hello)
            _, caps = host.wait_for(Capabilities, timeout_s=3.0)
            host.send(Control(commands=(1.0, 2.0, 3.0), state_seq=0))
            host.events(0.05)
        finally:
            host.close()
        report = rig.stop()
    assert caps.message.nonce == 0
    counters = report["firmware"]["counters"]
    assert (counters["other_version_hellos"], counters["controls_wrong_count"]) == (1, 1)
    assert (counters["hellos"], counters["controls_applied"]) == (0, 0)
