"""Small rooms: no function over 60 lines and no class over 300 in hil/, plant_server/ and
controller_client/ (tools/check_sizes.py lists offenders, for a person to read)."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _checker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "tools/check_sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_function_over_60_lines_and_no_class_over_300() -> None:
    checker = _checker()
    assert (checker.MAX_FUNCTION_LINES, checker.MAX_CLASS_LINES) == (60, 300)
    assert checker.offenders(ROOT) == []


def test_the_check_sees_an_oversized_function_and_class(tmp_path: pathlib.Path) -> None:
    package = tmp_path / "hil"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    methods = "\n".join(f"    def m{i}(self):\n        return {i}\n" for i in range(101))
    (package / "big.py").write_text(f"def long():\n{body}\n\n\nclass Big:\n{methods}")
    found = _checker().offenders(tmp_path)
    assert [(kind, name, length) for _, _, kind, name, length in found] == [
        ("function", "long", 61), ("class", "Big", 303)]
