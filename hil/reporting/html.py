"""The run's HTML report: report.html plus PNG plots beside it, all from the run folder.

`write_html_report(run_dir)` reads report.json, the processes' JSON (for their HDR
histograms), config.yaml and the recordings (plant.rec, controller.rec; see
docs/recording.md) and writes:

- `latency_percentiles.png`: each latency leg (a backend's own too, such as a serial rig's)
  and each loop's lateness against percentile, on a "1 / (1 - p)" log axis so the tail
  (99%, 99.9%, ...) gets as much room as the median;
- `timing.png`: plant and controller lateness and the state-to-controller leg over time;
- `trajectories.png`: the state, then each of the plant's inputs on an axis of its own, over
  time (named, in its unit and with its limits drawn as the plant describes them: a force in
  N for a cart, a voltage in V for the rotary, two thrusts in N for a bicopter);
- `stability.png`: the sliding variable |sigma|, the share of steps in which V = sigma^2 / 2
  decreased, the mass matrix's condition number and the saturation duty, over time.

The last three need the recordings and mark each applied gain change (`hil gains`) with a
vertical line at its run time; a plot whose data is missing is left out and the page says so.
The page itself is self-contained (inline CSS and scripts, no network) and shows the verdict
and score, the plant's inputs (name, unit, limits), the gates, the latency table, the counters
and the run's config, and a replay of the run: the plant drawn from its description and
animated from the plant recording embedded in the page (at most `REPLAY_FRAMES` frames), with
play, pause, scrub and speed, a time cursor on its trajectory plots, and the gain changes,
gate trips, watchdog trips and clears marked on the timeline (the live view's plant.js and
replay.js, inlined).
Plots are drawn with matplotlib's object API on the Agg canvas: no pyplot, no GUI.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hdrh.histogram import HdrHistogram
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from hil.recording.mcap_export import timeline_events
from hil.recording.recorder import Recording, RecordingError, read_recording
from hil.recording.traces import InputTrace, described_inputs, recorded_inputs
from hil.runtime.latency import LatencyMonitor

__all__ = ["GAIN_MARK_COLOR", "PLOT_FILES", "gain_change_times", "percentile_curve",
           "plant_inputs", "write_html_report"]

PLOT_FILES = ("latency_percentiles.png", "timing.png", "trajectories.png", "stability.png")
LEGS = ("round_trip", "state_to_controller", "controller_to_plant", "compute")
LATENESS = ("plant_lateness", "controller_lateness")
_TAIL_TICKS = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)
_WINDOW = 100  # steps per rolling ratio in stability.png
_BIN_S = 0.02  # shortest run time per window in timing.png (at most 400 windows)
GAIN_MARK_COLOR = "#7048e8"  # gain changes, in the plots as on the replay's timeline


def gain_change_times(report: Mapping[str, Any]) -> list[float]:
    """Run times (s) of the applied gain changes in report.json (refused requests changed
    nothing and are not marked)."""
    return sorted(float(e["time"]) for e in report.get("gain_changes") or []
                  if isinstance(e, Mapping) and e.get("applied", True)
                  and isinstance(e.get("time"), int | float) and math.isfinite(e["time"]))


def plant_inputs(report: Mapping[str, Any], plant: Recording | None = None
                 ) -> list[InputTrace]:
    """The plant's inputs (column, name, unit, limits), from the recording's input columns
    and the plant's description in report.json (else the recording's header): `force` in N
    for a cart, `voltage` in V for the rotary, `thrust_left` and `thrust_right` for a
    bicopter."""
    if plant is not None and plant.inputs:
        return recorded_inputs(plant, report.get("plant") or {})
    return described_inputs(report.get("plant") or {})


def percentile_curve(histogram: Any, points: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """(percentiles, values in us) of an HDR histogram, spread evenly on log 1/(1-p).

    The curve runs from the 0th percentile to the one just below the maximum that the
    count resolves (1 - 1/count), and ends with the maximum itself at that last percentile.
    """
    count = histogram.get_total_count()
    if count == 0:
        return np.empty(0), np.empty(0)
    decades = max(math.log10(count), 1.0)
    p = 100.0 * (1.0 - 10.0 ** -np.linspace(0.0, decades, points))
    # One pass over the counts for every point (a get_value_at_percentile each walked them
    # 160 times: 2.4 s of a report's 4.5 s); the same values, hdrh's own definition.
    at = histogram.get_percentile_to_value_dict(p.tolist())
    values = np.array([at.get(x, 0) for x in p.tolist()], dtype=float)
    values[-1] = histogram.get_max_value()
    return p, values / 1000.0


def write_html_report(run_dir: str | Path) -> Path:
    """Write report.html and its plots into `run_dir`; return the path of report.html."""
    run = Path(run_dir)
    report = json.loads((run / "report.json").read_text())
    notes: list[str] = []
    histograms = _histograms(run, notes)
    plant = _recording(run / "plant.rec", notes)
    controller = _recording(run / "controller.rec", notes)
    plots: list[tuple[str, str]] = []
    if histograms:
        plots.append(_save(_latency_figure(histograms), run / "latency_percentiles.png",
                           "Latency percentile distribution (HDR histograms)"))
    if plant is not None and plant.rows:
        t_plant = plant["sim_time_s"]
        changes = gain_change_times(report)
        plots.append(_save(_timing_figure(plant, controller, t_plant, changes),
                           run / "timing.png", "Loop timing over the run"))
        inputs = plant_inputs(report, plant)
        named = ", ".join(f"{tr.name} ({tr.unit})" for tr in inputs)
        plots.append(_save(_trajectory_figure(plant, t_plant, inputs, changes,
                                              report.get("experiment")),
                           run / "trajectories.png", f"State and {named} trajectories"))
        if controller is not None and controller.rows:
            plots.append(_save(_stability_figure(plant, controller, t_plant, inputs, changes),
                               run / "stability.png", "Stability metrics over time"))
    made = {file for file, _ in plots}
    for stale in set(PLOT_FILES) - made:  # from an earlier report of this folder
        (run / stale).unlink(missing_ok=True)
    replay = _replay(report, plant) if plant is not None and plant.rows else ""
    page = run / "report.html"
    page.write_text(_page(report, plots, notes, _config_text(run, report), replay))
    return page


REPLAY_FRAMES = 6000  # at most; a long run is decimated evenly


def _replay(report: Mapping[str, Any], plant: Recording) -> str:
    """The replay section: canvases, controls, the data as JSON and the scripts, inline."""
    from importlib import resources

    desc = dict(plant.meta.get("plant") or report.get("plant") or {})
    names = [n for n in desc.get("state_names") or [] if n in plant] or list(plant.states)
    desc["state_names"], desc["state_units"] = names, [plant.units[n] for n in names]
    limit = ((report.get("safety") or {}).get("limits") or {}).get("track_limit_m")
    if limit:
        desc.setdefault("track_limit_m", limit)
    pick = np.arange(0, plant.rows, max(1, -(-plant.rows // REPLAY_FRAMES)))
    state = np.stack([plant[n][pick] for n in names], axis=1)

    def finite(a: np.ndarray) -> list[Any]:
        return [v if math.isfinite(v) else None for v in a.round(6).tolist()]

    data = {
        "plant": desc, "t": plant["sim_time_s"][pick].round(6).tolist(),
        "state": [finite(row) for row in state],
        "inputs": [{"name": tr.name, "unit": tr.unit, "low": tr.low, "high": tr.high,
                    "values": finite(plant[tr.column][pick])}
                   for tr in plant_inputs(report, plant)],
        "safe": [bool(f & 1) for f in plant["flags"][pick].tolist()],
        "events": [{"kind": e["kind"], "time": e["time"], "label": _event_label(e)}
                   for e in timeline_events(report)],
    }
    static = resources.files("hil.reporting.liveview").joinpath("static")
    scripts = "".join(static.joinpath(f).read_text(encoding="utf-8")
                      for f in ("plant.js", "replay.js")).replace("</script", "<\\/script")
    blob = json.dumps(data, separators=(",", ":"), default=str).replace("</", "<\\/")
    inputs = "".join(f'<canvas id="replay-input-{i}" class="replay-input" width="1000" '
                     f'height="130"></canvas>' for i in range(len(data["inputs"])))
    return (
        '<h2 id="replay">Replay</h2><div class="replay">'
        '<canvas id="replay-plant" width="720" height="320"></canvas>'
        '<div class="controls"><button id="replay-play" type="button">play</button>'
        '<input id="replay-scrub" type="range" min="0" value="0" step="1" '
        'aria-label="time">'
        '<label>speed <select id="replay-speed"><option>0.1</option><option>0.25</option>'
        '<option>0.5</option><option selected>1</option><option>2</option>'
        '<option>4</option></select></label> <b id="replay-time">–</b></div>'
        '<p id="replay-state" class="state"></p>'
        '<canvas id="replay-pos" width="1000" height="170"></canvas>'
        '<canvas id="replay-rate" width="1000" height="170"></canvas>'
        f"{inputs}"
        '<p class="legend">timeline marks: <span style="color:#7048e8">gains</span> '
        '<span style="color:#c92a2a">gate trips</span> '
        '<span style="color:#f08c00">watchdog</span> <span style="color:#2b8a3e">clears'
        '</span>; click a plot or an event to go there</p><ol id="replay-events"></ol></div>'
        f'<script id="replay-data" type="application/json">{blob}</script>'
        f"<script>{scripts}</script>")


def _event_label(event: Mapping[str, Any]) -> str:
    d = event.get("detail") or {}
    if event["kind"] in ("safety", "deadline_gate"):
        return f"{d.get('gate')} {_fmt(d.get('value'))} (limit {_fmt(d.get('limit'))})"
    if event["kind"] == "gains":
        if d.get("applied") is False:
            return f"refused ({d.get('detail')}) by {d.get('who', '?')}"
        return f"{d.get('old')} -> {d.get('new')} by {d.get('who', '?')}"
    if event["kind"] == "clear":
        return f"cleared {d.get('cleared')} by {d.get('by')}"
    return f"time to safe {_fmt(d.get('time_to_safe_ms'))} ms"



# ------------------------------------------------------------------------ inputs
def _histograms(run: Path, notes: list[str]) -> dict[str, Any]:
    """Every HDR histogram in plant.json and controller.json: the process's own, and those a
    section of it carries (a serial backend ships its legs under `serial.histograms`)."""
    found: dict[str, Any] = {}
    for name in ("plant", "controller"):
        try:
            doc = json.loads((run / f"{name}.json").read_text())
            monitors = [doc["histograms"]]
            LatencyMonitor.decode(monitors[0])  # validates: ValueError says what is wrong
        except (OSError, ValueError, KeyError, TypeError) as exc:
            notes.append(f"no latency histograms from {name}.json ({type(exc).__name__})")
            continue
        monitors += [v["histograms"] for v in doc.values()
                     if isinstance(v, dict) and isinstance(v.get("histograms"), dict)]
        for encoded in monitors:
            try:
                LatencyMonitor.decode(encoded)
            except ValueError:
                continue
            found.update({fig: HdrHistogram.decode(blob)
                          for fig, blob in encoded["histograms"].items()})
    return found


def _recording(path: Path, notes: list[str]) -> Recording | None:
    try:
        rec = read_recording(path)
    except FileNotFoundError:
        notes.append(f"no {path.name}: recording was off or the process did not start")
        return None
    except (OSError, RecordingError) as exc:
        notes.append(f"{path.name} unreadable: {exc}")
        return None
    if rec.problem:
        notes.append(f"{path.name}: {rec.truncated_bytes} bytes at the end ignored "
                     f"({rec.problem}); {rec.rows} rows read")
    elif not rec.complete:
        notes.append(f"{path.name} was not closed (its process was killed); {rec.rows} rows read")
    return rec


def _config_text(run: Path, report: Mapping[str, Any]) -> str:
    try:
        return (run / "config.yaml").read_text()
    except OSError:
        return yaml.safe_dump(report.get("config") or {}, sort_keys=False)


# ------------------------------------------------------------------------ plots
def _figure(rows: int, height: float) -> tuple[Figure, Sequence[Any]]:
    fig = Figure(figsize=(10, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.35)
    return fig, axes


def _save(fig: Figure, path: Path, title: str) -> tuple[str, str]:
    fig.savefig(path)
    return path.name, title


def _latency_figure(histograms: Mapping[str, Any]) -> Figure:
    fig = Figure(figsize=(10, 5.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    legs = [*LEGS, *sorted(set(histograms) - set(LEGS) - set(LATENESS))]  # e.g. serial legs
    for ax, names, title in ((axes[0], legs, "latency legs"),
                             (axes[1], LATENESS, "loop lateness")):
        drawn = 0
        for name in names:
            h = histograms.get(name)
            p, v = percentile_curve(h) if h is not None else (np.empty(0), np.empty(0))
            if len(p):
                ax.plot(1.0 / (1.0 - p / 100.0 + 1e-12), np.maximum(v, 1e-3),
                        label=f"{name} (n={h.get_total_count()})")
                drawn += 1
        if not drawn:  # lockstep has no deadlines, hence no lateness
            ax.text(0.5, 0.5, "nothing measured in this run", transform=ax.transAxes,
                    ha="center", va="center", color="0.4")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1 / (1 - q / 100) for q in _TAIL_TICKS]))
        ax.set_xticklabels([f"{q:g}%" for q in _TAIL_TICKS], rotation=30)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(1, None)
        ax.set_xlabel("percentile")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if drawn:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
        ax.set_ylabel("µs (log)")
    return fig


DISTURBANCE_COLOR = "tab:orange"


def _mark_gain_changes(axes: Sequence[Any], times: Sequence[float]) -> None:
    """A vertical line at each gain change on every axis; one legend entry, on the first."""
    for ax in axes:
        for i, time_s in enumerate(times):
            ax.axvline(time_s, color=GAIN_MARK_COLOR, lw=1.2, ls="--", zorder=0.5,
                       label="gains changed" if ax is axes[0] and i == 0 else None)


def _timing_figure(plant: Recording, controller: Recording | None, t: np.ndarray,
                   changes: Sequence[float] = ()) -> Figure:
    fig, axes = _figure(2, 6.0)
    # Lockstep has no deadlines: its lateness columns are all 0, which the log axis would
    # draw as a flat line at 1 us; say so instead.
    timed = bool(np.any(plant["lateness_ns"]))
    series = [(axes[0], "plant lateness", t, plant["lateness_ns"])] if timed else []
    if controller is not None and controller.rows:
        tc = _controller_time(plant, controller, t)
        if timed:
            series.append((axes[0], "controller lateness", tc, controller["lateness_ns"]))
        series.append((axes[1], "state → controller", tc,
                       controller["rx_ns"] - controller["state_t_ns"]))
    if not timed:
        axes[0].text(0.5, 0.5, "no lateness: lockstep has no deadlines", ha="center",
                     va="center", transform=axes[0].transAxes, color="0.4")
    window_s = max(_BIN_S, (t[-1] - t[0]) / 400)
    for ax, label, x, ns in series:
        centre, median, peak = _binned(x, np.maximum(ns / 1000.0, 1.0), window_s)
        line = ax.plot(centre, peak, lw=0.9, label=f"{label}: max")[0]
        ax.plot(centre, median, lw=0.9, ls="--", color=line.get_color(),
                label=f"{label}: median")
    _mark_gain_changes(axes, changes)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylabel("µs (log; < 1 shown as 1)")
        if ax.lines:
            ax.legend(fontsize=8, loc="upper right", ncols=2)
    axes[0].set_title(f"max and median per window of {window_s * 1000:.3g} ms", fontsize=10)
    axes[-1].set_xlabel("run time (s)")
    return fig


def _binned(t: np.ndarray, y: np.ndarray, window_s: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window centres, median, max) of `y` over windows of `window_s` of `t` (sorted)."""
    edges = np.arange(t[0], t[-1] + window_s, window_s)
    starts = np.searchsorted(t, edges[:-1] if len(edges) > 1 else edges)
    starts = np.unique(starts[starts < len(t)])
    ends = np.append(starts[1:], len(t))
    median = np.array([np.median(y[a:b]) for a, b in zip(starts, ends, strict=True)])
    peak = np.maximum.reduceat(y, starts)
    centre = (t[starts] + t[ends - 1]) / 2
    return centre, median, peak


def _trajectory_figure(plant: Recording, t: np.ndarray, inputs: Sequence[InputTrace],
                       changes: Sequence[float] = (),
                       experiment: Mapping[str, Any] | None = None) -> Figure:
    """The states (angles and positions, then rates), then each input on an axis of its own
    (named, in its unit, its limits as grey dashed lines) over run time; gain changes as
    purple lines; an experiment's reference as a black dashed line beside its state and its
    disturbances as orange spans (pulses) or lines (from their start on)."""
    state = plant.states
    rates = [n for n in state if n.endswith("_dot") or plant.units[n].endswith("/s")]
    groups = [[n for n in state if n not in rates], rates]
    groups = [g for g in groups if g]
    rows = len(groups) + len(inputs)
    fig, axes = _figure(rows, 2.4 * len(groups) + 1.9 * len(inputs))
    references = _references(experiment, plant, t)
    for ax, group in zip(axes, groups, strict=False):
        for name in group:
            ax.plot(t, plant[name], lw=0.9, label=f"{name} ({plant.units[name]})")
            if name in references:
                ax.plot(t, references[name], lw=1.0, ls="--", color="black",
                        label=f"{name} reference")
    _mark_disturbances(axes, experiment)
    for ax, trace in zip(axes[len(groups):], inputs, strict=True):
        ax.plot(t, plant[trace.column], lw=0.8, color="tab:red",
                label=f"{trace.name} ({trace.unit})")
        if trace.low is not None and trace.high is not None:
            ax.axhline(trace.high, color="0.4", ls="--", lw=0.8,
                       label=f"limits {trace.low:g} .. {trace.high:g} {trace.unit}")
            ax.axhline(trace.low, color="0.4", ls="--", lw=0.8)
        ax.set_ylabel(f"{trace.name} ({trace.unit})")
    _mark_gain_changes(axes, changes)
    for ax in axes:
        ax.legend(fontsize=8, loc="upper right", ncols=min(len(ax.get_lines()), 4))
    axes[-1].set_xlabel("run time (s)")
    return fig


def _references(experiment: Mapping[str, Any] | None, plant: Recording, t: np.ndarray
                ) -> dict[str, np.ndarray]:
    if not experiment or not experiment.get("reference"):
        return {}
    from hil.reporting.experiment import reference_series

    desc = {"state_names": list(plant.states),
            "equilibrium": (plant.meta.get("plant") or {}).get("equilibrium")}
    return reference_series(experiment, desc, t)


def _mark_disturbances(axes: Sequence[Any], experiment: Mapping[str, Any] | None) -> None:
    """Each disturbance on every axis: a span for a pulse, a line where a step or sine
    starts; one legend entry each, on the first axis."""
    from hil.reporting.experiment import disturbance_times

    for name, start, end in disturbance_times(experiment):
        for ax in axes:
            label = f"disturbance on {name}" if ax is axes[0] else None
            if end > start:
                ax.axvspan(start, end, color=DISTURBANCE_COLOR, alpha=0.25, lw=0, label=label)
            else:
                ax.axvline(start, color=DISTURBANCE_COLOR, lw=1.2, ls=":", label=label)


def _saturated(controller: Recording, inputs: Sequence[InputTrace]) -> np.ndarray | None:
    """Per control, whether any input sent was at one of its limits (None when the limits,
    or the controller's input columns, are not known)."""
    if len(controller.inputs) != len(inputs) or not all(tr.limited for tr in inputs):
        return None
    at_limit = np.zeros(controller.rows, dtype=bool)
    for column, trace in zip(controller.inputs, inputs, strict=True):
        u, low, high = controller[column], float(trace.low or 0.0), float(trace.high or 0.0)
        margin = 1e-9 * max(abs(low), abs(high))
        at_limit |= (u <= low + margin) | (u >= high - margin)
    return at_limit


def _stability_figure(plant: Recording, controller: Recording, t: np.ndarray,
                      inputs: Sequence[InputTrace], changes: Sequence[float] = ()) -> Figure:
    tc = _controller_time(plant, controller, t)
    sigma = controller["sigma"] if "sigma" in controller else np.full(controller.rows, np.nan)
    fig, axes = _figure(4, 8.0)
    floor = float(controller.meta.get("sigma_floor") or 0.0)
    axes[0].plot(tc, np.abs(sigma), lw=0.8)
    if floor > 0:
        axes[0].axhline(floor, color="0.4", ls="--", lw=0.8,
                        label=f"sigma floor {floor:g}: on the surface below")
        axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("|sigma|")
    # As hil.runtime.stability's LyapunovMonitor: a step counts when it starts off the surface.
    v = 0.5 * sigma * sigma
    evaluated = np.abs(np.concatenate(([np.nan], sigma[:-1]))) > floor
    decreased = evaluated & (np.diff(v, prepend=np.nan) < 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = _rolling_sum(decreased) / _rolling_sum(evaluated)
    axes[1].plot(tc, share, lw=0.9)
    if np.isnan(share).any():
        axes[1].fill_between(tc, 0, 1, where=np.isnan(share), color="0.88", step="mid",
                             label="on the surface: not evaluated")
        axes[1].legend(fontsize=8, loc="lower right")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].set_ylabel(f"V decreased\n(share of the last\n{_WINDOW} steps off σ = 0)")
    if "mass_condition" in controller:
        axes[2].plot(tc, controller["mass_condition"], lw=0.9)
    axes[2].set_ylabel("cond M(q)")
    axes[2].ticklabel_format(axis="y", useOffset=False)
    at_limit = _saturated(controller, inputs)
    if at_limit is not None:
        axes[3].plot(tc, _rolling_sum(at_limit) / _rolling_sum(np.ones(len(at_limit))), lw=0.9)
    axes[3].set_ylim(-0.05, 1.05)
    axes[3].set_ylabel(f"saturation duty: any\ninput at a limit\n(share of {_WINDOW} steps)")
    axes[3].set_xlabel("run time (s)")
    _mark_gain_changes(axes, changes)
    if changes:
        axes[0].legend(fontsize=8, loc="upper right")
    return fig


def _controller_time(plant: Recording, controller: Recording, t: np.ndarray) -> np.ndarray:
    """Each control's time on the plant's axis: the run time of the state it answers."""
    index = np.searchsorted(plant["seq"], controller["state_seq"])
    return t[np.clip(index, 0, len(t) - 1)]


def _rolling_sum(flags: np.ndarray) -> np.ndarray:
    """The sum over the last `_WINDOW` entries (fewer at the start), at each entry."""
    c = np.concatenate(([0.0], np.cumsum(np.asarray(flags, dtype=float))))
    end = np.arange(1, len(c))
    return c[end] - c[np.maximum(end - _WINDOW, 0)]


# ------------------------------------------------------------------------ page
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;
background:#f4f6f9}
main{max-width:1040px;margin:0 auto;padding:24px}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap}
h1{font-size:20px;margin:0;font-weight:600}h2{font-size:16px;margin:28px 0 8px}
.badge{font-weight:700;padding:4px 12px;border-radius:4px;color:#fff}
.PASS{background:#1f7a3d}.FAIL{background:#b42318}
.score{font-size:15px;color:#3d4555}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:4px 16px;
margin-top:12px}
.facts b{color:#5a6275;font-weight:500}.facts .wide{grid-column:1/-1}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0001}
th,td{padding:5px 10px;border-bottom:1px solid #e3e6ec;text-align:right}
th{background:#eef1f5;font-weight:600}th:first-child,td:first-child{text-align:left}
td.pass{color:#1f7a3d;font-weight:600}td.fail{color:#b42318;font-weight:700}
tr.failed{background:#fdecea}
figure{margin:12px 0 20px;background:#fff;padding:8px;box-shadow:0 1px 2px #0001}
figure img{width:100%;height:auto;display:block}figcaption{color:#5a6275;padding:4px 2px}
pre{background:#fff;padding:12px;overflow:auto;box-shadow:0 1px 2px #0001;font-size:12px}
@media(min-width:900px){pre.config{column-count:2;column-rule:1px solid #e3e6ec}}
.notes{background:#fff8e6;border-left:4px solid #e0a100;padding:8px 12px}
.replay canvas{background:#fff;box-shadow:0 1px 2px #0001;max-width:100%;display:block;
margin:6px 0}.replay .controls{display:flex;gap:12px;align-items:center}
#replay-scrub{flex:1}.replay .state,.replay .legend{font-size:12px;color:#3d4555}
#replay-events{font-size:12px;background:#fff;padding:6px 30px;max-height:160px;overflow:auto}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


Cell = str | tuple[str, str]  # text, or (CSS class, text)


def _table(head: Sequence[str], rows: Sequence[Sequence[Cell]],
           row_classes: Sequence[str] = ()) -> str:
    """A table; every text is escaped here."""
    out = ["<table><thead><tr>", *(f"<th>{html.escape(h)}</th>" for h in head),
           "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = row_classes[i] if i < len(row_classes) else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for cell in row:
            css, text = cell if isinstance(cell, tuple) else ("", cell)
            attr = f' class="{css}"' if css else ""
            out.append(f"<td{attr}>{html.escape(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _gates_table(gates: Sequence[Mapping[str, Any]]) -> str:
    rows, classes = [], []
    for g in gates:
        passed = bool(g.get("passed"))
        rows.append([str(g["name"]), _fmt(g.get("value")), _fmt(g.get("threshold")),
                     g.get("unit", ""), _fmt(g.get("weight")), "yes" if g.get("critical") else "",
                     ("pass", "pass") if passed else ("fail", "FAIL")])
        classes.append("" if passed else "failed")
    return _table(["gate", "value", "threshold", "unit", "weight", "critical", "result"], rows,
                  classes)


def _metrics_table(experiment: Mapping[str, Any]) -> str:
    """One row per metric (report.json `experiment.metrics`: `x.rise_time_s` ...), or the
    reason there are none."""
    metrics = experiment.get("metrics")
    if not metrics:
        return f"<p>{html.escape(str(experiment.get('note') or 'no metrics'))}</p>"
    rows = [[name.split(".", 1)[0], name.split(".", 1)[1], _fmt(value)]
            for name, value in metrics.items()]
    return _table(["state or input", "metric", "value"], rows)


def _latency_table(latency: Mapping[str, Mapping[str, Any]]) -> str:
    keys = ("p50", "p90", "p99", "p999", "max", "count")
    rows = [[name, *(_fmt(p.get(k)) for k in keys)] for name, p in latency.items()]
    return _table(["figure (µs)", "p50", "p90", "p99", "p99.9", "max", "count"], rows)


def _facts(report: Mapping[str, Any]) -> str:
    d = report.get("deadline") or {}
    plant = report.get("plant") or {}
    facts = [
        ("mode", report.get("mode")), ("rate", f"{_fmt(report.get('rate_hz'))} Hz"),
        ("plant", plant.get("name")), ("controller", report.get("controller")),
        _input_fact(report),
        ("simulated", f"{_fmt(report.get('duration_s'))} s"), ("cycles", report.get("cycles")),
        ("deadline misses", f"{d.get('misses')} of {d.get('total')} "
                            f"(ratio {_fmt(d.get('miss_ratio'))}"
                            + (f", {d['misses_while_safe']} while latched safe)"
                               if d.get("misses_while_safe") else ")")),
        ("longest miss run", d.get("max_consecutive")),
        ("plant ended", report.get("plant_end_reason")),
        ("controller ended", report.get("controller_end_reason")),
    ]
    if report.get("started_at"):
        facts.insert(0, ("started", report["started_at"]))
    return '<div class="facts">' + "".join(
        f'<div{" class=wide" if len(_fmt(v)) > 28 else ""}><b>{html.escape(k)}</b> '
        f"{html.escape(_fmt(v))}</div>" for k, v in facts) + "</div>"


def _input_fact(report: Mapping[str, Any]) -> tuple[str, str]:
    """("input", "voltage (V), limit ±10 V"), or ("inputs", "thrust_left (N) 0 .. 40 N;
    thrust_right (N) 0 .. 40 N")."""
    inputs = plant_inputs(report)

    def limits(tr: InputTrace) -> str:
        if tr.low is None or tr.high is None:
            return ""
        if tr.low == -tr.high:
            return f", limit ±{tr.high:g} {tr.unit}"
        return f" {tr.low:g} .. {tr.high:g} {tr.unit}"

    return ("input" if len(inputs) == 1 else "inputs",
            "; ".join(f"{tr.name} ({tr.unit}){limits(tr)}" for tr in inputs))


def _counters(report: Mapping[str, Any]) -> str:
    rows = [[k, _fmt(v)] for k, v in (report.get("counters") or {}).items()]
    for proc, stats in (report.get("recording") or {}).items():
        for key in ("rows_written", "rows_dropped", "rows_rejected"):
            rows.append([f"{proc} recording {key.replace('_', ' ')}",
                         _fmt((stats or {}).get(key))])
    return _table(["counter", "value"], rows)


def _page(report: Mapping[str, Any], plots: Sequence[tuple[str, str]], notes: Sequence[str],
          config_text: str, replay: str = "") -> str:
    verdict = str(report.get("verdict"))
    run_id = html.escape(str(report.get("run_id")))
    plant = report.get("plant") or {}
    final = ",  ".join(
        f"{n} non-finite" if x is None else f"{n} {x:+.4f} {u}".rstrip()
        for n, x, u in zip(plant.get("state_names") or [], report.get("final_state") or [],
                           plant.get("state_units") or [], strict=False))
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>hil run {run_id}: {html.escape(verdict)}</title>",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>Run {run_id}</h1>",
        f'<span class="badge {"PASS" if verdict == "PASS" else "FAIL"}">'
        f"{html.escape(verdict)}</span>",
        f'<span class="score">score {html.escape(_fmt(report.get("score")))} / 100</span>'
        "</header>",
        _facts(report),
    ]
    if notes:
        parts.append('<h2>Notes</h2><div class="notes">'
                     + "<br>".join(html.escape(n) for n in notes) + "</div>")
    parts += ["<h2>Gates</h2>", _gates_table(report.get("gates") or [])]
    if report.get("experiment"):
        parts += ["<h2>Experiment metrics</h2>", _metrics_table(report["experiment"])]
    parts += ["<h2>Latency</h2>", _latency_table(report.get("latency_us") or {})]
    if replay:
        parts.append(replay)
    if plots:
        parts.append("<h2>Plots</h2>")
    for file, title in plots:
        parts.append(f'<figure><img src="{html.escape(file)}" alt="{html.escape(title)}">'
                     f"<figcaption>{html.escape(title)}</figcaption></figure>")
    parts += [f"<h2>Final state</h2><p>{html.escape(final) or '–'}</p>",
              "<h2>Counters</h2>", _counters(report),
              "<h2>Run config</h2>", f'<pre class="config">{html.escape(config_text)}</pre>',
              "</main></body></html>\n"]
    return "\n".join(parts)
