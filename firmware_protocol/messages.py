"""The messages of the rig protocol: frozen dataclasses with their type codes and layouts.

Every message class carries its wire type code (`TYPE`) and packs / unpacks its own
little-endian, fixed-layout payload; `MESSAGE_CLASSES` is the one table from type code to
class. Constructing a message validates it against what the wire can carry and raises
`LocalProtocolError` otherwise, so an invalid message cannot exist. Float fields travel as
IEEE-754 binary32 and are stored rounded to float32, so a message compares equal to its
decoded copy. PROTOCOL.md is the byte-level specification of the same layouts.
"""

from __future__ import annotations

import enum
import math
import operator
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from firmware_protocol.errors import LocalProtocolError, RejectReason, RemoteProtocolError

MAX_STATE_VALUES = 8
MAX_INPUTS = 8  # CONTROL commands and CAPABILITIES input limits per frame

_E = TypeVar("_E", bound=enum.IntEnum)


class MessageType(enum.IntEnum):
    """The type byte of the header (offset 1)."""

    HELLO = 0x01
    CAPABILITIES = 0x02
    STATE = 0x10
    STATE_RAW = 0x11
    CONTROL = 0x20
    HEARTBEAT = 0x30
    FAULT = 0x40
    ESTOP = 0x41
    CLEAR = 0x42


class Flags(enum.IntFlag):
    """Status of the sender, carried in the header of every frame (offset 4).

    The rig sets these on every frame it sends; the host sends 0. Bits 3-7 are reserved:
    sent as 0, ignored on receipt.
    """

    NONE = 0
    MOTOR_ENABLED = 0x01  # the motor driver is enabled and follows CONTROL
    FAULT_LATCHED = 0x02  # motor off, latched until CLEAR
    ESTOP_LATCHED = 0x04  # the latched fault is an emergency stop


class StateLayout(enum.IntEnum):
    """Which plant the rig is; fixes the meaning of STATE values and STATE_RAW counts."""

    DECLARED = 0  # the host's plant model names the STATE values (STATE only, not raw)
    CART_POLE = 1  # x, theta, x_dot, theta_dot; raw: x, theta
    DOUBLE_INVERTED_PENDULUM = 2  # x, theta1, theta2, x_dot, theta1_dot, theta2_dot; raw: 3


class StateEncoding(enum.IntEnum):
    """How the rig reports its state."""

    FLOAT32_SI = 0  # STATE: float32 values in m, rad, m/s, rad/s
    ENCODER_COUNTS = 1  # STATE_RAW: int32 encoder counts of the positions


class ControlUnit(enum.IntEnum):
    """What the CONTROL command means."""

    PHYSICAL = 0  # each input in its physical unit: the pendulums' cart force in N, or
    # for a DECLARED layout the unit the host's plant model gives that input
    FORCE_N = 0  # version 1's name of PHYSICAL (an alias)
    DUTY = 1  # motor duty, -1.0 .. +1.0 of full scale


class FaultCode(enum.IntEnum):
    """FAULT codes 1-127; 0x80-0xFF are free for rig-specific faults."""

    POWER_ON = 1  # latched at power-up, until the first CLEAR
    WATCHDOG = 2  # no valid CONTROL within watchdog_ms
    ESTOP = 3  # ESTOP received, or the rig's own emergency-stop button
    LIMIT_SWITCH = 4  # detail: 0 = -x end of the track, 1 = +x end
    OVERCURRENT = 5  # detail: the current in mA
    ENCODER = 6  # detail: the encoder channel
    SUPPLY = 7  # detail: the supply voltage in mV
    CONTROL_COUNT = 8  # a CONTROL with another number of commands; detail: that number


def _integer(owner: str, name: str, value: object, low: int, high: int, kind: str) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise LocalProtocolError(f"{owner} `{name}` must be an int, got {value!r}") from None
    if not low <= number <= high:
        raise LocalProtocolError(
            f"{owner} `{name}` must be in {low}..{high} ({kind}), got {number}"
        )
    return number


def _uint(owner: str, name: str, value: object, bits: int) -> int:
    return _integer(owner, name, value, 0, (1 << bits) - 1, f"u{bits}")


def _int32(owner: str, name: str, value: object) -> int:
    return _integer(owner, name, value, -(1 << 31), (1 << 31) - 1, "i32")


def _float32(owner: str, name: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
        rounded: float = struct.unpack("<f", struct.pack("<f", number))[0]
    except (TypeError, ValueError):
        raise LocalProtocolError(f"{owner} `{name}` must be a float, got {value!r}") from None
    except OverflowError:
        rounded = math.inf
    if not math.isfinite(rounded):
        raise LocalProtocolError(
            f"{owner} `{name}` must be finite and within float32 range, got {value!r}"
        )
    return rounded


def _member(owner: str, name: str, enum_type: type[_E], value: object) -> _E:
    try:
        return enum_type(value)  # type: ignore[arg-type]  # ValueError is the check
    except ValueError:
        known = ", ".join(f"{m.name}={m.value}" for m in enum_type)
        raise LocalProtocolError(
            f"{owner} `{name}` must be one of {known}; got {value!r}"
        ) from None


def _set(message: object, name: str, value: object) -> None:
    object.__setattr__(message, name, value)


class _Empty:
    """A message without payload."""

    TYPE: ClassVar[MessageType]

    def _pack(self) -> bytes:
        return b""

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        _expect_length(cls.TYPE, payload, 0)
        return cls()


def _expect_length(kind: MessageType, payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise RemoteProtocolError(
            RejectReason.LENGTH, f"{kind.name} payload must be {size} bytes, got {len(payload)}"
        )


_HELLO = struct.Struct("<I")


def new_nonce() -> int:
    """A random nonzero u32: the nonce of a HELLO (PROTOCOL.md section 9)."""
    return secrets.randbelow(0xFFFFFFFF) + 1


@dataclass(frozen=True)
class Hello:
    """HELLO, host -> rig: asks the rig for CAPABILITIES and starts its STATE stream (4 bytes).

    `nonce` (nonzero u32; random when not given) comes back in the CAPABILITIES that answer
    it, so a CAPABILITIES the rig sent unasked (nonce 0, at power-up) is never taken for
    the answer.
    """

    TYPE: ClassVar[MessageType] = MessageType.HELLO

    nonce: int = field(default_factory=new_nonce)

    def __post_init__(self) -> None:
        nonce = _uint("HELLO", "nonce", self.nonce, 32)
        if nonce == 0:
            raise LocalProtocolError("HELLO `nonce` must be nonzero (0 marks the rig's "
                                     "unasked power-up CAPABILITIES), got 0")
        _set(self, "nonce", nonce)

    def _pack(self) -> bytes:
        return _HELLO.pack(self.nonce)

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        _expect_length(cls.TYPE, payload, _HELLO.size)
        return cls(*_HELLO.unpack(payload))


@dataclass(frozen=True)
class Estop(_Empty):
    """ESTOP, host -> rig: motor off now; latches FAULT(ESTOP) until CLEAR."""

    TYPE: ClassVar[MessageType] = MessageType.ESTOP


@dataclass(frozen=True)
class Clear(_Empty):
    """CLEAR, host -> rig: release a latched fault (if its cause is gone) and arm the motor."""

    TYPE: ClassVar[MessageType] = MessageType.CLEAR


_CAPABILITIES = struct.Struct("<I3BBBBHHIIIB")  # then input_count x (low f32, high f32)
_LIMIT = struct.Struct("<ff")


@dataclass(frozen=True)
class Capabilities:
    """CAPABILITIES, rig -> host: who the rig is and what its frames mean (27 + 8 m bytes).

    `nonce` echoes the HELLO this answers (0: sent unasked, at power-up). `input_limits`
    holds (low, high) per input, in `control_unit`: the rig takes one command per input in
    every CONTROL and saturates each within its limits. `angle_counts_per_rev` and
    `cart_counts_per_m` convert STATE_RAW counts to SI units.
    """

    TYPE: ClassVar[MessageType] = MessageType.CAPABILITIES

    rig_id: int
    firmware_version: tuple[int, int, int]
    state_layout: StateLayout
    state_encoding: StateEncoding
    control_unit: ControlUnit
    state_rate_hz: int
    watchdog_ms: int
    angle_counts_per_rev: int
    cart_counts_per_m: int
    nonce: int
    input_limits: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        owner = "CAPABILITIES"
        _set(self, "rig_id", _uint(owner, "rig_id", self.rig_id, 32))
        version = tuple(self.firmware_version)
        if len(version) != 3:
            raise LocalProtocolError(
                f"{owner} `firmware_version` must be (major, minor, patch), got {version!r}"
            )
        _set(self, "firmware_version", tuple(
            _uint(owner, f"firmware_version[{i}]", part, 8) for i, part in enumerate(version)
        ))
        _set(self, "state_layout", _member(owner, "state_layout", StateLayout, self.state_layout))
        _set(self, "state_encoding",
             _member(owner, "state_encoding", StateEncoding, self.state_encoding))
        _set(self, "control_unit", _member(owner, "control_unit", ControlUnit, self.control_unit))
        for name in ("state_rate_hz", "watchdog_ms"):
            _set(self, name, _uint(owner, name, getattr(self, name), 16))
        for name in ("angle_counts_per_rev", "cart_counts_per_m", "nonce"):
            _set(self, name, _uint(owner, name, getattr(self, name), 32))
        _set(self, "input_limits", _limits(owner, self.input_limits))

    @property
    def input_count(self) -> int:
        """How many commands each CONTROL to this rig carries."""
        return len(self.input_limits)

    def _pack(self) -> bytes:
        head = _CAPABILITIES.pack(
            self.rig_id, *self.firmware_version, self.state_layout, self.state_encoding,
            self.control_unit, self.state_rate_hz, self.watchdog_ms,
            self.angle_counts_per_rev, self.cart_counts_per_m, self.nonce,
            len(self.input_limits),
        )
        return head + b"".join(_LIMIT.pack(low, high) for low, high in self.input_limits)

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        head = _CAPABILITIES.size
        count = payload[head - 1] if len(payload) >= head else 0
        if not 1 <= count <= MAX_INPUTS or len(payload) != head + _LIMIT.size * count:
            raise RemoteProtocolError(
                RejectReason.LENGTH,
                f"CAPABILITIES payload of {len(payload)} bytes does not hold {head} bytes and "
                f"input_count (1..{MAX_INPUTS}) limits of {_LIMIT.size} bytes",
            )
        (rig_id, major, minor, patch, layout, encoding, unit, rate_hz, watchdog_ms,
         angle_cpr, cart_cpm, nonce, _) = _CAPABILITIES.unpack_from(payload)
        limits = tuple(_LIMIT.unpack_from(payload, head + _LIMIT.size * i) for i in range(count))
        return cls(rig_id, (major, minor, patch), layout, encoding, unit, rate_hz,
                   watchdog_ms, angle_cpr, cart_cpm, nonce, limits)


def _limits(owner: str, limits: object) -> tuple[tuple[float, float], ...]:
    """1..MAX_INPUTS (low, high) pairs of finite float32, low < high."""
    try:
        pairs = tuple(tuple(pair) for pair in limits)  # type: ignore[attr-defined]
    except TypeError:
        raise LocalProtocolError(f"{owner} `input_limits` must be (low, high) pairs, one per "
                                 f"input, got {limits!r}") from None
    if not 1 <= len(pairs) <= MAX_INPUTS or any(len(pair) != 2 for pair in pairs):
        raise LocalProtocolError(f"{owner} `input_limits` must hold 1..{MAX_INPUTS} (low, "
                                 f"high) pairs, got {limits!r}")
    out = []
    for i, (low, high) in enumerate(pairs):
        low_f = _float32(owner, f"input_limits[{i}][0]", low)
        high_f = _float32(owner, f"input_limits[{i}][1]", high)
        if not low_f < high_f:
            raise LocalProtocolError(f"{owner} `input_limits[{i}]` must have low < high, got "
                                     f"({low_f}, {high_f})")
        out.append((low_f, high_f))
    return tuple(out)


_STAMP_COUNT = struct.Struct("<IB")


def _unpack_series(kind: MessageType, payload: bytes, item: str
                   ) -> tuple[int, tuple[Any, ...]]:
    """Split a `timestamp_us u32, count u8, count x item` payload."""
    if len(payload) < _STAMP_COUNT.size:
        raise RemoteProtocolError(
            RejectReason.LENGTH, f"{kind.name} payload of {len(payload)} bytes is shorter than 5"
        )
    timestamp_us, count = _STAMP_COUNT.unpack_from(payload)
    expected = _STAMP_COUNT.size + 4 * count
    if not 1 <= count <= MAX_STATE_VALUES or len(payload) != expected:
        raise RemoteProtocolError(
            RejectReason.LENGTH,
            f"{kind.name} count {count} (must be 1..{MAX_STATE_VALUES}) does not match "
            f"its payload of {len(payload)} bytes",
        )
    return timestamp_us, struct.unpack_from(f"<{count}{item}", payload, _STAMP_COUNT.size)


def _validate_series(message: State | StateRaw, name: str,
                     convert: Callable[[str, str, Any], Any]) -> None:
    """Check and normalise `timestamp_us` and the 1..8 entries of field `name`."""
    owner = message.TYPE.name
    _set(message, "timestamp_us", _uint(owner, "timestamp_us", message.timestamp_us, 32))
    items = tuple(getattr(message, name))
    if not 1 <= len(items) <= MAX_STATE_VALUES:
        raise LocalProtocolError(
            f"{owner} `{name}` must hold 1..{MAX_STATE_VALUES} entries, got {len(items)}"
        )
    _set(message, name, tuple(
        convert(owner, f"{name}[{i}]", item) for i, item in enumerate(items)
    ))


def _pack_series(timestamp_us: int, items: tuple[Any, ...], item: str) -> bytes:
    return _STAMP_COUNT.pack(timestamp_us, len(items)) + struct.pack(f"<{len(items)}{item}",
                                                                     *items)


@dataclass(frozen=True)
class State:
    """STATE, rig -> host: the measured state in SI units as float32 (5 + 4 n bytes).

    `values` follow the rig's `StateLayout` (cart-pole 4, double pendulum 6), in m, rad,
    m/s, rad/s. `timestamp_us` is the rig's free-running microsecond clock, wrapping at 2**32.
    """

    TYPE: ClassVar[MessageType] = MessageType.STATE

    timestamp_us: int
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        _validate_series(self, "values", _float32)

    def _pack(self) -> bytes:
        return _pack_series(self.timestamp_us, self.values, "f")

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        return cls(*_unpack_series(cls.TYPE, payload, "f"))


@dataclass(frozen=True)
class StateRaw:
    """STATE_RAW, rig -> host: raw encoder counts of the positions as int32 (5 + 4 n bytes).

    Cart-pole sends (x, theta), the double pendulum (x, theta1, theta2). Counts are zero
    with the cart at the track centre and the links upright; `positions_si` converts them.
    """

    TYPE: ClassVar[MessageType] = MessageType.STATE_RAW

    timestamp_us: int
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        _validate_series(self, "counts", _int32)

    def _pack(self) -> bytes:
        return _pack_series(self.timestamp_us, self.counts, "i")

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        return cls(*_unpack_series(cls.TYPE, payload, "i"))

    def positions_si(self, capabilities: Capabilities) -> tuple[float, ...]:
        """Positions in SI units: x = counts[0] / cart_counts_per_m (m), then each angle
        counts[k] * 2 pi / angle_counts_per_rev (rad)."""
        if capabilities.cart_counts_per_m == 0 or capabilities.angle_counts_per_rev == 0:
            raise LocalProtocolError(
                "capabilities must have nonzero `cart_counts_per_m` and `angle_counts_per_rev`"
                " to convert counts"
            )
        x_m = self.counts[0] / capabilities.cart_counts_per_m
        rad_per_count = 2.0 * math.pi / capabilities.angle_counts_per_rev
        return (x_m, *(count * rad_per_count for count in self.counts[1:]))


_CONTROL = struct.Struct("<HB")  # state_seq, count; then count x f32


@dataclass(frozen=True)
class Control:
    """CONTROL, host -> rig: one command per input and the STATE seq it answers (3 + 4 m).

    `commands` are in the rig's `ControlUnit`, one per input the rig declared in its
    CAPABILITIES; the rig saturates each within its `input_limits`. Every valid CONTROL
    reloads the rig's watchdog.
    """

    TYPE: ClassVar[MessageType] = MessageType.CONTROL

    commands: tuple[float, ...]
    state_seq: int

    def __post_init__(self) -> None:
        try:
            commands = tuple(self.commands)
        except TypeError:
            raise LocalProtocolError(f"CONTROL `commands` must be a sequence of floats, one per "
                                     f"input, got {self.commands!r}") from None
        if not 1 <= len(commands) <= MAX_INPUTS:
            raise LocalProtocolError(
                f"CONTROL `commands` must hold 1..{MAX_INPUTS} entries, got {len(commands)}"
            )
        _set(self, "commands", tuple(
            _float32("CONTROL", f"commands[{i}]", c) for i, c in enumerate(commands)))
        _set(self, "state_seq", _uint("CONTROL", "state_seq", self.state_seq, 16))

    def _pack(self) -> bytes:
        return _CONTROL.pack(self.state_seq, len(self.commands)) + struct.pack(
            f"<{len(self.commands)}f", *self.commands)

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        count = payload[2] if len(payload) >= _CONTROL.size else 0
        if not 1 <= count <= MAX_INPUTS or len(payload) != _CONTROL.size + 4 * count:
            raise RemoteProtocolError(
                RejectReason.LENGTH,
                f"CONTROL payload of {len(payload)} bytes does not hold state_seq, count "
                f"(1..{MAX_INPUTS}) and count commands",
            )
        state_seq, _ = _CONTROL.unpack_from(payload)
        return cls(struct.unpack_from(f"<{count}f", payload, _CONTROL.size), state_seq)


_HEARTBEAT = struct.Struct("<I")


@dataclass(frozen=True)
class Heartbeat:
    """HEARTBEAT, either way: liveness when nothing else is sent (4 bytes).

    It never reloads the rig's motor watchdog: only CONTROL does.
    """

    TYPE: ClassVar[MessageType] = MessageType.HEARTBEAT

    timestamp_us: int

    def __post_init__(self) -> None:
        _set(self, "timestamp_us", _uint("HEARTBEAT", "timestamp_us", self.timestamp_us, 32))

    def _pack(self) -> bytes:
        return _HEARTBEAT.pack(self.timestamp_us)

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        _expect_length(cls.TYPE, payload, _HEARTBEAT.size)
        return cls(*_HEARTBEAT.unpack(payload))


_FAULT = struct.Struct("<BH")


@dataclass(frozen=True)
class Fault:
    """FAULT, rig -> host: the rig has latched a fault, motor off (3 bytes).

    `code` is a `FaultCode` (or 0x80-0xFF, rig-specific); `detail` is code-specific.
    """

    TYPE: ClassVar[MessageType] = MessageType.FAULT

    code: int
    detail: int = 0

    def __post_init__(self) -> None:
        code = _uint("FAULT", "code", self.code, 8)
        _set(self, "code", FaultCode(code) if code in FaultCode._value2member_map_ else code)
        _set(self, "detail", _uint("FAULT", "detail", self.detail, 16))

    def _pack(self) -> bytes:
        return _FAULT.pack(self.code, self.detail)

    @classmethod
    def _unpack(cls, payload: bytes) -> Self:
        _expect_length(cls.TYPE, payload, _FAULT.size)
        return cls(*_FAULT.unpack(payload))


Message = Hello | Capabilities | State | StateRaw | Control | Heartbeat | Fault | Estop | Clear

MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, Capabilities, State, StateRaw, Control, Heartbeat, Fault, Estop, Clear)
}
