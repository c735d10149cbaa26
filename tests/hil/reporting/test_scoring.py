"""Scoring: gates keep their shape and gain weight/critical; critical failures fail outright."""

from __future__ import annotations

from typing import Any

import pytest

from hil.config import ConfigError, GatesConfig, validate_config
from hil.reporting.scoring import DEFAULT_CRITICAL, DEFAULT_WEIGHTS, evaluate, gate


def report(**extra: Any) -> dict[str, Any]:
    base = {
        "mode": "realtime",
        "rate_hz": 1000.0,
        "latency_us": {"round_trip": {"p50": 380.0, "p99": 640.0, "count": 3000}},
        "gates": [
            gate("run_completed", "duration", "duration", True),
            gate("at_target", 1e-9, 0.02, True, "rad"),
            gate("deadline_miss_ratio", 0.007, 0.01, True),
            gate("watchdog_trips", 0, 0, True),
        ],
        "safety": {"trips": 0, "events": []},
        "recording": {"plant": {"rows_dropped": 0}, "controller": {"rows_dropped": 0}},
    }
    base.update(extra)
    return base


def by_name(gates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in gates}


def test_a_clean_run_scores_100_and_passes_with_every_gate_weighted() -> None:
    gates, score, verdict = evaluate(report(), GatesConfig())
    assert (score, verdict) == (100.0, "PASS")
    assert [g["name"] for g in gates] == [
        "run_completed", "at_target", "deadline_miss_ratio", "watchdog_trips",
        "round_trip_p99", "safety_trips", "dropped_records"]
    for g in gates:
        assert list(g)[:4] == ["name", "value", "threshold", "passed"]  # never renamed
        assert g["weight"] == DEFAULT_WEIGHTS[g["name"]]
        assert g["critical"] == (g["name"] in DEFAULT_CRITICAL)
    rt = by_name(gates)["round_trip_p99"]
    assert (rt["value"], rt["threshold"], rt["unit"]) == (640.0, 850.0, "us")  # 85% of 1 ms


def test_a_failed_critical_gate_fails_the_run_whatever_the_score() -> None:
    r = report()
    r["gates"][3] = gate("watchdog_trips", 1, 0, False)
    _, score, verdict = evaluate(r, GatesConfig())
    assert verdict == "FAIL"
    assert score == pytest.approx(100 * (16 - 2) / 16, abs=0.05)


def test_non_critical_failures_lower_the_score_and_fail_below_pass_score() -> None:
    r = report(latency_us={"round_trip": {"p99": 900.0}},
               recording={"plant": {"rows_dropped": 3}, "controller": None})
    gates, score, verdict = evaluate(r, GatesConfig())
    assert not by_name(gates)["round_trip_p99"]["passed"]
    assert by_name(gates)["dropped_records"]["value"] == 3
    assert score == pytest.approx(100 * 13 / 16, abs=0.05)
    assert verdict == "PASS"  # 81.2 >= 80
    assert evaluate(r, GatesConfig(pass_score=90))[2] == "FAIL"


def test_config_overrides_weights_criticality_and_thresholds() -> None:
    r = report(latency_us={"round_trip": {"p99": 900.0}})
    cfg = {"max_round_trip_p99_us": 1000, "weights": {"watchdog_trips": 0},
           "critical": {"deadline_miss_ratio": False, "round_trip_p99": True}}
    gates, score, verdict = evaluate(r, cfg)  # a plain mapping, as report.json carries it
    g = by_name(gates)
    assert g["round_trip_p99"]["passed"] and g["round_trip_p99"]["threshold"] == 1000
    assert g["round_trip_p99"]["critical"] and not g["deadline_miss_ratio"]["critical"]
    assert g["watchdog_trips"]["weight"] == 0
    assert (score, verdict) == (100.0, "PASS")


def test_gates_from_elsewhere_are_kept_weighted_one_and_not_critical() -> None:
    r = report()
    r["gates"].append(gate("lyapunov_decrease", 0.4, 0.6, False))
    gates, score, verdict = evaluate(r, GatesConfig())
    g = by_name(gates)["lyapunov_decrease"]
    assert (g["weight"], g["critical"], g["passed"]) == (1.0, False, False)
    assert verdict == "PASS" and score == pytest.approx(100 * 16 / 17, abs=0.05)


def test_a_gate_not_applied_weighs_nothing_in_the_score() -> None:
    r = report()
    r["gates"][1] = {**gate("at_target", None, None, True), "applied": False}
    r["gates"][3] = gate("watchdog_trips", 1, 0, False)
    gates, score, _ = evaluate(r, {"weights": {"at_target": 5}})
    assert by_name(gates)["at_target"]["weight"] == 0.0
    assert score == pytest.approx(100 * (13 - 2) / 13, abs=0.05)  # 16 less at_target's 3


def test_the_gates_former_name_means_the_same_gate_in_config_and_in_old_reports() -> None:
    cfg = {"weights": {"upright_at_end": 7}, "critical": {"upright_at_end": False}}
    g = by_name(evaluate(report(), cfg)[0])["at_target"]
    assert (g["weight"], g["critical"]) == (7.0, False)
    old = report()
    old["gates"][1] = gate("upright_at_end", 0.03, 0.02, False, "rad")
    gates, _, verdict = evaluate(old, GatesConfig())
    g = by_name(gates)["upright_at_end"]
    assert (g["weight"], g["critical"], verdict) == (3.0, True, "FAIL")


def test_a_gate_the_report_already_has_is_not_evaluated_twice() -> None:
    r = report()
    r["gates"].append(gate("round_trip_p99", 1.0, 2.0, True, "us"))
    names = [g["name"] for g in evaluate(r, GatesConfig())[0]]
    assert names.count("round_trip_p99") == 1


def test_figures_a_report_lacks_make_no_gate_and_a_missing_latency_fails() -> None:
    r = report(latency_us={}, rate_hz=None)
    del r["safety"], r["recording"]
    names = [g["name"] for g in evaluate(r, GatesConfig())[0]]
    assert "safety_trips" not in names and "dropped_records" not in names
    assert "round_trip_p99" not in names  # no rate, no configured limit
    r = report(latency_us={"round_trip": {"p99": None, "count": 0}})
    rt = by_name(evaluate(r, GatesConfig())[0])["round_trip_p99"]
    assert rt["value"] is None and not rt["passed"]


def test_stability_gates_read_dotted_paths_with_upper_and_lower_bounds() -> None:
    r = report(stability={"lyapunov": {"decrease_ratio": 0.9}, "saturation_duty": 0.2,
                          "flag": True})
    cfg = GatesConfig(stability_min={"lyapunov.decrease_ratio": 0.6, "missing.key": 1.0},
                      stability_max={"saturation_duty": 0.1, "flag": 1.0})
    g = by_name(evaluate(r, cfg)[0])
    assert g["stability.lyapunov.decrease_ratio"]["passed"]
    assert not g["stability.saturation_duty"]["passed"]
    assert g["stability.missing.key"]["value"] is None and not g["stability.missing.key"]["passed"]
    assert g["stability.flag"]["value"] is None  # a bool is not a metric
    assert all(not g[n]["critical"] for n in g if n.startswith("stability."))


def test_no_gates_scores_100() -> None:
    assert evaluate({"gates": []}, GatesConfig())[1:] == (100.0, "PASS")


def test_lockstep_gets_a_round_trip_gate_only_when_a_limit_is_configured() -> None:
    r = report(mode="lockstep")
    assert "round_trip_p99" not in by_name(evaluate(r, GatesConfig())[0])
    g = by_name(evaluate(r, GatesConfig(max_round_trip_p99_us=500))[0])["round_trip_p99"]
    assert (g["threshold"], g["passed"]) == (500, False)


def test_bad_gate_config_is_refused_with_the_key_path() -> None:
    with pytest.raises(ConfigError, match=r"gates\.weights\.x"):
        validate_config({"gates": {"weights": {"x": -1}}})
    with pytest.raises(ConfigError, match=r"gates\.pass_score"):
        validate_config({"gates": {"pass_score": 101}})
