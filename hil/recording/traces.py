"""A run's inputs as its readers show them: per input, its recording column, the name and
unit a person sees, and its limits (None where the run did not say).

The exports, report.html, the live view and `hil replay` all read the inputs here, from a
recording's input columns (`Recording.inputs`) and the plant's description (in plant.rec's
header, in report.json): the description keys `input_names`, `input_units` and
`input_limits` of a plant with any number of inputs, else, for a run folder written before
several inputs, the one input `force_n` described by `input_name`, `input_unit` and
`max_force_n`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hil.dynamics.inputs import Inputs, InputsError
from hil.recording.recorder import INPUT_COLUMN, Recording

__all__ = ["InputTrace", "described_inputs", "field_names", "input_traces", "recorded_inputs"]


@dataclass(frozen=True, slots=True)
class InputTrace:
    """One input: `column` in the recording, shown as `name` in `unit`, kept within
    [`low`, `high`] (None when unknown)."""

    column: str
    name: str
    unit: str
    low: float | None = None
    high: float | None = None

    @property
    def limited(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "name": self.name, "unit": self.unit,
                "low": self.low, "high": self.high}


def described_inputs(description: Mapping[str, Any]) -> list[InputTrace]:
    """The inputs a plant's description declares: `input_names`/`input_units`/
    `input_limits`, else the legacy one input (`input_name`, `input_unit`, `max_force_n`) in
    the column `force_n`. Empty when the description's input keys cannot be read."""
    if "input_names" in description:
        try:
            inputs = Inputs.from_description(dict(description))
        except InputsError:
            return []
        return [InputTrace(name, name, unit, low, high) for name, unit, low, high in
                zip(inputs.names, inputs.units, inputs.low, inputs.high, strict=True)]
    limit = description.get("max_force_n")
    bound = float(limit) if isinstance(limit, int | float) and not isinstance(limit, bool) \
        and math.isfinite(limit) and limit > 0 else None
    return [InputTrace(INPUT_COLUMN, str(description.get("input_name") or "force"),
                       str(description.get("input_unit") or "N"),
                       -bound if bound is not None else None, bound)]


def input_traces(inputs: Sequence[str], labels: Mapping[str, str], units: Mapping[str, str],
                 description: Mapping[str, Any]) -> list[InputTrace]:
    """The recorded input columns `inputs` (with the recording's `labels` and `units`),
    limited as `description` says when it describes as many inputs."""
    described = described_inputs(description)
    if len(described) != len(inputs):
        described = []
    out = []
    for i, column in enumerate(inputs):
        said = described[i] if described else None
        name = labels.get(column) or column
        if column == INPUT_COLUMN and name == column:  # an old recording without a label
            name = said.name if said is not None else "force"
        out.append(InputTrace(column, name, units.get(column, "") or (said.unit if said else ""),
                              said.low if said else None, said.high if said else None))
    return out


def recorded_inputs(rec: Recording, description: Mapping[str, Any] | None = None
                    ) -> list[InputTrace]:
    """The inputs of recording `rec`; the plant's description in its header, updated by
    `description` (report.json's `plant`), gives their limits."""
    desc = dict(rec.meta.get("plant") or {})
    desc.update({k: v for k, v in (description or {}).items() if v is not None})
    return input_traces(rec.inputs, rec.labels, rec.units, desc)


def field_names(traces: Sequence[InputTrace], taken: Collection[str]) -> list[str]:
    """A field name per input for an export: its name, or its column where the name would
    hide another field (`taken`) or another input."""
    out: list[str] = []
    for trace in traces:
        hidden = trace.name != trace.column and (trace.name in taken or trace.name in out)
        out.append(trace.column if hidden else trace.name)
    return out
