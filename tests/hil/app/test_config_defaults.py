"""One set of defaults: `hil run` without --config runs exactly configs/default.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hil.app.process import ResourceMeter
from hil.config import load_config

ROOT = Path(__file__).resolve().parents[3]


# Not a setting: the folder a config file was read from (None for the built-in defaults).
WHERE_FROM = "source_dir"


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a nested dict, keyed by its dotted path."""
    if not isinstance(node, dict):
        return {path: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_leaves(value, f"{path}.{key}" if path else key))
    return out


def settings(path: Path | None) -> dict[str, Any]:
    dumped = load_config(path).model_dump(mode="json")
    dumped.pop(WHERE_FROM)
    return _leaves(dumped)


def test_built_in_defaults_equal_the_shipped_default_yaml_key_by_key() -> None:
    built_in = settings(None)
    shipped = settings(ROOT / "configs" / "default.yaml")
    assert sorted(built_in) == sorted(shipped)
    assert len(built_in) > 80  # every section, not an empty walk
    differing = {k: (built_in[k], shipped[k]) for k in built_in if built_in[k] != shipped[k]}
    assert differing == {}


def test_realtime_hygiene_is_asked_for_by_default() -> None:
    realtime = load_config(None).realtime
    assert realtime.sched_fifo is True and realtime.lock_memory is True


def test_the_comparison_sees_a_changed_key(tmp_path: Path) -> None:
    changed = tmp_path / "c.yaml"
    changed.write_text((ROOT / "configs" / "default.yaml").read_text()
                       + "record:\n  html: false\n")
    built_in, other = settings(None), settings(changed)
    assert {k for k in built_in if built_in[k] != other[k]} == {"record.html"}


def test_resource_meter_sees_memory_taken_between_start_and_attach() -> None:
    meter = ResourceMeter()
    block = bytearray(64 * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page so it is resident
        block[i] = 1
    meter.attached()
    figures = meter.report()
    assert figures["rss_mb_at_attach"] - figures["rss_mb_at_start"] == pytest.approx(64, abs=8)
    assert figures["rss_mb_peak"] >= figures["rss_mb_at_attach"]
    assert figures["threads"] >= 1 and figures["open_fds"] >= 3
    del block
