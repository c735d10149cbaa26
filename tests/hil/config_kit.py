"""The config's table of ranges, as the config tests use it: values at and beyond each bound,
the override that puts a value at a table path, and the numbers a loaded config holds there."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from hil.config import Config
from hil.config_ranges import NumericField, numeric_fields

TABLE = numeric_fields(Config)


def override(path: str, value: Any) -> tuple[str, Any]:
    """The dotted key and the value that puts `value` at table `path` (`[]`: in a list of two,
    `.*`: in a map), e.g. ("tuning.bounds", {"x": [v, v]}) for tuning.bounds.*[]."""
    cut = min((i for i in (path.find("["), path.find(".*")) if i >= 0), default=len(path))
    key, shape = path[:cut], path[cut:]
    while shape:
        if shape.endswith("[]"):
            value, shape = [value, value], shape[:-2]
        else:
            value, shape = {"x": value}, shape[:-2]
    return key, value


def bound_values(field: NumericField, side: str) -> tuple[float, float]:
    """(a value at this side that loads, the nearest one beyond it that does not)."""
    assert field.range is not None
    bound, is_open = ((field.range.low, field.range.low_open) if side == "low"
                      else (field.range.high, field.range.high_open))
    outward = -1 if side == "low" else 1

    def step(n: int) -> float:
        """The value n steps outward from the bound (n < 0: inward)."""
        if field.kind is int:
            return int(bound) + n * outward
        return math.nextafter(float(bound), n * outward * math.inf)

    return (step(-1) if is_open else bound), (bound if is_open else step(1))


def path_tokens(path: str) -> list[str]:
    """tuning.bounds.*[] -> ["tuning", "bounds", "*", "[]"]."""
    tokens: list[str] = []
    for part in path.split("."):
        name = part.replace("[]", "")
        tokens += ([name] if name else []) + ["[]"] * part.count("[]")
    return tokens


def numbers_at(node: Any, tokens: list[str]) -> Iterator[Any]:
    """The values at `tokens` below `node` that a table path names (a list or map where a
    number may also stand is left to the path that names its entries)."""
    if node is None:  # an optional value left unset
        return
    if not tokens:
        if not isinstance(node, (list, dict)):
            yield node
        return
    head, rest = tokens[0], tokens[1:]
    if head == "[]":
        for entry in node if isinstance(node, list) else []:
            yield from numbers_at(entry, rest)
    elif head == "*":
        for entry in node.values():
            yield from numbers_at(entry, rest)
    else:
        yield from numbers_at(getattr(node, head), rest)


def assert_every_number_in_range(config: Config) -> None:
    for path, field in TABLE.items():
        assert field.range is not None, f"{path} has no range"
        for value in numbers_at(config, path_tokens(path)):
            assert type(value) is field.kind and isinstance(value, (int, float)), (path, value)
            assert value in field.range, (path, value, str(field.range))
