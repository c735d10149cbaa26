"""A tuning's files: tuning.json (the record, also what `--resume` reads), tuned.yaml (a
complete run config with the tuned gains) and tuning.html (convergence, costs over the draws
before and after, trajectories on the worst draw). Plots use matplotlib's object API on the
Agg canvas, as hil/reporting/html.py does."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controller_client.tuning.batch import trajectory
from controller_client.tuning.engine import Batch, Problem, best_of
from controller_client.tuning.plants import plant_model
from controller_client.tuning.problem import (
    HELD_OUT_STREAM,
    Settings,
    failed_draws,
    robust_cost,
)

SCHEMA = "hil-tuning/1"
FILES = ("tuning.json", "tuned.yaml", "tuning.html", "convergence.png", "costs.png",
         "worst_draw.png")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_record(out_dir: Path) -> dict[str, Any]:
    """tuning.json of a tuning folder (for --resume), or ValueError saying what is wrong."""
    path = out_dir / "tuning.json"
    try:
        record = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror}); --resume needs the folder "
                         f"of an earlier `hil tune`") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); start a new tuning") from None
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {record.get('schema')!r} is not {SCHEMA}")
    return dict(record)


def history_of(record: Mapping[str, Any]) -> list[Batch]:
    return [Batch(b["candidates"], b["costs"]) for b in record["history"]]


def summarise(problem: Problem, history: Sequence[Batch], *, run_id: str, complete: bool,
              workers: int, elapsed_s: float, base_config: Mapping[str, Any]
              ) -> dict[str, Any]:
    """The tuning.json record: best and baseline on the training draws and held out."""
    s = problem.settings
    names = problem.gain_names
    best, best_cost, best_index = best_of(history)
    if not best:
        best, best_cost = list(problem.default_gains), float("nan")
    rows = np.array([problem.default_gains, best])
    train, train_values = problem.evaluate(rows, problem.train)
    held, held_values = problem.evaluate(rows, problem.held_out)
    robust = robust_cost(train, s.mean_weight).tolist()
    held_robust = robust_cost(held, s.mean_weight).tolist()
    held_failed = failed_draws(held).tolist()
    better = held_failed[1] == 0 and held_robust[1] < held_robust[0]
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "controller": s.controller,
        "complete": complete,
        "gain_names": list(names),
        "best_gains": dict(zip(names, best, strict=True)),
        "best_cost": best_cost,
        "best_evaluation": best_index,
        "baseline_gains": dict(zip(names, problem.default_gains, strict=True)),
        "baseline_cost": robust[0],
        "evaluations": sum(len(b.costs) for b in history),
        "budget": s.budget,
        "optimizer": s.optimizer,
        "seed": s.seed,
        "draws": s.draws,
        "uncertainty": s.uncertainty,
        "workers": workers,
        "elapsed_s": elapsed_s,
        "held_out": {
            "draws": s.draws,
            "seed_stream": HELD_OUT_STREAM,
            "tuned_cost": held_robust[1],
            "baseline_cost": held_robust[0],
            "tuned_better": better,
            "tuned_failed_draws": held_failed[1],
            "baseline_failed_draws": held_failed[0],
            "verdict": _verdict(better, held_failed[1], s.draws),
        },
        "failed_draws": {"baseline": int(failed_draws(train)[0]),
                         "tuned": int(failed_draws(train)[1])},
        "per_draw": {"baseline": train[0].tolist(), "tuned": train[1].tolist(),
                     "held_out_baseline": held[0].tolist(), "held_out_tuned": held[1].tolist()},
        "experiment_metrics": experiment_metrics(problem.metric_names, dict(s.cost),
                                                 train_values, held_values),
        "settings": s.as_dict(),
        "base_config": dict(base_config),
        "history": [{"candidates": b.candidates, "costs": b.costs} for b in history],
    }


def experiment_metrics(names: Sequence[str], cost: Mapping[str, float], train: np.ndarray,
                       held: np.ndarray) -> dict[str, Any] | None:
    """The experiment's metrics of the default and the tuned gains (rows 0 and 1 of `train`
    and `held`: (2, draws, starts, metrics)): per draw (the mean over the starts; None where
    a gate tripped or it could not be measured) and their mean over the draws that gave one;
    None without an experiment."""
    if not names:
        return None

    def per_draw(values: np.ndarray) -> dict[str, list[float | None]]:
        with np.errstate(all="ignore"):
            mean = values.mean(axis=1)  # over the starts
        return {name: [None if not np.isfinite(v) else float(v) for v in mean[:, j]]
                for j, name in enumerate(names)}

    def means(draws: dict[str, list[float | None]]) -> dict[str, float | None]:
        return {name: (float(np.mean(ok)) if (ok := [v for v in values if v is not None])
                       else None) for name, values in draws.items()}

    record: dict[str, Any] = {"names": list(names), "cost": dict(cost)}
    for where, values in (("training", train), ("held_out", held)):
        record[where] = {who: per_draw(values[i]) for i, who in enumerate(("baseline",
                                                                              "tuned"))}
        record[f"{where}_mean"] = {who: means(draws)
                                   for who, draws in record[where].items()}
    return record


def _verdict(better: bool, failed: int, draws: int) -> str:
    if better:
        return "the tuned gains are better on draws the optimiser never saw"
    if failed:
        return (f"FAILED: the tuned gains trip the plant's safety gates on {failed} of {draws} "
                f"draws the optimiser never saw; do not put them on a rig")
    return ("OVERFIT: the tuned gains are not better than the defaults on draws the optimiser "
            "never saw; do not put them on a rig")


def checkpoint(settings: Settings, history: Sequence[Batch], *, run_id: str,
               base_config: Mapping[str, Any]) -> dict[str, Any]:
    """What --resume needs, written after every batch (the full record replaces it at the
    end): a tuning killed outright loses at most the batch it was running."""
    best, best_cost, _ = best_of(history)
    return {"schema": SCHEMA, "run_id": run_id, "controller": settings.controller,
            "complete": False, "best_cost": best_cost, "best_gains": best,
            "evaluations": sum(len(b.costs) for b in history),
            "settings": settings.as_dict(), "base_config": dict(base_config),
            "history": [{"candidates": b.candidates, "costs": b.costs} for b in history]}


def write_checkpoint(out_dir: Path, record: Mapping[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / "tuning.json", json.dumps(record))


def tuned_config(record: Mapping[str, Any]) -> dict[str, Any]:
    """The base run config with the controller and its tuned gains."""
    config = json.loads(json.dumps(record["base_config"]))
    config.setdefault("controller", {})
    config["controller"]["name"] = record["controller"]
    config["controller"]["gains"] = [record["best_gains"][n] for n in record["gain_names"]]
    return config


def write_outputs(out_dir: Path, record: Mapping[str, Any], problem: Problem) -> None:
    """tuning.json, tuned.yaml (validated as a run config) and tuning.html with its plots."""
    import yaml

    from hil.config import validate_config

    out_dir.mkdir(parents=True, exist_ok=True)
    config = tuned_config(record)
    validate_config(config, str(out_dir / "tuned.yaml"))
    _write_atomic(out_dir / "tuned.yaml",
                  f"# hil tune {record['run_id']}: {record['controller']} tuned gains "
                  f"({record['evaluations']} evaluations)\n"
                  + yaml.safe_dump(config, sort_keys=False))
    _write_html(out_dir, record, problem)
    _write_atomic(out_dir / "tuning.json", json.dumps(record, indent=1))


def _plot_convergence(record: Mapping[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    costs = np.array([c for b in record["history"] for c in b["costs"]])
    fig = Figure(figsize=(8, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if costs.size:
        ax.scatter(np.arange(costs.size), costs, s=6, alpha=0.4, label="each candidate")
        ax.plot(np.minimum.accumulate(costs), color="C3", label="best so far")
    ax.axhline(record["baseline_cost"], color="k", ls="--", lw=1, label="default gains")
    ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("robust cost")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _plot_costs(record: Mapping[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    d = record["per_draw"]
    fig = Figure(figsize=(8, 3.5))
    FigureCanvasAgg(fig)
    for i, (title, base, tuned) in enumerate((
            ("training draws", d["baseline"], d["tuned"]),
            ("held-out draws", d["held_out_baseline"], d["held_out_tuned"]))):
        ax = fig.add_subplot(1, 2, i + 1)
        k = np.arange(len(base))
        ax.bar(k - 0.2, base, 0.4, label="default")
        ax.bar(k + 0.2, tuned, 0.4, label="tuned")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("draw")
        if i == 0:
            ax.set_ylabel("cost")
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def trajectory_panels(model: Any) -> list[tuple[str, int, str]]:
    """("state" or "input", index, axis label) of the worst-draw plot: the states of `model`
    that are not rates (its positions and angles), then each input, labelled with the
    model's own names and units (`state_names`, `state_units`, its inputs')."""
    panels = [("state", i, f"{name} ({unit})")
              for i, (name, unit) in enumerate(zip(model.state_names, model.state_units,
                                                   strict=True))
              if not unit.endswith("/s")]
    inputs = model.inputs
    panels += [("input", j, f"{name} ({unit})")
               for j, (name, unit) in enumerate(zip(inputs.names, inputs.units, strict=True))]
    return panels


def _plot_worst(record: Mapping[str, Any], problem: Problem, path: Path) -> int:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    worst = int(np.argmax(record["per_draw"]["tuned"]))
    panels = trajectory_panels(plant_model(problem.plant))
    rows = (len(panels) + 1) // 2
    fig = Figure(figsize=(8, 3 * rows))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, 2, i + 1) for i in range(len(panels))]
    tuned = [record["best_gains"][n] for n in record["gain_names"]]
    for label, gains in (("default", problem.default_gains), ("tuned", tuned)):
        t, x, u = trajectory(problem.make_law, gains, problem.train, worst)
        for ax, (what, index, _) in zip(axes, panels, strict=True):
            if what == "input":
                ax.plot(t[1:], u[:, index], label=label, lw=0.8)
            else:
                ax.plot(t, x[:, index], label=label)
    _plot_targets(problem, axes, panels, t)
    for ax, (_, _, name) in zip(axes, panels, strict=True):
        ax.set_ylabel(name)
        ax.set_xlabel("t (s)")
    axes[0].legend()
    fig.suptitle(f"worst training draw for the tuned gains: draw {worst}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return worst


def _plot_targets(problem: Problem, axes: Sequence[Any], panels: Sequence[tuple[str, int, str]],
                  t_s: np.ndarray) -> None:
    """Each referenced state's target, dashed in black beside it (as report.html draws it)."""
    from hil.experiment.signals import evaluate_series

    spec = problem.experiment
    if spec is None or not spec.referenced:
        return
    targets = evaluate_series(np.ascontiguousarray(t_s), spec.reference,
                              len(spec.state_names))
    for ax, (what, index, _) in zip(axes, panels, strict=True):
        if what == "state" and index in spec.recorded:
            ax.plot(t_s, targets[:, index], "k--", lw=0.8, label="target")


def _metrics_table(metrics: Mapping[str, Any] | None) -> str:
    """The experiment's metrics, default vs tuned, mean over the held-out draws ("" without
    an experiment); the cost's metrics marked with their weight."""
    if not metrics:
        return ""
    e = html.escape

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    mean = metrics["held_out_mean"]
    rows = "".join(
        f"<tr><td>{e(name)}</td><td>{cell(mean['baseline'][name])}</td>"
        f"<td>{cell(mean['tuned'][name])}</td>"
        f"<td>{metrics['cost'].get(name, '')}</td></tr>" for name in metrics["names"])
    return ("\n<h2>Experiment metrics, mean over the held-out draws</h2>\n<table><tr><th>"
            "</th><th>default</th><th>tuned</th><th>weight in the cost</th></tr>"
            f"{rows}</table>")


def _write_html(out_dir: Path, record: Mapping[str, Any], problem: Problem) -> None:
    _plot_convergence(record, out_dir / "convergence.png")
    _plot_costs(record, out_dir / "costs.png")
    worst = _plot_worst(record, problem, out_dir / "worst_draw.png")
    e = html.escape
    held = record["held_out"]
    gains_rows = "".join(
        f"<tr><td>{e(n)}</td><td>{record['baseline_gains'][n]:.6g}</td>"
        f"<td>{record['best_gains'][n]:.6g}</td></tr>" for n in record["gain_names"])
    state = "complete" if record["complete"] else "INTERRUPTED (resume with --resume)"
    metrics = _metrics_table(record.get("experiment_metrics"))
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>hil tune {e(record['run_id'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto}}
td,th{{padding:2px 10px;text-align:right}}</style></head><body>
<h1>Tuning of {e(record['controller'])}: {e(state)}</h1>
<p>{record['evaluations']} of {record['budget']} evaluations, optimiser {e(record['optimizer'])},
seed {record['seed']}, {record['draws']} plant draws at +-{record['uncertainty']:.0%}
(friction +-{2 * record['uncertainty']:.0%}), {record['workers']} worker(s),
{record['elapsed_s']:.1f} s.</p>
<table><tr><th></th><th>default</th><th>tuned</th></tr>
<tr><td>robust cost, training draws</td><td>{record['baseline_cost']:.6g}</td>
<td>{record['best_cost']:.6g}</td></tr>
<tr><td>robust cost, held-out draws</td><td>{held['baseline_cost']:.6g}</td>
<td>{held['tuned_cost']:.6g}</td></tr>{gains_rows}</table>
<p><b>{e(held['verdict'])}</b></p>{metrics}
<h2>Convergence</h2><img src="convergence.png" alt="convergence">
<h2>Cost per draw, before and after</h2><img src="costs.png" alt="costs per draw">
<h2>Trajectories on the worst draw (training draw {worst})</h2>
<img src="worst_draw.png" alt="trajectories on the worst draw">
</body></html>
"""
    _write_atomic(out_dir / "tuning.html", page)
