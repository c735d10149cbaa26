"""The run report: merge plant.json and controller.json into report.json and a summary table.

Schema "hil-report/1". Later versions add keys and never rename one. Each gate is
`{name, value, threshold, passed}` plus `weight` and `critical`, and some a `unit` and a
`detail` (a sentence the summary prints); hil/reporting/scoring.py weighs the gates into a
0-100 `score` and the top-level `verdict`: FAIL if a critical gate failed or the score is below
the configured pass score, PASS otherwise. One gate was renamed: `upright_at_end` became
`at_target` (hil/reporting/target.py) when the verdict grew to any plant; scoring's config
and `hil compare` read the old name as the new (scoring.RENAMED_GATES).
"""

from __future__ import annotations

from typing import Any

from hil.config import GatesConfig
from hil.reporting.experiment import metric_gates
from hil.reporting.scoring import evaluate, gate
from hil.reporting.target import target_gate

SCHEMA = "hil-report/1"
FIGURES = ("round_trip", "state_to_controller", "controller_to_plant", "compute",
           "controller_lateness", "plant_lateness")
_EMPTY = {"p50": None, "p90": None, "p99": None, "p999": None, "max": None, "count": 0}


def _non_finite(plant: dict[str, Any], controller: dict[str, Any]) -> dict[str, Any] | None:
    """Where each process's report had a non-finite number (written as null), by process."""
    found = {name: part["non_finite_values"] for name, part in
             (("plant", plant), ("controller", controller)) if part.get("non_finite_values")}
    return found or None


def build_report(run_id: str, config: dict[str, Any], plant: dict[str, Any],
                 controller: dict[str, Any]) -> dict[str, Any]:
    """report.json from the two process reports and the run's config, gates weighed."""
    thresholds = GatesConfig.model_validate(config["gates"])
    deadline = plant.get("deadline") or {"misses": 0, "miss_ratio": 0.0, "max_consecutive": 0,
                                         "total": 0}
    desc = plant.get("plant") or {}
    final_state = plant.get("final_state") or []
    report = {
        "schema": SCHEMA,
        "run_id": run_id,
        "mode": config["run"]["mode"],
        "rate_hz": config["run"]["rate_hz"],
        "duration_s": plant.get("duration_s"),
        "cycles": plant.get("cycles"),
        "controller": controller.get("controller", config["controller"]["name"]),
        "gains": controller.get("gains"),
        "plant": desc,
        "final_state": final_state,
        "latency_us": _latency(plant, controller),
        "deadline": deadline,
        "gates": _base_gates(thresholds, plant, controller, deadline),
        "score": None,  # score and verdict: hil/reporting/scoring.py, below
        "verdict": None,
        "plant_end_reason": plant.get("end_reason"),
        "controller_end_reason": controller.get("end_reason"),
        "exit_codes": {"plant": plant.get("exit_code"), "controller": controller.get("exit_code")},
        "counters": _counters(plant, controller),
        "cpu": {"plant": plant.get("cpu"), "controller": controller.get("cpu")},
        "resources": {"plant": plant.get("resources"), "controller": controller.get("resources")},
        # The controller's estimate of the plant's clock minus its own (sync round trips).
        "clock": controller.get("clock"),
        "watchdog": plant.get("watchdog"),
        "safe_state": plant.get("safe_state"),
        "safe_reason": plant.get("safe_reason"),
        "config": config,
    }
    report.update(_optional_sections(plant, controller))
    if thresholds.metrics:  # bounds on the experiment's metrics (hil/reporting/experiment.py)
        report["gates"] += metric_gates(plant.get("experiment"), thresholds.metrics)
    report["gates"], report["score"], report["verdict"] = evaluate(report, thresholds)
    return report


def _latency(plant: dict[str, Any], controller: dict[str, Any]) -> dict[str, Any]:
    """Each figure of FIGURES from whichever process measured it (empty if neither), then
    the plant backend's own figures (e.g. the serial leg)."""
    latency = {}
    for fig in FIGURES:
        latency[fig] = (plant.get("latency_us", {}).get(fig)
                        or controller.get("latency_us", {}).get(fig) or dict(_EMPTY))
    for fig, p in (plant.get("latency_us") or {}).items():
        latency.setdefault(fig, p)
    return latency


def _base_gates(thresholds: GatesConfig, plant: dict[str, Any], controller: dict[str, Any],
                deadline: dict[str, Any]) -> list[dict[str, Any]]:
    """The gates every run has: completed, at the target at the end, deadline misses,
    watchdog."""
    trips = (plant.get("watchdog") or {}).get("trips")
    max_ratio = thresholds.max_miss_ratio
    return [
        gate("run_completed", plant.get("end_reason"), "duration",
             plant.get("end_reason") == "duration" and controller.get("exit_code") == 0),
        target_gate(_judged_plant(plant), plant.get("final_state") or [], thresholds),
        gate("deadline_miss_ratio", deadline.get("miss_ratio"), max_ratio,
             deadline.get("total", 0) > 0 and deadline["miss_ratio"] <= max_ratio),
        gate("watchdog_trips", trips, 0, trips == 0),
    ]


def _judged_plant(plant: dict[str, Any]) -> dict[str, Any]:
    """The plant's description, its target at the run's end in place of its equilibrium when
    an experiment's reference moved it (a step on x ends at the step's value)."""
    desc = plant.get("plant") or {}
    final_target = (plant.get("experiment") or {}).get("final_target")
    return {**desc, "equilibrium": final_target} if final_target is not None else desc


def _counters(plant: dict[str, Any], controller: dict[str, Any]) -> dict[str, Any]:
    """The run's counters, each from the process that counts it."""
    return {
        "controls_applied": plant.get("controls_applied"),
        "controls_late": plant.get("controls_late"),
        "saturations": plant.get("saturations"),
        "rejected_messages": plant.get("rejected_messages"),
        "rejected_by_kind": plant.get("rejected_by_kind"),
        "controls_while_safe": plant.get("controls_while_safe"),
        "states_dropped": controller.get("states_dropped"),
        "controller_overruns": controller.get("overruns"),
        "no_new_state": controller.get("no_new_state"),
        "late_states": controller.get("late_states"),
    }


def _optional_sections(plant: dict[str, Any], controller: dict[str, Any]) -> dict[str, Any]:
    """The sections a run has only sometimes (law, gain changes, safety, recording, serial
    ...): those a process reported, absent otherwise."""
    recording = {name: part["recording"] for name, part in
                 (("plant", plant), ("controller", controller)) if part.get("recording")}
    sections = {"law": controller.get("law"),
                "gain_changes": controller.get("gain_changes"),
                "law_error": controller.get("law_error"),
                "law_timing": controller.get("law_timing"),
                "safety": plant.get("safety"), "stability": controller.get("stability"),
                "non_finite_values": _non_finite(plant, controller),
                "recording": recording or None, "serial": _serial(plant),
                "experiment": plant.get("experiment")}
    return {key: value for key, value in sections.items() if value is not None}


def _experiment_lines(section: dict[str, Any] | None) -> list[str]:
    """The experiment's metrics, a line per state or input: `x: rise_time_s 0.41, ...`."""
    if not section:
        return []
    if not section.get("metrics"):
        return ["", f"experiment: {section.get('note') or 'no metrics'}"]
    lines = ["", "experiment metrics"]
    for group in ("states", "inputs"):
        for name, figures in (section.get(group) or {}).items():
            shown = [f"{k} {_fmt(v)}" for k, v in figures.items()
                     if f"{name}.{k}" in section["metrics"]]
            lines.append(f"  {name}: {', '.join(shown)}")
    swingup = section.get("swingup")
    if swingup:
        lines.append(f"  swingup ({swingup['state']} within {_fmt(swingup['window_rad'])} "
                     f"rad): time_s {_fmt(swingup['time_s'])}, caught {swingup['caught']}, "
                     f"entries {swingup['entries']}")
    return lines


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return str(v)


def _serial_lines(serial: dict[str, Any] | None) -> list[str]:
    if serial is None:
        return []
    lines = [f"serial {serial['port']} at {serial['baud']} baud: frames rx {serial['frames_rx']}"
             f" tx {serial['frames_tx']}, crc errors {serial['crc_errors']}, framing errors "
             f"{serial['framing_errors']}, seq gaps {serial['seq_gaps']}, resyncs "
             f"{serial['resyncs']}"]
    if serial.get("fault"):
        lines.append(f"serial fault: {serial['fault']}")
    return lines


def _serial(plant: dict[str, Any]) -> dict[str, Any] | None:
    """plant.json's `serial` section without its encoded histograms (their percentiles are
    in `latency_us`)."""
    serial = plant.get("serial")
    if serial is None:
        return None
    return {k: v for k, v in serial.items() if k != "histograms"}


def _plant_line(desc: dict[str, Any]) -> list[str]:
    """The plant's state and inputs as its description names them (nothing for an old report
    without names): e.g. `state arm (rad), ...; input voltage (V), limit ±10 V`."""
    names = desc.get("state_names") or []
    if not names:
        return []
    units = desc.get("state_units") or [""] * len(names)
    state = ", ".join(f"{n} ({u})" if u else str(n)
                      for n, u in zip(names, units, strict=False))
    inputs = desc.get("input_names")
    if isinstance(inputs, list) and inputs:  # a description of issue 20 or later
        units = desc.get("input_units") or [""] * len(inputs)
        limits = desc.get("input_limits") or [None] * len(inputs)
        parts = [_input_text(str(n), str(u), lim)
                 for n, u, lim in zip(inputs, units, limits, strict=False)]
    else:  # an older description: one input, a limit L meaning -L..L
        limit = desc.get("max_force_n")
        bounds = [-limit, limit] if isinstance(limit, int | float) else None
        parts = [_input_text(desc.get("input_name") or "force", desc.get("input_unit") or "N",
                             bounds)]
    return [f"state {state}; input{'s' if len(parts) > 1 else ''} {'; '.join(parts)}"]


def _input_text(name: str, unit: str, limits: Any) -> str:
    """`voltage (V), limit ±10 V`, or `thrust (N), 0 to 40 N`."""
    text = f"{name} ({unit})" if unit else name
    u = f" {unit}" if unit else ""
    if not (isinstance(limits, list | tuple) and len(limits) == 2
            and all(isinstance(v, int | float) for v in limits)):
        return text
    low, high = limits
    return (f"{text}, limit ±{high:g}{u}" if low == -high
            else f"{text}, {low:g} to {high:g}{u}")


def _result(g: dict[str, Any]) -> str:
    if g.get("applied") is False:
        return "n/a"
    return "pass" if g["passed"] else "FAIL"


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text summary for the terminal."""
    lines = [
        f"run {report['run_id']}  mode={report['mode']}  rate={report['rate_hz']:g} Hz  "
        f"plant={report['plant'].get('name', '?')}  controller={report['controller']}",
        f"simulated {_fmt(report['duration_s'])} s in {report['cycles']} cycles",
        *_plant_line(report.get("plant") or {}),
        "",
        f"{'latency (us)':<22}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>10}{'count':>9}",
    ]
    for fig, p in report["latency_us"].items():
        lines.append(f"{fig:<22}" + "".join(f"{_fmt(p.get(k)):>9}" for k in
                                              ("p50", "p90", "p99", "p999"))
                     + f"{_fmt(p.get('max')):>10}{_fmt(p.get('count')):>9}")
    d = report["deadline"]
    width = max([22, *(len(g["name"]) + 2 for g in report["gates"])])
    safe = f", {d['misses_while_safe']} while safe" if d.get("misses_while_safe") else ""
    lines += ["", f"deadline misses: {d.get('misses')} of {d.get('total')} "
                  f"(ratio {_fmt(d.get('miss_ratio'))}, longest run {d.get('max_consecutive')}"
                  f"{safe})",
              *_serial_lines(report.get("serial")),
              "", f"{'gate':<{width}}{'value':>14}{'threshold':>12}  result"]
    for g in report["gates"]:
        v = g["value"]
        vs = f"{v:.4g}" if isinstance(v, float) else str(v)
        lines.append(f"{g['name']:<{width}}{vs:>14}{g['threshold']!s:>12}  {_result(g)}")
    lines += [f"{g['name']}: {g['detail']}" for g in report["gates"] if g.get("detail")]
    lines += _experiment_lines(report.get("experiment"))
    fs = ", ".join("non-finite" if x is None else f"{x:+.4f}" for x in report["final_state"])
    lines += ["", f"final state: [{fs}]",
              f"verdict: {report['verdict']}  (score {_fmt(report.get('score'))})"]
    return "\n".join(lines)
