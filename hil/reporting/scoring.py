"""Quality gates and the run's score: named gates with thresholds, weights and criticality.

`evaluate(report, gates_config)` takes a merged report (see hil/reporting/report.py) and the `gates`
section of the config, and returns `(gates, score, verdict)`:

- the gates: those already in `report["gates"]` (report.py builds run_completed,
  at_target, deadline_miss_ratio and watchdog_trips), then the ones evaluated here when
  the report carries their figures: round_trip_p99, safety_trips, dropped_records and one
  gate per configured stability limit (`stability_max` / `stability_min`, keyed by a dotted
  path into `report["stability"]`). Each gate keeps its `{name, value, threshold, passed}`
  and gains `weight` and `critical`.
- the score: 100 times the weight of the passed gates over the weight of all of them; a
  gate not applied (`applied: false`, e.g. at_target for a plant that regulates no state)
  weighs nothing.
- the verdict: FAIL if a critical gate failed, or if the score is below `pass_score`;
  PASS otherwise.

Weights and criticality default to `DEFAULT_WEIGHTS` / `DEFAULT_CRITICAL` below; the config's
`weights` and `critical` maps override them per gate name. A gate this module does not know
weighs 1 and is not critical. A gate's former name (RENAMED_GATES) in `weights` or
`critical`, or in an older report, means the gate of its new name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hil.config import GatesConfig

DEFAULT_WEIGHTS: dict[str, float] = {
    "run_completed": 3.0,
    "at_target": 3.0,
    "deadline_miss_ratio": 3.0,
    "watchdog_trips": 2.0,
    "safety_trips": 2.0,
    "round_trip_p99": 2.0,
    "dropped_records": 1.0,
}
# A failed critical gate fails the run whatever the score.
DEFAULT_CRITICAL = frozenset(
    {"run_completed", "at_target", "deadline_miss_ratio", "watchdog_trips", "safety_trips",
     "recording_error"})
# The bounds on an experiment's metrics (`gates.metrics`) are critical too.
METRIC_GATES = "metrics."
# A gate's former name -> its name now (the names reports before the change carry).
RENAMED_GATES: dict[str, str] = {"upright_at_end": "at_target"}
# Without `max_round_trip_p99_us`, a control must come back within this share of a period in
# realtime mode; lockstep waits for each control, so there the gate is only made on request.
ROUND_TRIP_SHARE_OF_PERIOD = 0.85


def evaluate(report: Mapping[str, Any], gates_config: GatesConfig | Mapping[str, Any]
             ) -> tuple[list[dict[str, Any]], float, str]:
    """The report's gates, weighted and completed; its 0-100 score; PASS or FAIL."""
    thresholds = (gates_config if isinstance(gates_config, GatesConfig)
           else GatesConfig.model_validate(gates_config))
    gates = [dict(g) for g in report.get("gates", [])]
    have = {g["name"] for g in gates}
    gates += [g for g in _own_gates(report, thresholds) if g["name"] not in have]
    weights = {current_name(k): v for k, v in thresholds.weights.items()}
    critical = {current_name(k): v for k, v in thresholds.critical.items()}
    for g in gates:
        name = current_name(g["name"])
        g["weight"] = 0.0 if g.get("applied") is False else float(
            weights.get(name, DEFAULT_WEIGHTS.get(name, 1.0)))
        g["critical"] = bool(critical.get(name, name in DEFAULT_CRITICAL
                                          or name.startswith(METRIC_GATES)))
    total = sum(g["weight"] for g in gates)
    passed = sum(g["weight"] for g in gates if g["passed"])
    score = round(100.0 * passed / total, 1) if total > 0 else 100.0
    failed_critical = any(g["critical"] and not g["passed"] for g in gates)
    verdict = "FAIL" if failed_critical or score < thresholds.pass_score else "PASS"
    return gates, score, verdict


def current_name(name: str) -> str:
    """A gate's name now: `name`, or the one it was renamed to (RENAMED_GATES)."""
    return RENAMED_GATES.get(name, name)


def gate(name: str, value: Any, threshold: Any, passed: bool, unit: str = "") -> dict[str, Any]:
    """One gate as the report carries it; `evaluate` adds `weight` and `critical`."""
    g = {"name": name, "value": value, "threshold": threshold, "passed": bool(passed)}
    if unit:
        g["unit"] = unit
    return g


def _at_most(name: str, value: float | None, limit: float, unit: str = "") -> dict[str, Any]:
    return gate(name, value, limit, value is not None and value <= limit, unit)


def _own_gates(report: Mapping[str, Any], thresholds: GatesConfig) -> list[dict[str, Any]]:
    gates = []
    round_trip = (report.get("latency_us") or {}).get("round_trip") or {}
    limit = thresholds.max_round_trip_p99_us
    if limit is None and report.get("mode") == "realtime" and report.get("rate_hz"):
        limit = round(ROUND_TRIP_SHARE_OF_PERIOD * 1e6 / report["rate_hz"], 1)
    if limit is not None:
        gates.append(_at_most("round_trip_p99", round_trip.get("p99"), limit, "us"))
    safety = report.get("safety")
    if safety is not None:
        gates.append(_at_most("safety_trips", safety.get("trips"), thresholds.max_safety_trips))
    recording = report.get("recording")
    if recording is not None:
        dropped = sum(int(r.get("rows_dropped", 0)) for r in recording.values() if r)
        gates.append(_at_most("dropped_records", dropped, thresholds.max_dropped_records))
        errors = [f"{name}: {r['error']}" for name, r in recording.items() if r and r.get("error")]
        if errors:  # a recorder that failed (I/O, or its writer thread died) fails the run
            gates.append(gate("recording_error", "; ".join(errors), None, False))
    stability = report.get("stability")
    if stability is not None:
        for path, bound in thresholds.stability_max.items():
            gates.append(_at_most(f"stability.{path}", _lookup(stability, path), bound))
        for path, bound in thresholds.stability_min.items():
            value = _lookup(stability, path)
            gates.append(gate(f"stability.{path}", value, bound,
                               value is not None and value >= bound))
    return gates


def _lookup(tree: Any, dotted: str) -> float | None:
    """The number at `dotted` in nested mappings, or None if absent or not a number."""
    for key in dotted.split("."):
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    if isinstance(tree, bool) or not isinstance(tree, int | float):
        return None
    return tree
