"""The page's figures: for one config x experiment, a panel per law side by side, each with
every seed's trajectory of the referenced states (else the plant's regulated states, else
its first state), from the runs' plant recordings, and the reference dashed. Matplotlib's
Agg, no display."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PANEL_WIDTH_IN = 4.2


def _load(row: Mapping[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    import json

    from hil.recording.recorder import RecordingError, read_recording

    folder = Path(str(row["run_dir"]))
    try:
        report = json.loads((folder / "report.json").read_text())
        return read_recording(folder / "plant.rec"), report
    except (OSError, ValueError, RecordingError):
        return None


def _plotted(plant: Any, report: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The states to draw and their references at the recording's times."""
    from hil.reporting.experiment import reference_series

    experiment = report.get("experiment") or {}
    refs = [r["state"] for r in experiment.get("reference") or () if r["state"] in plant]
    if not refs:
        regulated = [s for s in (report.get("plant") or {}).get("regulated") or () if s in plant]
        return regulated or [plant.states[0]], {}
    desc = {"state_names": list(plant.states),
            "equilibrium": (report.get("plant") or {}).get("equilibrium")}
    return refs, reference_series(experiment, desc, plant["sim_time_s"])


def png_bytes(fig: Any) -> bytes:
    import io

    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def group_figure(rows: Sequence[Mapping[str, Any]], laws: Sequence[str]) -> bytes | None:
    """PNG of the panels, None when no run of the group has a readable recording."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    loaded = [(row, _load(row)) for row in rows]
    if not any(data is not None for _, data in loaded):
        return None
    fig = Figure(figsize=(PANEL_WIDTH_IN * len(laws), 3.0), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(laws), sharey=True, squeeze=False)[0]
    for ax, law in zip(axes, laws, strict=True):
        drawn_refs: set[str] = set()
        for row, data in loaded:
            if row["law"] != law or data is None:
                continue
            plant, report = data
            states, refs = _plotted(plant, report)
            t = plant["sim_time_s"]
            for state in states:
                ax.plot(t, plant[state], lw=1.0, label=f"{state} seed {row['seed']}")
                if state in refs and state not in drawn_refs:
                    ax.plot(t, refs[state], "k--", lw=1.0, label=f"{state} reference")
                    drawn_refs.add(state)
        ax.set_title(law)
        ax.set_xlabel("time (s)")
        ax.grid(True, alpha=0.35)
        ax.legend(fontsize="x-small")
    return png_bytes(fig)
