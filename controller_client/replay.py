"""Replay a run: feed its recorded states to a fresh controller and compare the controls.

`python -m controller_client.replay RUN_DIR` (what `hil replay RUN_DIR` runs) reads the run's
config.yaml and controller.rec, creates the law the run used, resets it, and calls
`compute(state, t)` once per recorded control, in order, with the arguments the loop gave it,
applying the gain changes of the run's controller.json (`hil gains`) where the run applied
them, and the run's experiment as the loop did (its sensors on each state, its target to a
law that takes one: docs/experiments.md). Its output is read as the loop reads it
(`law_output`: one number per input). A deterministic law reproduces every recorded input;
the largest difference of each input (in its own unit, e.g. `thrust_left` and
`thrust_right` in N) is reported, and where it is.

Exit status: 0 when every input of every control is within `--tolerance` (in the input's
unit), 1 when one is not or the law's output does not fit the recorded inputs, 2 when the run
folder lacks what a replay needs (config.yaml, a readable controller.rec).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller_client.main import experiment_parts, law_from_config
from controller_client.output import LawOutputError, law_output
from hil.app.process import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from hil.config import ConfigError, build_plant_model, load_config
from hil.recording.recorder import Recording, RecordingError, read_recording
from hil.recording.traces import recorded_inputs

__all__ = ["InputDiff", "ReplayResult", "main", "replay"]


@dataclass(frozen=True)
class InputDiff:
    """One input replayed: the largest |replayed - recorded| (in `unit`) and the control
    where it is (None when there was no control)."""

    name: str
    unit: str
    max_diff: float
    worst_control_seq: int | None


@dataclass(frozen=True)
class ReplayResult:
    """What a replay found: per input, the largest difference; `max_diff` is the largest of
    them (each in its input's unit), `worst_control_seq` where it is."""

    controller: str
    controls: int
    inputs: tuple[InputDiff, ...]
    max_diff: float
    worst_control_seq: int | None
    max_sigma_diff: float | None
    tolerance: float
    recording_complete: bool
    recording_problem: str | None
    gain_changes: int = 0  # the run's gain changes, applied where the run applied them

    @property
    def reproduced(self) -> bool:
        return self.max_diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reproduced": self.reproduced}


def gain_changes(run: Path) -> list[tuple[float, list[float]]]:
    """(run time, new gains) of each gain change the run applied, in order, from its
    controller.json (none when the file is missing: a run killed before it wrote one)."""
    path = run / "controller.json"
    if not path.exists():
        return []
    try:
        events = json.loads(path.read_text()).get("gain_changes") or []
        return [(float(e["time"]), [float(v) for v in e["new"]]) for e in events
                if e.get("applied")]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RecordingError(f"{path}: its gain_changes cannot be read ({exc})") from None


def replay(run_dir: str | Path, tolerance: float = 1e-9) -> ReplayResult:
    """Replay `run_dir`'s controller.rec through a fresh law built from its config.yaml, with
    the gain changes of its controller.json applied where the run applied them.

    Raises ConfigError for an unusable config, RecordingError / OSError for a missing or
    unreadable recording, LawOutputError when the law's output does not fit the inputs.
    """
    run = Path(run_dir)
    config = load_config(run / "config.yaml")
    if config.controller.command is not None:
        raise ConfigError(
            f"{run / 'config.yaml'}: this run's controls came from controller.command "
            f"{config.controller.command!r}, a program of your own, not from a law hil can "
            f"build (controller.name {config.controller.name!r} did not run); hil replay "
            f"re-runs Python laws: feed {run / 'controller.rec'}'s states to your program "
            f"yourself (`hil export` writes them as CSV)")
    rec = read_recording(run / "controller.rec")
    if "t0_ns" not in rec.meta or rec.meta["t0_ns"] is None:
        raise RecordingError(f"{run / 'controller.rec'}: no t0_ns in its header")
    if not rec.inputs:
        raise RecordingError(f"{run / 'controller.rec'}: no input columns (neither the "
                             f"header's input_columns nor force_n)")
    changes = gain_changes(run)
    model = build_plant_model(config)
    _check_fits(run, rec, model.describe())
    law = law_from_config(config, model)
    law.reset()
    replayed, sigmas = _replayed(law, config.controller.name, rec, changes,
                                 experiment_parts(config.experiment, law, model,
                                                  base_dir=config.source_dir))
    diff = np.abs(replayed - rec.input_matrix())
    seqs = rec["control_seq"]
    traces = recorded_inputs(rec)
    inputs = tuple(InputDiff(tr.name, tr.unit, *_worst(diff[:, k], seqs))
                   for k, tr in enumerate(traces))
    worst = max(inputs, key=lambda d: d.max_diff)
    sigma_diff = np.abs(sigmas - rec["sigma"]) if "sigma" in rec else np.empty(0)
    sigma_diff = sigma_diff[np.isfinite(sigma_diff)]
    return ReplayResult(
        controller=config.controller.name,
        controls=rec.rows,
        inputs=inputs,
        max_diff=worst.max_diff,
        worst_control_seq=worst.worst_control_seq,
        max_sigma_diff=float(sigma_diff.max()) if len(sigma_diff) else None,
        tolerance=tolerance,
        recording_complete=rec.complete,
        recording_problem=rec.problem,
        gain_changes=len(changes),
    )


def _check_fits(run: Path, rec: Recording, desc: dict[str, Any]) -> None:
    """RecordingError unless controller.rec records the states and as many inputs as the
    config's plant has: a law must never be fed another plant's states."""
    names = list(desc.get("state_names") or [])
    n_inputs = len(desc.get("input_names") or [None])
    if list(rec.states) != names or len(rec.inputs) != n_inputs:
        raise RecordingError(
            f"{run / 'controller.rec'} records the states {list(rec.states)} and "
            f"{len(rec.inputs)} input(s) {list(rec.inputs)}, but {run / 'config.yaml'}'s "
            f"plant has the states {names} and {n_inputs} input(s); replay a run folder with "
            f"the config it was run with")


def _worst(diff: np.ndarray, seqs: np.ndarray) -> tuple[float, int | None]:
    """(largest difference, its control's seq); NaN (a non-finite output) counts as the
    largest."""
    if not len(diff):
        return 0.0, None
    at = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
    return (math.inf if math.isnan(diff[at]) else float(diff[at])), int(seqs[at])


def _replayed(law: Any, law_name: str, rec: Recording, changes: list[tuple[float, list[float]]],
              experiment: tuple[Any, Any] = (None, None)) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, sigmas) of `law` on each recorded state, with the same t the loop gave it
    (controller_client/answer.py: simulated time in lockstep), and each gain change applied
    before the first control that followed it in the run: in lockstep the change's time is
    that of the first state it answered; in realtime it is the run time it was applied at,
    before that control was sent."""
    states = np.column_stack([rec[c] for c in rec.states]) if rec.rows and rec.states \
        else np.empty((rec.rows, len(rec.states)))
    t0_ns = int(rec.meta["t0_ns"])
    period_ns = rec.meta.get("period_ns") if rec.meta.get("mode") == "lockstep" else None
    pending = list(reversed(changes))
    n_inputs = len(rec.inputs)
    outputs = np.empty((rec.rows, n_inputs))
    sigmas = np.full(rec.rows, math.nan)
    state = np.zeros(len(rec.states))
    target, sensors = experiment
    for i in range(rec.rows):
        state[:] = states[i]
        if sensors is not None:
            sensors.sense(state)
        t_s = (int(rec["state_seq"][i]) * int(period_ns) * 1e-9 if period_ns
               else (int(rec["state_t_ns"][i]) - t0_ns) * 1e-9)
        sent_s = t_s if period_ns else (int(rec["send_ns"][i]) - t0_ns) * 1e-9
        while pending and pending[-1][0] <= sent_s:
            law.set_gains(pending.pop()[1])
        out = law.compute(state, t_s) if target is None else \
            law.compute(state, t_s, target.at(t_s))
        outputs[i] = law_output(law_name, out, n_inputs)
        sigmas[i] = getattr(law, "sigma", math.nan)
    return outputs, sigmas


def _summary(run: str, r: ReplayResult) -> str:
    lines = [f"replayed {r.controls} controls of {r.controller} from {run}/controller.rec"]
    if r.recording_problem or not r.recording_complete:
        lines.append(f"  recording not closed cleanly: {r.recording_problem or 'no end marker'}"
                     " (replayed what it holds)")
    if r.gain_changes:
        lines.append(f"  with the run's {r.gain_changes} gain change"
                     f"{'s' if r.gain_changes != 1 else ''} (controller.json)")
    for d in r.inputs:
        where = f" at control {d.worst_control_seq}" if d.max_diff > 0 else ""
        unit = f" {d.unit}" if d.unit else ""
        lines.append(f"  largest |{d.name} difference|: {d.max_diff:.3g}{unit}{where}")
    if r.max_sigma_diff is not None:
        lines.append(f"  largest |sigma difference|: {r.max_sigma_diff:.3g}")
    verdict = "yes" if r.reproduced else "NO"
    units = "|".join(sorted({d.unit for d in r.inputs if d.unit}))
    lines.append(f"  reproduced within {r.tolerance:g}{' ' + units if units else ''}: "
                 f"{verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hil replay", description="Replay a run's recorded states through a fresh "
        "controller and report whether it reproduces the recorded controls.")
    parser.add_argument("run_dir", help="a run folder with config.yaml and controller.rec")
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest difference of an input, in its unit, that still counts "
                             "as reproduced")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        result = replay(args.run_dir, args.tolerance)
    except (ConfigError, RecordingError, OSError) as exc:
        print(f"hil replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LawOutputError as exc:
        print(f"hil replay: {exc}", file=sys.stderr)
        return EXIT_FAULT
    print(json.dumps(result.to_dict()) if args.json else _summary(args.run_dir, result))
    return EXIT_OK if result.reproduced else EXIT_FAULT


if __name__ == "__main__":
    from hil.app.exits import leave

    leave(main())
