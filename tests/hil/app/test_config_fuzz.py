"""The config loader, fuzzed: random values (huge, tiny, negative, NaN, inf, strings, lists,
maps) at random keys, as overrides, as `hil run --set` text and as YAML files. Every input
ends as a loaded config or a ConfigError naming the problem (never another exception), and a
loaded config has every number of the schema's table within its range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from config_kit import TABLE, assert_every_number_in_range, bound_values, override
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from hil.cli.run import parse_settings
from hil.config import Config, ConfigError, load_config

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


KEYS = sorted({override(path, 0)[0] for path in TABLE} | {
    "run.mode", "plant.endpoint", "plant.params", "controller.name", "controller.options",
    "record.history_db", "gates.critical", "run", "safety.deadline", "run.nope",
    "nope.deeper.still", "plant.initial_state.0"})

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2.0, max_value=2.0),
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64, -2**64, 10**400, 1e-320, -0.0, 1e300]),
)
TEXTS = st.one_of(st.text(max_size=12),
                  st.sampled_from(["nan", "inf", "-inf", "1e400", "1e12", "0x10", "1_000",
                                   ".5", "true", "null", "", " 3 "]))
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS)
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


def load_or_refuse(path: Path | None, overrides: dict[str, Any]) -> None:
    try:
        config = load_config(path, overrides)
    except ConfigError as exc:
        event("refused")
        assert str(exc) and "\n" not in str(exc)
        return
    event("loaded")
    assert_every_number_in_range(config)


def test_the_checker_sees_a_number_out_of_range() -> None:
    loaded = load_config(None, {"tuning.bounds": {"k": [1.0, 2.0]}})
    assert_every_number_in_range(loaded)
    beyond = loaded.model_copy(update={"tuning": loaded.tuning.model_copy(
        update={"bounds": {"k": [1.0, 2e6]}})})
    with pytest.raises(AssertionError, match=r"tuning\.bounds"):
        assert_every_number_in_range(beyond)


def near_the_bounds(path: str) -> st.SearchStrategy[tuple[str, Any]]:
    """(path, a number at, just inside or just beyond a bound, or anywhere near the range)."""
    field = TABLE[path]
    assert field.range is not None
    low, high = field.range.low, field.range.high
    edges = [value for side in ("low", "high") for value in bound_values(field, side)]
    if field.kind is int:
        around = st.integers(min_value=int(low) - 2, max_value=int(high) + 2)
    else:
        margin = (high - low) / 10
        around = st.floats(min_value=low - margin, max_value=high + margin)
    return st.tuples(st.just(path), st.one_of(st.sampled_from(edges), around))


@FUZZ
@given(st.sampled_from(sorted(TABLE)).flatmap(near_the_bounds))
def test_a_number_loads_exactly_when_it_is_in_its_range(case: tuple[str, Any]) -> None:
    path, value = case
    key, placed = override(path, value)
    try:
        load_config(None, {key: placed})
    except ConfigError as exc:
        event("refused")
        assert value not in TABLE[path].range and key in str(exc), (path, value, str(exc))
        return
    event("loaded")
    assert value in TABLE[path].range, (path, value)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_overrides_load_in_range_or_are_refused(overrides: dict[str, Any]) -> None:
    load_or_refuse(None, overrides)


@FUZZ
@given(st.sampled_from(KEYS), st.one_of(TEXTS, VALUES.map(
    lambda v: str(yaml.safe_dump(v, default_flow_style=True)).strip())))
def test_hil_run_set_text_loads_in_range_or_is_refused(key: str, text: str) -> None:
    # What `hil run --set` does before it starts anything (hil/cli/run.py): a ValueError from
    # parse_settings, like a ConfigError, is exit 2 with its message.
    try:
        overrides = parse_settings([f"{key}={text}"])
    except ValueError as exc:
        assert str(exc).startswith(f"--set {key}")
        return
    load_or_refuse(None, overrides)


SECTIONS = {name: sorted(field.annotation.model_fields)
            for name, field in Config.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}
# A section of a config file: its own keys with random values, or any value at all.
SECTION_ENTRIES = st.sampled_from(sorted(SECTIONS)).flatmap(lambda section: st.tuples(
    st.just(section), st.one_of(
        st.dictionaries(st.sampled_from(SECTIONS[section]), VALUES, max_size=3), VALUES)))
DOCUMENTS = st.lists(SECTION_ENTRIES, max_size=3).map(dict)


@FUZZ
@given(DOCUMENTS)
def test_yaml_files_load_in_range_or_are_refused(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    load_or_refuse(path, {})
