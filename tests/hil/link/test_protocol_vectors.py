"""The link protocol's golden vectors (docs/protocol-vectors.json, docs/protocol.md section 11)
against the codec: each message encodes to exactly its bytes and decodes back to its fields
with their exact types; each reject is refused for its reason; every kind the codec knows has
a vector; and the file is what tools/make_protocol_vectors.py makes (never edited by hand).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import struct
from typing import Any

import pytest

from hil.link import messages as msg

ROOT = pathlib.Path(__file__).resolve().parents[3]
VECTORS_PATH = ROOT / "docs" / "protocol-vectors.json"
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
MESSAGES = VECTORS["messages"]
REJECTS = VECTORS["rejects"]


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_protocol_vectors", ROOT / "tools" / "make_protocol_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same_typed(got: Any, want: Any, where: str) -> None:
    """`got` equals `want` with the same type at every level: an int stays an int, a float a
    float (1.0 is no 1), a bool a bool; maps in the same key order."""
    assert type(got) is type(want), f"{where}: {got!r} ({type(got).__name__}) is not " \
                                    f"{want!r} ({type(want).__name__})"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for key in want:
            same_typed(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{where}: {len(got)} entries, not {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same_typed(g, w, f"{where}[{i}]")
    else:
        assert repr(got) == repr(want), f"{where}: {got!r} != {want!r}"  # -0.0 is not 0.0


def test_the_file_is_what_the_tool_makes() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == _tool().render(), (
        "docs/protocol-vectors.json is out of date: run tools/make_protocol_vectors.py")


def test_every_kind_of_the_codec_has_a_vector_and_the_table_is_the_codecs() -> None:
    assert {v["kind"] for v in MESSAGES} == set(msg.SCHEMA)
    assert VECTORS["kinds"] == {kind: [name for name, _ in spec]
                                for kind, spec in msg.SCHEMA.items()}
    assert VECTORS["protocol"] == msg.PROTOCOL_VERSION
    names = [v["name"] for v in MESSAGES + REJECTS]
    assert len(names) == len(set(names)), "vector names are unique"


@pytest.mark.parametrize("vector", MESSAGES, ids=[v["name"] for v in MESSAGES])
def test_each_message_encodes_to_its_bytes_and_decodes_to_its_fields(vector: dict) -> None:
    kind, fields, data = vector["kind"], vector["fields"], bytes.fromhex(vector["hex"])
    assert list(fields) == [name for name, _ in msg.SCHEMA[kind]]
    assert msg.encode(kind, *fields.values()) == data
    decoded = msg.decode(data)
    assert decoded.kind == kind
    same_typed(decoded.fields, fields, kind)


HOT_PACKERS = {"state": msg.pack_state, "control": msg.pack_control,
               "observation": msg.pack_observation}


@pytest.mark.parametrize("vector", [v for v in MESSAGES if v["kind"] in HOT_PACKERS],
                         ids=[v["name"] for v in MESSAGES if v["kind"] in HOT_PACKERS])
def test_the_hot_path_packers_make_the_same_bytes(vector: dict) -> None:
    packer = HOT_PACKERS[vector["kind"]]
    assert packer(*vector["fields"].values()) == bytes.fromhex(vector["hex"])


@pytest.mark.parametrize("vector", REJECTS, ids=[v["name"] for v in REJECTS])
def test_each_reject_is_refused_for_its_reason(vector: dict) -> None:
    with pytest.raises(msg.MessageError) as info:
        msg.decode(bytes.fromhex(vector["hex"]))
    assert (info.value.kind, info.value.detail) == (vector["code"], vector["detail"])


def test_the_vectors_cover_the_edge_cases_an_implementation_gets_wrong() -> None:
    by_name = {v["name"]: v for v in MESSAGES}
    inputs = {len(v["fields"]["u"]) for v in MESSAGES if v["kind"] == "control"}
    assert {1, 2, msg.MAX_INPUT_DIM} <= inputs
    assert type(by_name["control_int_input"]["fields"]["u"][0]) is int
    assert type(by_name["control_integral_float"]["fields"]["u"][0]) is float
    assert by_name["gains_reply_refused"]["fields"]["names"] == []
    # every msgpack integer head the encoder uses: fixints, uint8..64, int8..64
    heads = {bytes.fromhex(v["hex"])[6] for v in MESSAGES if v["name"].startswith("sync_")}
    assert {0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3} <= heads
    assert {0x00, 0x7F, 0xFF, 0xE0} <= heads
    # str8 and str16 headers, array16 and map16 headers, each where a vector needs it
    def head(name: str, at: int) -> int:
        return bytes.fromhex(by_name[name]["hex"])[at]

    assert head("hello_non_ascii_client", 8) == 0xD9  # 93 a5 'hello' 02 d9
    assert head("bye_replaced", 5) == 0xDA  # 92 a3 'bye' da
    assert head("state_sixteen_entries", 17) == 0xDC  # 95 a5 'state' 03 cf <8> dc
    assert head("welcome_one_input", 10) == 0xDE  # 93 a7 'welcome' 02 de
    codes = {v["code"] for v in REJECTS}
    assert codes == {"malformed", "unknown_kind", "bad_arity", "bad_type", "bad_shape",
                     "non_finite", "oversized"}


@pytest.mark.parametrize("image", VECTORS["shm"]["images"],
                         ids=[i["name"] for i in VECTORS["shm"]["images"]])
def test_each_segment_image_holds_its_fields_at_the_documented_offsets(image: dict) -> None:
    """docs/protocol.md, section 9.1, read with struct at its offsets (little-endian)."""
    data = bytes.fromhex(image["hex"])
    n, m = image["n_states"], image["n_inputs"]
    assert len(data) == VECTORS["shm"]["segment_bytes"] == 512
    assert struct.unpack_from("<QIIqqQI", data, 0) == (
        VECTORS["shm"]["magic"], 2, n, 0, image["session"], 0, m)
    counter, bell, waiters, seq, t_ns, flags = struct.unpack_from("<QIIqqq", data, 64)
    assert (counter, bell, waiters) == (2, 1, 0)  # one write: odd, then even; one ring
    state = image["state"]
    assert (seq, t_ns, flags) == (state["seq"], state["t_ns"], state["flags"])
    assert list(struct.unpack_from(f"<{n}d", data, 104)) == state["state"]
    counter, bell, waiters, session, *times = struct.unpack_from("<QIIqqqqqq", data, 384)
    control = image["control"]
    assert (counter, bell, waiters, session) == (2, 1, 0, image["session"])
    assert times == [control[k] for k in ("seq", "state_seq", "t_state_rx_ns", "t_send_ns",
                                          "compute_ns")]
    assert list(struct.unpack_from(f"<{m}d", data, 448)) == control["u"]


DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


def _doc_section(title: str) -> str:
    start = DOC.index(f"\n## {title}")
    return DOC[start:DOC.index("\n## ", start + 1)]


def test_the_documents_message_table_is_the_codecs() -> None:
    rows = {}
    for line in _doc_section("4. Messages").splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`"):
            fields = [f.split("`")[1] for f in cells[2].split(", ") if f.startswith("`")]
            rows[cells[0].strip("`")] = fields
    assert rows == {kind: [name for name, _ in spec] for kind, spec in msg.SCHEMA.items()}


def test_the_documents_rejection_codes_are_the_plants() -> None:
    from plant_server.answers import FIXES

    documented = set()
    for line in _doc_section("7. Refusals and errors").splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`"):
            documented.add(cells[0].strip("`"))
    refusals = {"version_mismatch", "already_attached", "run_ending", "observers_full"}
    assert documented == set(FIXES) | refusals
