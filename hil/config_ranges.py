"""The range of every number in the run configuration, and the walk that makes them one table.

Each numeric field of the schema (hil/config.py) carries a `Range` in its annotation, on the
number itself or on each entry of a list or map of numbers. At load, a value outside its range,
or not finite (NaN, inf), is refused with the key, the value and the range; so is a boolean
given for a number. `numeric_fields(Config)` walks the schema into one table keyed by dotted
path (`[]` for each entry of a list, `.*` for each value of a map): the boundary tests, the
config fuzz test and the table in docs/safety.md ("Config ranges") are made from it, and a
numeric field without a range shows there as None.

    python -m hil.config_ranges   # prints the docs/safety.md section from the schema
"""

from __future__ import annotations

import math
import sys
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

OUT_OF_RANGE = "out_of_range"


def show_number(value: float) -> str:
    """A number as a message shows it: a float exactly (the one just past a bound shows as
    such) without a trailing `.0`, an integer too long to print whole by its size."""
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}an integer of {value.bit_length()} bits"
    return str(value)


@dataclass(frozen=True)
class Range:
    """The values a number of the config may take: low .. high, each bound included unless
    open; `why` says why the bounds are where they are, when it is not obvious."""

    low: float
    high: float
    why: str = ""
    low_open: bool = False
    high_open: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"Range: low {self.low} must be < high {self.high}")

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        return (f"{'(' if self.low_open else '['}{show_number(self.low)}, "
                f"{show_number(self.high)}{')' if self.high_open else ']'}")

    def check(self, value: float) -> float:
        """`value` if it is in range; else the error the loader reports with the key."""
        if value in self:
            return value
        what = ("is not a finite number" if isinstance(value, float)
                and not math.isfinite(value) else "is out of range")
        problem = f"{show_number(value)} {what}: must be in {self}"
        raise PydanticCustomError(OUT_OF_RANGE, "{problem}",
                                  {"problem": problem + (f" ({self.why})" if self.why else "")})

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        checked = core_schema.no_info_after_validator_function(self.check, handler(source))
        return core_schema.no_info_before_validator_function(_not_a_bool, checked)


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("bool_for_number", "must be a number, not true or false")
    return value


@dataclass(frozen=True)
class NumericField:
    """One numeric entry of the schema: its type (int or float) and its range (None: none)."""

    kind: type
    range: Range | None


def numeric_fields(model: type[BaseModel]) -> dict[str, NumericField]:
    """Every number of `model` and its nested models, by dotted path, in declaration order."""
    table: dict[str, NumericField] = {}
    for name, field in model.model_fields.items():
        _walk(table, name, field.annotation, tuple(field.metadata))
    return table


def _walk(table: dict[str, NumericField], path: str, annotation: Any,
          metadata: tuple[Any, ...]) -> None:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        _walk(table, path, args[0], metadata + tuple(args[1:]))
    elif origin in (Union, types.UnionType):
        for arg in args:
            _walk(table, path, arg, metadata)
    elif origin is list:
        _walk(table, f"{path}[]", args[0], ())
    elif origin is dict:
        _walk(table, f"{path}.*", args[1], ())
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            _walk(table, f"{path}.{name}", field.annotation, tuple(field.metadata))
    elif annotation in (int, float):
        ranges = [m for m in metadata if isinstance(m, Range)]
        table[path] = NumericField(annotation, ranges[0] if ranges else None)


def ranges_markdown(model: type[BaseModel]) -> str:
    """The "Config ranges" section of docs/safety.md, made from the schema."""
    lines = [
        "## Config ranges",
        "",
        "Every number of the config has a range, checked at load (hil/config.py, one `Range` per",
        "key; hil/config_ranges.py). A value outside it, a NaN or an infinity, or `true`/`false`",
        "for a number is refused before anything starts: `hil run`, `hil-plant` and",
        "`hil-controller` exit 2 with one line naming the key, the value and the range. `[]` is",
        "each entry of a list, `.*` each value of a map. `plant.params` and",
        "`controller.options` are checked by the model and the law that own them. Made by",
        "`python -m hil.config_ranges`; a test checks that this table is the schema's.",
        "",
        "| key | type | range | why |",
        "|-----|------|-------|-----|",
    ]
    for path, field in numeric_fields(model).items():
        shown = str(field.range) if field.range else "none"
        why = field.range.why if field.range else ""
        lines.append(f"| `{path}` | {field.kind.__name__} | {shown} | {why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # The schema's ranges are instances of hil.config_ranges.Range, not of this __main__ copy.
    from hil import config_ranges
    from hil.config import Config

    sys.stdout.write(config_ranges.ranges_markdown(Config))
