"""Makes docs/protocol-vectors.json, the link protocol's golden vectors (docs/protocol.md,
section 11), from the codec itself (hil/link/messages.py).

    .venv/bin/python tools/make_protocol_vectors.py           # (re)write the file
    .venv/bin/python tools/make_protocol_vectors.py --check   # exit 1 if it is out of date

`messages`: named messages with their fields (in the order of the message table) and the
exact bytes the codec encodes them to; every kind of the table, one input and several, ints
inside vectors, empty lists, integers of every msgpack width, strings of every header size,
a map of more than 15 entries. `rejects`: bytes the codec must refuse, with the rejection
kind it must give. `shm`: images of the shared-memory segment (docs/protocol.md, section 9)
after the plant wrote a state and the controller a control, made by hil/link/shm.py's own
writers (the plant's pid and pid namespace, which vary, zeroed). The script checks each
vector against the codec before writing it: a vector the codec does not reproduce is never
written. tests/hil/link/test_protocol_vectors.py
checks that the file is what this script makes.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import struct
import sys
from typing import Any

import msgpack

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hil.link import messages as msg  # noqa: E402
from hil.link import shm  # noqa: E402

OUT = ROOT / "docs" / "protocol-vectors.json"

DIP_STATE = [0.01, 0.05, -0.02, 0.1, -0.5, 0.25]
DESCRIPTION_ONE_INPUT: dict[str, Any] = {
    "name": "cartpole",
    "state_names": ["x", "theta", "x_dot", "theta_dot"],
    "state_units": ["m", "rad", "m/s", "rad/s"],
    "params": {"cart_mass_kg": 1.0, "pole_mass_kg": 0.1, "pole_length_m": 0.5},
    "input_names": ["force"],
    "input_units": ["N"],
    "input_limits": [[-20.0, 20.0]],
    "equilibrium": [0.0, 0.0, 0.0, 0.0],
    "equilibrium_input": [0.0],
    "regulated": ["theta"],
    "wraps": ["theta"],
    "substeps": 4,
    "mode": "lockstep",
    "rate_hz": 1000.0,
    "period_ns": 1000000,
    "t0_ns": 22839151219049,
    "clock_id": "4ed1f60f-fb4a-4ba6-bbe1-f57483559e82",
    "duration_s": 5.0,
    "initial_state": [0.0, 0.1, 0.0, 0.0],
    "watchdog_timeout_ms": 2000.0,
    "safe_state": False,
    "safe_reason": "",
    "transport": "zmq",
}
DESCRIPTION_TWO_INPUTS_SHM: dict[str, Any] = {
    **DESCRIPTION_ONE_INPUT,
    "name": "helicopter",
    "state_names": ["pitch", "yaw", "pitch_dot", "yaw_dot"],
    "state_units": ["rad", "rad", "rad/s", "rad/s"],
    "params": {},
    "input_names": ["v_pitch", "v_yaw"],
    "input_units": ["V", "V"],
    "input_limits": [[-24.0, 24.0], [-15.0, 15.0]],
    "equilibrium_input": None,
    "regulated": ["pitch", "yaw"],
    "wraps": ["yaw"],
    "mode": "realtime",
    "rate_hz": 500.0,
    "period_ns": 2000000,
    "clock_id": "",
    "watchdog_timeout_ms": 20.0,
    "safe_state": True,
    "safe_reason": "watchdog",
    "transport": "shm",
    "shm": {"segment": "hil-0123456789abcdef0123", "session": 3141592653589793,
            "spin_us": 120.0, "cpu": None},
}


def _messages() -> list[tuple[str, str, list[Any]]]:
    """(name, kind, fields in the table's order) for every vector of `messages`."""
    t = 1_000_000_123_456
    return [
        ("hello", "hello", [2, "hil-controller"]),
        ("hello_non_ascii_client", "hello", [2, "régulateur µ-λ 制御 (str8: 32 bytes and up)"]),
        ("welcome_one_input", "welcome", [2, DESCRIPTION_ONE_INPUT]),
        ("welcome_two_inputs_shm", "welcome", [2, DESCRIPTION_TWO_INPUTS_SHM]),
        ("refuse_version_mismatch", "refuse", [
            "version_mismatch", "protocol version mismatch: controller speaks 1, plant speaks 2"]),
        ("refuse_bad_type_hello", "refuse", [
            "bad_type", "hello: hello.protocol has type float: an int field takes a msgpack "
            "integer, never a float or a bool"]),
        ("state_six", "state", [0, 1_234_567_890_123, DIP_STATE, 0]),
        ("state_one_entry_safe", "state", [1, 1_234_568_890_123, [0.5], msg.FLAG_SAFE
                                           | msg.FLAG_WATCHDOG]),
        ("state_final", "state", [5000, 1_239_567_890_123, DIP_STATE,
                                  msg.FLAG_SAFE | msg.FLAG_SAFETY | msg.FLAG_FINAL]),
        ("state_int_entries", "state", [2, 1_234_569_890_123, [0, 1.5, -3], 0]),
        ("state_sixteen_entries", "state", [3, 1_234_570_890_123,
                                            [i / 8 for i in range(16)], 0]),
        ("control_one_input", "control", [42, 41, [12.5], t, t + 26_544, 2_345]),
        ("control_two_inputs", "control", [300, 299, [19.62, -3.5], t, t + 30_000, 4_100]),
        ("control_eight_inputs", "control", [7, 6, [float(i) - 3.25 for i in range(8)], t,
                                             t + 1, 0]),
        ("control_int_input", "control", [1, 0, [0], t, t + 9_000, 800]),
        ("control_integral_float", "control", [2, 1, [1.0, -0.0], t, t + 9_000, 800]),
        ("control_wide_ints", "control", [2**32, 65_535, [0.25], 2**62, 2**63 - 1, 255]),
        ("heartbeat", "heartbeat", [t]),
        ("fault_estop", "fault", ["estop", "operator: smoke test"]),
        ("clear", "clear", []),
        ("bye_from_controller", "bye", ["stopped"]),
        ("bye_replaced", "bye", ["replaced: another controller took over " * 8]),
        ("sync", "sync", [t]),
        ("sync_reply", "sync_reply", [t, t + 812_345]),
        ("estop", "estop", ["smoke"]),
        ("estop_empty_reason", "estop", [""]),
        ("operator_clear", "operator_clear", ["alice@lab pid 4242"]),
        ("ack_estop", "ack", ["estop", "safe output applied; run ending"]),
        ("ack_clear", "ack", ["clear", "cleared: watchdog"]),
        ("push", "push", ["force", 5.0, 50.0, "alice@lab pid 4242"]),
        ("push_int_value_and_duration", "push", ["torque", -2, 200, "bob"]),
        ("ack_push", "ack", ["push", "pushed force by 5 N for 50 ms from t = 3.214 s"]),
        ("ack_push_refused", "ack", [
            "push", "refused: force=200 N is beyond the input's limits [-150, 150] N"]),
        ("gains_get", "gains_get", [7, "alice@lab pid 4242"]),
        ("gains_set_named", "gains_set", [8, "alice@lab pid 4242", ["k1", "K"], [2.5, 20]]),
        ("gains_set_positional", "gains_set", [9, "alice", [], [2.0, 16.0, 42.0]]),
        ("gains_reply_applied", "gains_reply", [8, True, "applied before the next control",
                                                ["k1", "K"], [2.5, 20.0], [2.0, 20.0]]),
        ("gains_reply_refused", "gains_reply", [
            9, False, "no controller attached to this plant", [], [], []]),
        ("observe", "observe", [2, "hil watch: alice@lab pid 7"]),
        ("observing", "observing", [2000, "20261206-191000-a1b2", DESCRIPTION_ONE_INPUT]),
        ("observation_one_input", "observation", [
            25, 1_234_592_890_123, 0.025, [0.0, 0.1, 0.0, 0.0], [3.25], 0, 26, 0, -1, "", 0]),
        ("observation_two_inputs_safe", "observation", [
            50, 1_234_617_890_123, 0.05, [0.1, -0.2, 0.0, 1.5], [0.0, 0.0], msg.FLAG_SAFE
            | msg.FLAG_WATCHDOG, 51, 3, 412_345, "watchdog", 2]),
        ("error_stale_control", "error", [
            "stale_control", "seq 5 <= 7: control.seq must increase with every control sent"]),
        ("error_not_newest", "error", [
            "not_newest", "lockstep: control seq 9 answers state 3; the plant waits for the "
            "answer to state 5"]),
    ] + [(f"sync_{name}", "sync", [value]) for name, value in _INT_WIDTHS]


# One integer per msgpack integer format, at its edges (sync carries any int).
_INT_WIDTHS = [
    ("positive_fixint_0", 0), ("positive_fixint_127", 127), ("uint8_128", 128),
    ("uint8_255", 255), ("uint16_256", 256), ("uint16_65535", 65_535),
    ("uint32_65536", 65_536), ("uint32_4294967295", 2**32 - 1), ("uint64_4294967296", 2**32),
    ("uint64_max_int64", 2**63 - 1), ("negative_fixint_minus_1", -1),
    ("negative_fixint_minus_32", -32), ("int8_minus_33", -33), ("int8_minus_128", -128),
    ("int16_minus_129", -129), ("int32_minus_32769", -32_769),
    ("int64_minus_2147483649", -(2**31) - 1), ("int64_min", -(2**63)),
]


def _p(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def _rejects() -> list[tuple[str, bytes, str]]:
    """(name, bytes, rejection kind) for every vector of `rejects`."""
    f64 = struct.Struct(">d")
    hello = _p(["hello", 2, "x"])
    return [
        ("not_msgpack", b"\xc1", "malformed"),
        ("truncated", hello[:-1], "malformed"),
        ("trailing_bytes", hello + b"\x00", "malformed"),
        ("a_map_not_an_array", _p({"kind": "hello", "protocol": 2}), "malformed"),
        ("empty_array", _p([]), "malformed"),
        ("kind_not_a_str", _p([1, 2, "x"]), "malformed"),
        ("kind_as_bin", _p([b"hello", 2, "x"]), "malformed"),
        ("unknown_kind", _p(["self_destruct", 1]), "unknown_kind"),
        ("hello_missing_a_field", _p(["hello", 2]), "bad_arity"),
        ("hello_protocol_float", b"\x93\xa5hello\xcb" + f64.pack(2.0) + b"\xa1x", "bad_type"),
        ("hello_protocol_bool", _p(["hello", True, "x"]), "bad_type"),
        ("hello_protocol_nil", _p(["hello", None, "x"]), "bad_type"),
        ("hello_client_as_bin", _p(["hello", 2, b"x"]), "malformed"),
        ("hello_client_invalid_utf8", b"\x93\xa5hello\x02\xa1\xff", "malformed"),
        ("hello_client_too_long", _p(["hello", 2, "x" * (msg.MAX_STR_BYTES + 1)]), "malformed"),
        ("control_u_one_number_protocol_1", _p(["control", 1, 0, 12.5, 0, 0, 0]), "bad_type"),
        ("control_u_empty", _p(["control", 1, 0, [], 0, 0, 0]), "bad_shape"),
        ("control_u_nine_inputs", _p(["control", 1, 0, [1.0] * 9, 0, 0, 0]), "bad_shape"),
        ("control_u_str_entry", _p(["control", 1, 0, ["3.0"], 0, 0, 0]), "bad_type"),
        ("control_u_nan", _p(["control", 1, 0, [math.nan], 0, 0, 0]), "non_finite"),
        ("control_u_second_inf", _p(["control", 1, 0, [0.0, -math.inf], 0, 0, 0]),
         "non_finite"),
        ("control_seq_float", _p(["control", 1.0, 0, [0.0], 0, 0, 0]), "bad_type"),
        ("state_thirty_three_entries", _p(["state", 1, 0, [0.0] * 33, 0]), "bad_shape"),
        ("gains_reply_ok_as_int", _p(["gains_reply", 1, 1, "", [], [], []]), "bad_type"),
        ("push_value_as_str", _p(["push", "force", "5", 50.0, "alice"]), "bad_type"),
        ("push_without_operator", _p(["push", "force", 5.0, 50.0]), "bad_arity"),
        ("welcome_int_map_key", _p(["welcome", 2, {1: "x"}]), "malformed"),
        ("ext_value", _p(["bye", msgpack.ExtType(1, b"x")]), "malformed"),
        ("oversized", _p(["bye", "x" * msg.MAX_MESSAGE_BYTES]), "oversized"),
    ]


SHM_SESSION = 0x0123456789ABCDEF
# (name, state (seq, t_ns, values, flags), control (seq, state_seq, u, rx, send, compute))
_SHM_IMAGES = [
    ("six_states_one_input", (41, 1_234_567_890_123, DIP_STATE, 0),
     (42, 41, [12.5], 1_234_567_900_000, 1_234_567_926_544, 2_345)),
    ("four_states_two_inputs", (7, 1_234_567_890_123, [0.1, -0.2, 0.0, 1.5],
                                msg.FLAG_SAFE | msg.FLAG_WATCHDOG),
     (8, 7, [19.62, -3.5], 1_234_567_900_000, 1_234_567_930_000, 4_100)),
]


def _shm_image(name: str, state: tuple[Any, ...], control: tuple[Any, ...]) -> dict[str, Any]:
    """The segment after one state and one control, written by shm's own writers."""
    n_inputs = len(control[2])
    seg = shm.Segment.create(f"tcp://vectors-{os.getpid()}-{name}", len(state[2]), n_inputs)
    try:
        seg.u64[3] = SHM_SESSION  # the session word (offset 24), fixed for the vector
        shm.StateWriter(seg).write(*state)
        shm.ControlWriter(seg, SHM_SESSION).write(*control)
        image = bytearray(seg.buf)
    finally:
        seg.close()
    image[16:24] = bytes(8)  # the plant's pid
    image[32:40] = bytes(8)  # its pid namespace
    return {"name": name, "n_states": len(state[2]), "n_inputs": n_inputs,
            "session": SHM_SESSION,
            "state": dict(zip(("seq", "t_ns", "state", "flags"), state, strict=True)),
            "control": dict(zip(("seq", "state_seq", "u", "t_state_rx_ns", "t_send_ns",
                                 "compute_ns"), control, strict=True)),
            "hex": image.hex()}


def _message_vector(name: str, kind: str, values: list[Any]) -> dict[str, Any]:
    names = [field for field, _ in msg.SCHEMA[kind]]
    data = msg.encode(kind, *values)
    decoded = msg.decode(data)
    if decoded.kind != kind or decoded.fields != dict(zip(names, values, strict=True)):
        raise SystemExit(f"{name}: the codec does not decode its own bytes back")
    return {"name": name, "kind": kind, "fields": dict(zip(names, values, strict=True)),
            "hex": data.hex()}


def _reject_vector(name: str, data: bytes, code: str) -> dict[str, Any]:
    try:
        msg.decode(data)
    except msg.MessageError as exc:
        if exc.kind != code:
            raise SystemExit(f"{name}: rejected as {exc.kind}, not {code}") from None
        return {"name": name, "hex": data.hex(), "code": code, "detail": exc.detail}
    raise SystemExit(f"{name}: the codec accepts it")


def vectors() -> dict[str, Any]:
    """The file's content."""
    return {
        "protocol": msg.PROTOCOL_VERSION,
        "spec": "docs/protocol.md",
        "generated_by": "tools/make_protocol_vectors.py",
        "number_rule": "in fields, a JSON number with a '.' or an exponent is a float, one "
                       "without is an int",
        "constants": {"MAX_MESSAGE_BYTES": msg.MAX_MESSAGE_BYTES,
                      "MAX_STATE_DIM": msg.MAX_STATE_DIM, "MAX_INPUT_DIM": msg.MAX_INPUT_DIM,
                      "MAX_STR_BYTES": msg.MAX_STR_BYTES, "MAX_ARRAY_LEN": msg.MAX_ARRAY_LEN,
                      "MAX_MAP_LEN": msg.MAX_MAP_LEN, "FLAG_SAFE": msg.FLAG_SAFE,
                      "FLAG_WATCHDOG": msg.FLAG_WATCHDOG, "FLAG_SAFETY": msg.FLAG_SAFETY,
                      "FLAG_FINAL": msg.FLAG_FINAL, "OBSERVE_LEASE_MS": msg.OBSERVE_LEASE_MS},
        "kinds": {kind: [field for field, _ in spec] for kind, spec in msg.SCHEMA.items()},
        "messages": [_message_vector(*m) for m in _messages()],
        "rejects": [_reject_vector(*r) for r in _rejects()],
        "shm": {"segment_bytes": shm.SEGMENT_BYTES, "version": shm.VERSION,
                "magic": shm.MAGIC, "byte_order": "little-endian (x86-64)",
                "zeroed": "plant pid (offset 16) and pid namespace (offset 32)",
                "images": [_shm_image(*image) for image in _SHM_IMAGES]},
    }


def render() -> str:
    return json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run tools/make_protocol_vectors.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}: {text.count(chr(10))} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
