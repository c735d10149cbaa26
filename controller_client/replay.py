"""Replay a run: feed its recorded states to a fresh controller and compare the controls.

`python -m controller_client.replay RUN_DIR` (what `hil replay RUN_DIR` runs) reads the run's
config.yaml and controller.rec, creates the law the run used, resets it, and calls
`compute(state, t)` once per recorded control, in order, with the arguments the loop gave it,
applying the gain changes of the run's controller.json (`hil gains`) where the run applied
them. A deterministic law reproduces every recorded force; the largest difference is reported.

Exit status: 0 when every force is within `--tolerance` (N), 1 when one is not, 2 when the run
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

from controller_client.main import law_from_config
from hil.app.process import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from hil.config import ConfigError, load_config
from hil.recording.recorder import Recording, RecordingError, read_recording

__all__ = ["ReplayResult", "main", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay found. Differences are replayed minus recorded; None when not compared."""

    controller: str
    controls: int
    max_force_diff_n: float
    worst_control_seq: int | None
    max_sigma_diff: float | None
    tolerance_n: float
    recording_complete: bool
    recording_problem: str | None
    gain_changes: int = 0  # the run's gain changes, applied where the run applied them

    @property
    def reproduced(self) -> bool:
        return self.max_force_diff_n <= self.tolerance_n

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


def replay(run_dir: str | Path, tolerance_n: float = 1e-9) -> ReplayResult:
    """Replay `run_dir`'s controller.rec through a fresh law built from its config.yaml, with
    the gain changes of its controller.json applied where the run applied them.

    Raises ConfigError for an unusable config and RecordingError / OSError for a missing or
    unreadable recording.
    """
    run = Path(run_dir)
    config = load_config(run / "config.yaml")
    rec = read_recording(run / "controller.rec")
    if "t0_ns" not in rec.meta or rec.meta["t0_ns"] is None:
        raise RecordingError(f"{run / 'controller.rec'}: no t0_ns in its header")
    changes = gain_changes(run)
    law = law_from_config(config)
    law.reset()
    forces, sigmas = _replayed(law, rec, changes)
    diff = np.abs(forces - rec["force_n"])
    worst = int(np.argmax(diff)) if rec.rows else None
    sigma_diff = np.abs(sigmas - rec["sigma"]) if "sigma" in rec else np.empty(0)
    sigma_diff = sigma_diff[np.isfinite(sigma_diff)]
    return ReplayResult(
        controller=config.controller.name,
        controls=rec.rows,
        max_force_diff_n=float(diff[worst]) if worst is not None else 0.0,
        worst_control_seq=int(rec["control_seq"][worst]) if worst is not None else None,
        max_sigma_diff=float(sigma_diff.max()) if len(sigma_diff) else None,
        tolerance_n=tolerance_n,
        recording_complete=rec.complete,
        recording_problem=rec.problem,
        gain_changes=len(changes),
    )


def _replayed(law: Any, rec: Recording, changes: list[tuple[float, list[float]]]
              ) -> tuple[np.ndarray, np.ndarray]:
    """(forces, sigmas) of `law` on each recorded state, with the same t the loop gave it
    (controller_client/answer.py: simulated time in lockstep), and each gain change applied
    before the first control that followed it in the run: in lockstep the change's time is
    that of the first state it answered; in realtime it is the run time it was applied at,
    before that control was sent."""
    names = [c.name for c in rec.columns]
    state_cols = names[names.index("lateness_ns") + 1:names.index("force_n")]
    states = np.column_stack([rec[c] for c in state_cols]) if rec.rows else np.empty((0, 0))
    t0_ns = int(rec.meta["t0_ns"])
    period_ns = rec.meta.get("period_ns") if rec.meta.get("mode") == "lockstep" else None
    pending = list(reversed(changes))
    forces = np.empty(rec.rows)
    sigmas = np.full(rec.rows, math.nan)
    state = np.zeros(len(state_cols))
    for i in range(rec.rows):
        state[:] = states[i]
        t_s = (int(rec["state_seq"][i]) * int(period_ns) * 1e-9 if period_ns
               else (int(rec["state_t_ns"][i]) - t0_ns) * 1e-9)
        sent_s = t_s if period_ns else (int(rec["send_ns"][i]) - t0_ns) * 1e-9
        while pending and pending[-1][0] <= sent_s:
            law.set_gains(pending.pop()[1])
        forces[i] = law.compute(state, t_s)
        sigmas[i] = getattr(law, "sigma", math.nan)
    return forces, sigmas


def _summary(run: str, r: ReplayResult) -> str:
    lines = [f"replayed {r.controls} controls of {r.controller} from {run}/controller.rec"]
    if r.recording_problem or not r.recording_complete:
        lines.append(f"  recording not closed cleanly: {r.recording_problem or 'no end marker'}"
                     " (replayed what it holds)")
    if r.gain_changes:
        lines.append(f"  with the run's {r.gain_changes} gain change"
                     f"{'s' if r.gain_changes != 1 else ''} (controller.json)")
    where = f" at control {r.worst_control_seq}" if r.max_force_diff_n > 0 else ""
    lines.append(f"  largest |force difference|: {r.max_force_diff_n:.3g} N{where}")
    if r.max_sigma_diff is not None:
        lines.append(f"  largest |sigma difference|: {r.max_sigma_diff:.3g}")
    verdict = "yes" if r.reproduced else "NO"
    lines.append(f"  reproduced within {r.tolerance_n:g} N: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hil replay", description="Replay a run's recorded states through a fresh "
        "controller and report whether it reproduces the recorded controls.")
    parser.add_argument("run_dir", help="a run folder with config.yaml and controller.rec")
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest force difference (N) that still counts as reproduced")
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
    print(json.dumps(result.to_dict()) if args.json else _summary(args.run_dir, result))
    return EXIT_OK if result.reproduced else EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
