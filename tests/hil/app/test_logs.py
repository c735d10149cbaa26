"""Logging: every event reaches the JSON log file; the console level can be raised alone."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hil.app import logs


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "t.log.jsonl").read_text().splitlines()]


def test_events_go_to_the_file_and_the_console(tmp_path: Path) -> None:
    console = _Pipe()
    log = logs.configure("t", "info", tmp_path, stream=console)
    log.info("hello", k=1)
    log.debug("hidden")
    assert [e["event"] for e in _events(tmp_path)] == ["hello"]
    assert json.loads(console.getvalue())["k"] == 1


def test_console_level_env_keeps_info_in_the_file_only(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logs.CONSOLE_LEVEL_ENV, "warning")
    console = _Pipe()
    log = logs.configure("t", "info", tmp_path, stream=console)
    log.info("quiet")
    log.warning("loud")
    assert [e["event"] for e in _events(tmp_path)] == ["quiet", "loud"]
    assert [json.loads(x)["event"] for x in console.getvalue().splitlines()] == ["loud"]
