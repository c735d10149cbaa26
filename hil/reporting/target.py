"""The `at_target` gate: did the plant's regulated states end at their target?

The plant's description (the handshake's, in plant.json and report.json) names the states
that must reach the target (`regulated`), the target (`equilibrium`, one entry per state,
zeros when absent) and the angles compared modulo a full turn (`wraps`). A regulated state
passes when its error, |final - target| (for a state in `wraps`, the difference wrapped into
[-pi, pi)), is below its tolerance, the first of (hil/config.py GatesConfig):

- `gates.state_tolerance[name]`, for that state by name;
- `gates.upright_tolerance_rad` (0.02) for a state in rad;
- `gates.target_tolerance[unit]`, else the unit's default (m 0.05, m/s 0.05, rad/s 0.1,
  deg 1.0: hil/config.py DEFAULT_TARGET_TOLERANCE);
- `gates.target_tolerance_other` (0.05) for any other unit.

The gate's `value` is the error of the state furthest from its target for its tolerance, in
that state's `unit`, its `threshold` that state's tolerance and `state` its name; `detail` says
it in a sentence ("z ended 1.55 m from its target 0 (tolerance 0.05 m)"), and `states` has
every regulated state's figures. A plant that regulates no state (`regulated: []`) has the
gate not applied: `applied` false, passed, and no weight in the score (scoring.py).

A description written before `regulated` existed (an old run's plant.json) is judged as the
gate `upright_at_end` judged it then: the states of `upright_angles` (else those named theta*,
not *_dot) against 0, no wrap, within `upright_tolerance_rad`. A problem in the description or
a `gates.state_tolerance` naming no state of the plant fails the gate, saying what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hil.config import DEFAULT_TARGET_TOLERANCE, GatesConfig
from hil.reporting.scoring import gate

GATE = "at_target"
FULL_TURN = 2.0 * math.pi


@dataclass(frozen=True)
class Regulated:
    """A state the verdict checks: its index in the state vector, name, unit and target."""

    index: int
    name: str
    unit: str
    target: float
    wraps: bool = False


def target_gate(desc: Mapping[str, Any], final_state: Sequence[float | None],
                thresholds: GatesConfig) -> dict[str, Any]:
    """The at_target gate of a run whose plant described itself as `desc` and ended in
    `final_state` (None where a value was not finite)."""
    names = [str(n) for n in desc.get("state_names") or []]
    if not names:
        return _failed("the plant's report has no state names (did the plant end before its "
                       "handshake?): nothing to judge the final state by")
    states, problems = (_declared(desc, names) if "regulated" in desc
                        else (_legacy(desc, names), []))
    problems += [f"gates.state_tolerance names {n!r}, not a state of this plant (its states: "
                 f"{', '.join(names)}); correct or remove it"
                 for n in thresholds.state_tolerance if n not in names]
    if not states and not problems:
        if "regulated" not in desc:
            return _failed("no angle from upright to check: the plant's description (written "
                           "before `regulated`) has no `upright_angles` and no theta* state")
        g = gate(GATE, None, None, True)
        g.update(applied=False, detail="the plant regulates no state (its `regulated` is "
                                       "empty): nothing to check, the gate is not applied")
        return g
    checks = [_check(s, final_state, _tolerance(thresholds, s)) for s in states]
    worst = max(checks, key=_badness, default=None)
    passed = not problems and all(c["passed"] for c in checks)
    if worst is None:
        g = gate(GATE, None, None, False)
    else:
        g = gate(GATE, worst["error"], worst["tolerance"], passed, worst["unit"])
        g["state"] = worst["name"]
    g["detail"] = "; ".join(problems + _sentences(checks, worst))
    g["states"] = checks
    return g


def _failed(detail: str) -> dict[str, Any]:
    g = gate(GATE, None, None, False)
    g["detail"] = detail
    return g


def _legacy(desc: Mapping[str, Any], names: list[str]) -> list[Regulated]:
    """An old description's angles from upright, each against 0 in rad (no wrap)."""
    upright = desc.get("upright_angles")
    return [Regulated(i, n, "rad", 0.0) for i, n in enumerate(names)
            if (n in upright if isinstance(upright, list)
                else n.startswith("theta") and not n.endswith("_dot"))]


def _declared(desc: Mapping[str, Any], names: list[str]) -> tuple[list[Regulated], list[str]]:
    """The regulated states a description declares, and its problems (each a sentence)."""
    regulated, wraps = _names(desc.get("regulated")), _names(desc.get("wraps") or [])
    units = desc.get("state_units") or [""] * len(names)
    targets = desc.get("equilibrium")
    problems = []
    if regulated is None:
        return [], [f"the plant's `regulated` is {desc.get('regulated')!r}: it must be a list "
                    f"of state names (its states: {', '.join(names)})"]
    if wraps is None:
        problems.append(f"the plant's `wraps` is {desc.get('wraps')!r}: it must be a list of "
                        f"state names")
        wraps = []
    if targets is None:
        targets = [0.0] * len(names)
    elif not (isinstance(targets, list) and len(targets) == len(names)
              and all(_finite(v) for v in targets)):
        problems.append(f"the plant's `equilibrium` is {targets!r}: it must be {len(names)} "
                        f"finite numbers, one per state ({', '.join(names)})")
        targets = [0.0] * len(names)
    problems += [f"the plant's `{key}` names {n!r}, not one of its states "
                 f"({', '.join(names)}); correct the plant's `{key}`"
                 for key, listed in (("regulated", regulated), ("wraps", wraps))
                 for n in listed if n not in names]
    states = [Regulated(i, n, str(units[i]) if i < len(units) else "", float(targets[i]),
                        n in wraps)
              for i, n in enumerate(names) if n in regulated]
    return states, problems


def _names(value: Any) -> list[str] | None:
    """`value` if it is a list of strings, else None."""
    return value if isinstance(value, list) and all(isinstance(n, str) for n in value) else None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _tolerance(thresholds: GatesConfig, state: Regulated) -> float:
    if state.name in thresholds.state_tolerance:
        return thresholds.state_tolerance[state.name]
    if state.unit == "rad":
        return thresholds.upright_tolerance_rad
    return thresholds.target_tolerance.get(
        state.unit, DEFAULT_TARGET_TOLERANCE.get(state.unit, thresholds.target_tolerance_other))


def _check(state: Regulated, final_state: Sequence[float | None], tolerance: float
           ) -> dict[str, Any]:
    """One regulated state's figures: where it ended, its error and whether it passed."""
    final = final_state[state.index] if state.index < len(final_state) else None
    error = None
    if final is not None and _finite(final):
        diff = final - state.target
        if state.wraps and not -math.pi <= diff < math.pi:  # (within, exactly as it is)
            diff = (diff + math.pi) % FULL_TURN - math.pi
        error = abs(diff)
    return {"name": state.name, "unit": state.unit, "final": final, "target": state.target,
            "error": error, "tolerance": tolerance, "wraps": state.wraps,
            "passed": error is not None and error < tolerance}


def _badness(check: Mapping[str, Any]) -> float:
    """How far a state is from passing: its error over its tolerance (inf: no value)."""
    return math.inf if check["error"] is None else check["error"] / check["tolerance"]


def _sentences(checks: list[dict[str, Any]], worst: Mapping[str, Any] | None) -> list[str]:
    """The failed states, each in a sentence; when all passed, the one closest to failing."""
    failed = [_sentence(c) for c in checks if not c["passed"]]
    if failed or worst is None:
        return failed
    names = ", ".join(c["name"] for c in checks)
    return [f"{len(checks)} regulated state{'s' if len(checks) > 1 else ''} at target "
            f"({names}); furthest: {_sentence(worst)}"]


def _sentence(check: Mapping[str, Any]) -> str:
    """e.g. "z ended 1.55 m from its target 0 (tolerance 0.05 m)"."""
    name, unit, target = check["name"], check["unit"], check["target"]
    u = f" {unit}" if unit else ""
    if check["error"] is None:
        return (f"{name} has no final value (null or absent in the plant's report: it went "
                f"non-finite or the plant ended early); its target is {target:g}{u}")
    tolerance = f"(tolerance {check['tolerance']:g}{u})"
    if check["wraps"] and not -math.pi <= check["final"] - target < math.pi:
        return (f"{name} ended at {check['final']:.4g}{u}, {check['error']:.3g}{u} from its "
                f"target {target:g} modulo a full turn {tolerance}")
    return f"{name} ended {check['error']:.3g}{u} from its target {target:g} {tolerance}"
