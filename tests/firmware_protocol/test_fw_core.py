"""The rig core in C (firmware_protocol/firmware/core/) on a scripted HAL, under ASan/UBSan.

A table of cases, each from power-up: input frames (encoded by the Python codec), timer
ticks, main-loop polls and HAL inputs (limit switches, the e-stop input, a failing sensor)
-> the frames the rig sends (decoded by the Python codec) and its state afterwards
(PROTOCOL.md sections 9-10). Then the shared vectors: every host -> rig frame of
vectors.json acted on, every reject vector ignored without effect, and every frame the rig
sends byte-identical to the Python encoding of the same message.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fp_vectors import FRAMES, REJECTS
from fw_kit import FwScript, build, fw_script

from firmware_protocol import (
    Capabilities,
    Clear,
    Control,
    Encoder,
    Estop,
    Fault,
    FaultCode,
    Flags,
    Frame,
    Heartbeat,
    Hello,
    Message,
    State,
    crc32,
    decode,
    encode,
)
from firmware_protocol.cobs import cobs_encode

RATE, WATCHDOG_MS, MAX, RIG_ID = 500, 50, 150.0, 0x48494C31
PERIOD_US = 1_000_000 // RATE
STALE_AFTER = WATCHDOG_MS * RATE // 1000  # 25 STATE frames
VALUES = (0.01, 0.05, -0.02, 0.1, -0.5, 0.25)
SAFE = Flags.FAULT_LATCHED
ARMED = Flags.MOTOR_ENABLED
ESTOPPED = Flags.FAULT_LATCHED | Flags.ESTOP_LATCHED

Step = str | Message | Callable[["Run"], Any]


@dataclass
class Run:
    """One script from power-up at t = 0; `now` advances with `at`."""

    s: FwScript
    host: Encoder = field(default_factory=Encoder)
    now: int = 0
    sent: list[Frame] = field(default_factory=list)

    def do(self, step: Step) -> list[Frame]:
        if isinstance(step, str):
            if step.startswith("+"):  # "+N": advance the clock by N us
                self.now += int(step[1:])
                step = f"at {self.now}"
            frames = self.s.frames(step)
        elif callable(step):
            return step(self) or []  # a step that sends through `do`, which records
        else:
            frames = self.s.frames(f"rx {self.host.encode(step).hex()}")
        self.sent += frames
        return frames

    @property
    def last_state_seq(self) -> int:
        return [f for f in self.sent if isinstance(f.message, State)][-1].seq


def control(*commands: float, age: int = 0) -> Callable[[Run], list[Frame]]:
    """A CONTROL answering the STATE `age` frames before the rig's last one."""
    def step(run: Run) -> list[Frame]:
        seq = (run.last_state_seq - age) % 65536
        return run.do(Control(commands=commands, state_seq=seq))
    return step


NONCE = 0x5EED1234
HELLO = Hello(nonce=NONCE)
ARM = [HELLO, "tick", Clear(), "tick"]  # HELLO, a STATE, CLEAR, a STATE that shows ARMED


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[Step]
    frames: list[tuple[str, Flags] | tuple[str, Flags, dict[str, Any]]]  # after the setup
    status: dict[str, float]
    setup: list[Step] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)


CASES = [
    Case("power-up is SAFE with POWER_ON latched; ticks before HELLO send nothing",
         ["tick", "+2000", "tick"], [],
         {"armed": 0, "motor": 0, "code": FaultCode.POWER_ON, "flags": SAFE, "led": 0}),
    Case("a HEARTBEAT when nothing was sent for 100 ms", ["+99999", "poll", "+1", "poll"],
         [("Heartbeat", SAFE, {"timestamp_us": 100_000})], {"armed": 0}),
    Case("HELLO -> CAPABILITIES echoing its nonce, then a STATE every tick, at the tick's time",
         [HELLO, "+2000", "tick", "+2000", "tick"],
         [("Capabilities", SAFE, {"rig_id": RIG_ID, "state_rate_hz": RATE,
                                  "watchdog_ms": WATCHDOG_MS, "nonce": NONCE,
                                  "input_limits": ((-MAX, MAX),)}),
          ("State", SAFE, {"timestamp_us": 2000, "values": VALUES}),
          ("State", SAFE, {"timestamp_us": 4000})],
         {"armed": 0, "code": FaultCode.POWER_ON}),
    Case("CLEAR arms with a zero command: the next STATE shows MOTOR_ENABLED", ARM,
         [("Capabilities", SAFE), ("State", SAFE), ("State", ARMED)],
         {"armed": 1, "motor": 1, "command": 0.0, "code": 0, "flags": ARMED, "led": 1}),
    Case("CONTROL is applied and saturated at +-max_command", [control(200.0)], [],
         {"armed": 1, "command": MAX}, setup=ARM, counters={"controls_applied": 1}),
    Case("a negative CONTROL within the limit is applied as sent", [control(-12.5)], [],
         {"armed": 1, "command": -12.5}, setup=ARM),
    Case("CONTROL in SAFE is ignored", [HELLO, "tick", control(5.0)],
         [("Capabilities", SAFE), ("State", SAFE)], {"armed": 0, "motor": 0, "command": 0.0},
         counters={"controls_ignored_safe": 1}),
    Case("a CONTROL older than watchdog_ms of STATEs is refused",
         [*["tick"] * (STALE_AFTER + 1), control(7.0, age=STALE_AFTER + 1),
          control(3.0, age=STALE_AFTER)],
         [("State", ARMED)] * (STALE_AFTER + 1), {"armed": 1, "command": 3.0}, setup=ARM,
         counters={"controls_stale": 1, "controls_applied": 1}),
    Case("no CONTROL for watchdog_ms: motor off, FAULT WATCHDOG, latched",
         [f"+{WATCHDOG_MS * 1000 - 1}", "poll", "+1", "poll", "tick"],
         [("Fault", SAFE, {"code": FaultCode.WATCHDOG, "detail": WATCHDOG_MS}),
          ("State", SAFE)],
         {"armed": 0, "motor": 0, "command": 0.0, "code": FaultCode.WATCHDOG},
         setup=ARM, counters={"watchdog_trips": 1}),
    Case("each valid CONTROL reloads the watchdog",
         ["+40000", control(1.0), "+40000", "tick", control(2.0), "+49999", "poll"],
         [("State", ARMED)],
         {"armed": 1, "command": 2.0}, setup=ARM),
    Case("HEARTBEAT never feeds the watchdog",
         ["+30000", Heartbeat(timestamp_us=1), "+20000", "poll"],
         [("Fault", SAFE, {"code": FaultCode.WATCHDOG})], {"armed": 0}, setup=ARM),
    Case("after a watchdog trip, CONTROL does not re-arm; CLEAR does",
         ["+50000", "poll", control(9.0), "tick", Clear(), "tick"],
         [("Fault", SAFE), ("State", SAFE), ("State", ARMED)],
         {"armed": 1, "command": 0.0}, setup=ARM, counters={"controls_ignored_safe": 1}),
    Case("ESTOP: motor off, FAULT ESTOP, ESTOP_LATCHED until CLEAR",
         [Estop(), "tick"], [("Fault", ESTOPPED, {"code": FaultCode.ESTOP, "detail": 0}),
                             ("State", ESTOPPED)],
         {"armed": 0, "motor": 0, "code": FaultCode.ESTOP, "flags": ESTOPPED}, setup=ARM),
    Case("CLEAR releases an ESTOP", [Estop(), Clear(), "tick"],
         [("Fault", ESTOPPED), ("State", ARMED)], {"armed": 1, "flags": ARMED}, setup=ARM),
    Case("HELLO always disarms (no FAULT), and answers CAPABILITIES",
         [Hello(nonce=7), "tick"], [("Capabilities", SAFE, {"nonce": 7}), ("State", SAFE)],
         {"armed": 0, "motor": 0}, setup=ARM),
    Case("CLEAR in ARMED does nothing", [Clear(), "tick"], [("State", ARMED)],
         {"armed": 1}, setup=ARM),
    Case("a limit switch trips the armed rig at the next tick: FAULT LIMIT_SWITCH, side",
         ["limit 2", "tick"],
         [("Fault", SAFE, {"code": FaultCode.LIMIT_SWITCH, "detail": 1}), ("State", SAFE)],
         {"armed": 0, "motor": 0, "code": FaultCode.LIMIT_SWITCH}, setup=ARM),
    Case("CLEAR with a limit switch still pressed stays SAFE and repeats the FAULT",
         ["limit 1", "tick", Clear(), "limit 0", Clear(), "tick"],
         [("Fault", SAFE, {"detail": 0}), ("State", SAFE), ("Fault", SAFE, {"detail": 0}),
          ("State", ARMED)], {"armed": 1}, setup=ARM),
    Case("the rig's own e-stop input: FAULT ESTOP detail 1, latched while it stays tripped",
         ["button 1", "poll", Clear(), "button 0", "poll", Clear(), "tick"],
         [("Fault", ESTOPPED, {"code": FaultCode.ESTOP, "detail": 1}),
          ("Fault", ESTOPPED, {"code": FaultCode.ESTOP, "detail": 1}), ("State", ARMED)],
         {"armed": 1}, setup=ARM, counters={"button_trips": 1}),
    Case("a failing sensor: FAULT ENCODER and no STATE",
         ["sensor 0", "tick", "sensor 1", "tick"],
         [("Fault", SAFE, {"code": FaultCode.ENCODER}), ("State", SAFE)],
         {"armed": 0, "code": FaultCode.ENCODER}, setup=ARM),
    Case("a CONTROL with two commands for the one-input rig: not applied, FAULT CONTROL_COUNT",
         [control(5.0), control(9.0, 9.0), control(1.0), "tick"],
         [("Fault", SAFE, {"code": FaultCode.CONTROL_COUNT, "detail": 2}), ("State", SAFE)],
         {"armed": 0, "motor": 0, "command": 0.0, "code": FaultCode.CONTROL_COUNT},
         setup=ARM, counters={"controls_wrong_count": 1, "controls_applied": 1,
                              "controls_ignored_safe": 1}),
    Case("a CONTROL with the wrong count in SAFE is only counted",
         [HELLO, "tick", control(1.0, 2.0, 3.0)], [("Capabilities", SAFE), ("State", SAFE)],
         {"armed": 0, "code": FaultCode.POWER_ON},
         counters={"controls_wrong_count": 1, "controls_ignored_safe": 0}),
    Case("a full transmit buffer loses the frame but spends its seq (the host sees a gap)",
         ["txroom 0", "tick", "txroom 100000", "tick"], [("State", ARMED)], {"armed": 1},
         setup=ARM, counters={"tx_dropped": 1}),
]


def check(frame: Frame, expected: tuple) -> None:
    kind, flags, *fields = expected
    assert type(frame.message).__name__ == kind, frame
    assert frame.flags == flags, frame
    for name, value in (fields[0] if fields else {}).items():
        got = getattr(frame.message, name)
        if name == "values":
            assert got == pytest.approx(value, rel=1e-7), frame
        else:
            assert got == value, (name, frame)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_state_machine(case: Case) -> None:
    with fw_script() as s:
        s(f"values {' '.join(map(str, VALUES))}")
        power_up = s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
        assert [type(f.message) for f in power_up] == [Capabilities]
        assert power_up[0].flags == SAFE
        run = Run(s, sent=list(power_up))
        for step in case.setup:
            run.do(step)
        after_setup = len(run.sent)
        for step in case.steps:
            run.do(step)
        got = run.sent[after_setup:]
        assert len(got) == len(case.frames), [f"{type(f.message).__name__} {f.flags!r}"
                                              for f in got]
        for frame, expected in zip(got, case.frames, strict=True):
            check(frame, expected)
        status = s.status()
        for name, value in case.status.items():
            assert status[name] == value, (name, status)
        counters = s.counters()
        for name, value in case.counters.items():
            assert counters[name] == value, (name, counters)
        seqs = [f.seq for f in run.sent]
        if "txroom 0" not in case.steps:  # one counter, +1 per frame sent (section 7)
            assert seqs == list(range(len(seqs)))


def test_an_estop_with_a_repeated_seq_is_still_obeyed() -> None:
    with fw_script() as s:
        s(f"values {' '.join(map(str, VALUES))}")
        s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
        run = Run(s)
        for step in ARM:
            run.do(step)
        estop = encode(Estop(), seq=10)
        first = s.frames(f"rx {estop.hex()}")
        s.frames(f"rx {encode(Clear(), seq=11).hex()}")
        assert s.status()["armed"] == 1
        repeated = s.frames(f"rx {encode(Estop(), seq=11).hex()}")  # a duplicate seq
        assert [type(f.message) for f in first + repeated] == [Fault, Fault]
        assert s.status()["armed"] == 0 and s.counters()["duplicates"] == 1
        assert s.frames(f"rx {encode(Clear(), seq=11).hex()}") == []  # a duplicate CLEAR
        assert s.status()["armed"] == 0  # ... is dropped


@pytest.mark.parametrize("version", [1, 3])
def test_a_hello_in_another_version_gets_capabilities_in_the_rigs_own(version: int) -> None:
    """A version-1 host's HELLO (a real one: vectors.json's `version_1_hello`) or a later
    version's gets the rig's CAPABILITIES, in version 2 with nonce 0."""
    if version == 1:
        frame = next(v.wire for v in REJECTS if v.name == "version_1_hello")
    else:
        body = bytes([version, 0x01, 0, 0, 0]) + struct.pack("<I", 99)
        frame = cobs_encode(body + struct.pack("<I", crc32(body))) + b"\x00"
    with fw_script() as s:
        s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
        (caps,) = s.frames(f"rx {frame.hex()}")
        assert isinstance(caps.message, Capabilities) and caps.message.nonce == 0
        assert decode(encode(caps.message, seq=caps.seq))  # a version-2 frame
        counters = s.counters()
        assert (counters["other_version_hellos"], counters["version_errors"]) == (1, 1)
        assert s.status()["armed"] == 0


def test_a_version_1_control_never_moves_the_motor() -> None:
    v1_control = next(v.wire for v in REJECTS if v.name == "version_1_control")
    with fw_script() as s:
        s(f"values {' '.join(map(str, VALUES))}")
        s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
        run = Run(s)
        for step in ARM:
            run.do(step)
        assert s.frames(f"rx {v1_control.hex()}") == []
        assert s.status()["command"] == 0.0
        assert s.counters()["controls_applied"] == 0


def test_the_power_up_capabilities_carry_nonce_zero() -> None:
    with fw_script() as s:
        (caps,) = s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
        assert caps.message.nonce == 0
        (answer,) = s.frames(f"rx {encode(HELLO, seq=0).hex()}")
        assert answer.message.nonce == NONCE


def test_a_two_input_rig_applies_each_command_within_its_own_limits() -> None:
    """Layout 0 (declared by the host), 4 values, 2 inputs: input 0 within -10..10, input 1
    within -20..10 (the script's convention)."""
    with fw_script() as s:
        s("values 0.5 -0.25 0 1")
        (caps,) = s.frames(f"init {RATE} {WATCHDOG_MS} 10 0 {RIG_ID} 2 4")
        assert caps.message.input_limits == ((-10.0, 10.0), (-20.0, 10.0))
        run = Run(s)
        for step in ARM:
            run.do(step)
        assert run.sent[-1].message.values == pytest.approx((0.5, -0.25, 0.0, 1.0))
        run.do(control(3.0, -15.0))
        assert s.status()["commands"] == (3.0, -15.0)
        run.do(control(50.0, -50.0))
        assert s.status()["commands"] == (10.0, -20.0)
        run.do(control(1.0))  # one command for two inputs
        status = s.status()
        assert (status["armed"], status["commands"]) == (0, (0.0, 0.0))
        assert status["code"] == FaultCode.CONTROL_COUNT
        counters = s.counters()
        assert (counters["controls_applied"], counters["controls_wrong_count"]) == (2, 1)


@pytest.mark.parametrize("init", ["0 1 0", "2 0", "2 9", "0 1 9", "3 1"])
def test_an_unusable_configuration_is_refused(init: str) -> None:
    """rig_init returns -1: inputs outside 1..8, layout 0 without values or with 9, layout 3."""
    rate, layout_and_more = RATE, init.split()
    layout, inputs, *values = layout_and_more
    with fw_script() as s:
        assert s(f"init {rate} {WATCHDOG_MS} {MAX} {layout} {RIG_ID} {inputs} "
                 f"{' '.join(values)}") == ["init -1"]


def test_garbage_costs_only_the_frame_it_hits() -> None:
    with fw_script() as s:
        s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
        hello = bytearray(encode(HELLO, seq=0))
        hello[7] ^= 0x40  # a CRC byte
        garbage = b"\x55\x13\x00" + bytes(hello) + bytes(60)
        assert s.frames(f"rx {garbage.hex()}") == []
        (caps,) = s.frames(f"rx {encode(HELLO, seq=1).hex()}")
        assert isinstance(caps.message, Capabilities)
        assert s.counters()["crc_errors"] >= 1


def test_the_core_acts_on_every_host_frame_of_the_vectors() -> None:
    """vectors.json, host -> rig: HELLO, CONTROL, HEARTBEAT, ESTOP, CLEAR as the wire has them."""
    effects = {"Hello": "capabilities_tx", "Clear": "clears", "Estop": "estops",
               "Heartbeat": None, "Control": "controls_ignored_safe"}
    for vector in FRAMES:
        kind = type(vector.message).__name__
        if kind not in effects:
            continue
        effect = effects[kind]
        if isinstance(vector.message, Control) and len(vector.message.commands) != 1:
            effect = "controls_wrong_count"  # the script's rig has one input
        with fw_script() as s:
            s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
            before = s.counters()
            s.frames(f"rx {vector.hex}")
            after = s.counters()
            assert after["frames_ok"] == before["frames_ok"] + 1, vector.name
            if effect:
                assert after[effect] == before[effect] + 1, vector.name


def test_every_reject_vector_is_ignored_and_the_next_frame_still_works() -> None:
    for vector in REJECTS:
        with fw_script() as s:
            s.frames(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
            before = s.counters()
            answer = s.frames(f"rx {vector.hex}")
            if vector.name == "version_1_hello":  # answered in the rig's version (section 9)
                assert [(type(f.message), f.message.nonce) for f in answer] == [
                    (Capabilities, 0)]
            else:
                assert answer == [], vector.name
            after = s.counters()
            assert after["frames_ok"] == before["frames_ok"], vector.name
            assert s.status()["armed"] == 0
            (caps,) = s.frames(f"rx 00{encode(HELLO, seq=0).hex()}")
            assert isinstance(caps.message, Capabilities), vector.name


def test_every_frame_the_rig_sends_is_byte_identical_to_the_python_encoding() -> None:
    with fw_script() as s:
        s(f"values {' '.join(map(str, VALUES))}")
        lines = s(f"init {RATE} {WATCHDOG_MS} {MAX} 2 {RIG_ID}")
        host = Encoder()
        script = [f"rx {host.encode(m).hex()}" for m in (HELLO,)] + ["tick"] + [
            f"rx {host.encode(Clear()).hex()}", "tick", "at 100000", "poll", "at 300000",
            "poll", f"rx {host.encode(Estop()).hex()}", "tick"]
        for command in script:
            lines += s(command)
        wires = [bytes.fromhex(line[3:]) for line in lines if line.startswith("tx ")]
        kinds = set()
        for wire in wires:
            frame = decode(wire)
            kinds.add(type(frame.message).__name__)
            assert encode(frame.message, seq=frame.seq, flags=frame.flags) == wire
        assert kinds == {"Capabilities", "State", "Heartbeat", "Fault"}


def test_the_builds_compile_with_warnings_as_errors_and_allocate_nothing() -> None:
    """The board and QEMU images link no malloc (nor anything that calls it)."""
    for target, elf in (("board", "board/hil-rig-nucleo-f401re.elf"),
                        ("qemu", "qemu/hil-rig-qemu.elf")):
        path = build(target) / elf
        nm = shutil.which("arm-none-eabi-nm")
        assert nm, "arm-none-eabi-nm missing: apt-get install -y gcc-arm-none-eabi"
        symbols = subprocess.run([nm, str(path)], capture_output=True, text=True,
                                 check=True).stdout
        assert not [s for s in symbols.split() if s in ("malloc", "_malloc_r", "_sbrk",
                                                        "free", "calloc")], target
