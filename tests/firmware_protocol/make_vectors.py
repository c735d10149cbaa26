"""Fill in the "hex" of firmware_protocol/vectors.json from its fields (a developer tool).

    .venv/bin/python tests/firmware_protocol/make_vectors.py

Run it only when the protocol deliberately changes (new version, new vector): the tests
check the Python and C codecs against the hex this writes, and PROTOCOL.md quotes some of
it. Frames are encoded by the Python package; rejects are built from their "wire" bytes
(delimiter appended) or their "body" (CRC appended, XORed with "crc_xor", COBS, delimiter).
"""

from __future__ import annotations

import json
from pathlib import Path

from fp_vectors import VECTORS_PATH, frame_vectors

from firmware_protocol.cobs import cobs_encode
from firmware_protocol.crc import crc32


def reject_hex(entry: dict) -> str:
    """The wire bytes of one reject vector, delimiter included, as hex."""
    if "wire" in entry:
        return entry["wire"] + "00"
    body = bytes.fromhex(entry["body"])
    crc = crc32(body) ^ entry.get("crc_xor", 0)
    return (cobs_encode(body + crc.to_bytes(4, "little")) + b"\x00").hex()


def render(document: dict) -> str:
    """The JSON with one vector per line, so that diffs show which vector changed."""
    head = {k: v for k, v in document.items() if k not in ("frames", "rejects")}
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    for index, key in enumerate(("frames", "rejects")):
        entries = ",\n".join(f"    {json.dumps(entry)}" for entry in document[key])
        lines.append(f'  "{key}": [\n{entries}\n  ]' + ("," if index == 0 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    document = json.loads(Path(VECTORS_PATH).read_text())
    for entry, vector in zip(document["frames"], frame_vectors(document), strict=True):
        entry["hex"] = vector.frame_hex_from_python()
    for entry in document["rejects"]:
        entry["hex"] = reject_hex(entry)
    Path(VECTORS_PATH).write_text(render(document))


if __name__ == "__main__":
    main()
