"""The verdict for any plant: build_report's at_target gate over plant and controller reports
shaped like a real run's (plant.json and controller.json of a lockstep `hil run`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from hil.config import ConfigError, load_config
from hil.reporting.report import build_report, summary_table

# The description a dip plant wrote before issue 20 (plant.json of a lockstep default run).
OLD_DIP = {"name": "dip", "state_names": ["x", "theta1", "theta2", "x_dot", "theta1_dot",
                                          "theta2_dot"],
           "state_units": ["m", "rad", "rad", "m/s", "rad/s", "rad/s"], "params": {},
           "max_force_n": 150.0, "input_name": "force", "input_unit": "N",
           "equilibrium": [0.0] * 6, "upright_angles": ["theta1", "theta2"], "substeps": 4}


def described(name: str, states: dict[str, str], inputs: dict[str, tuple[float, float]],
              **keys: Any) -> dict[str, Any]:
    """A description with the new keys (and the legacy ones the plants still write)."""
    desc = {"name": name, "state_names": list(states), "state_units": list(states.values()),
            "params": {}, "input_names": list(inputs), "input_units": ["N"] * len(inputs),
            "input_limits": [list(lim) for lim in inputs.values()],
            "equilibrium": [0.0] * len(states), "equilibrium_input": [0.0] * len(inputs),
            "wraps": [], "max_force_n": max(hi for _, hi in inputs.values()),
            "input_name": next(iter(inputs)), "input_unit": "N", "upright_angles": [],
            "substeps": 4}
    desc.update(keys)
    return desc


DC_MOTOR = described("dc_motor", {"omega": "rad/s", "current": "A"}, {"voltage": (-12, 12)},
                     regulated=["omega"], equilibrium=[10.0, 0.05], equilibrium_input=[1.2],
                     input_units=["V"], input_unit="V")
CARTS = described("carts", {"x1": "m", "x2": "m", "v1": "m/s", "v2": "m/s"},
                  {"f1": (-20, 20), "f2": (-20, 20)}, regulated=["x1", "x2"],
                  equilibrium=[0.0, 0.5, 0.0, 0.0])
SWING_UP = described("swing_up", {"x": "m", "theta": "rad", "x_dot": "m/s", "theta_dot": "rad/s"},
                     {"force": (-10, 10)}, regulated=["theta"], wraps=["theta"],
                     upright_angles=["theta"])
HOVER = described("bicopter", {"x": "m", "z": "m", "phi": "rad", "x_dot": "m/s", "z_dot": "m/s",
                               "phi_dot": "rad/s"},
                  {"thrust_left": (0, 40), "thrust_right": (0, 40)},
                  regulated=["x", "z", "phi"], upright_angles=["phi"])


def processes(desc: dict[str, Any], final_state: Sequence[float | None]
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """plant.json and controller.json of a clean lockstep run that ended in `final_state`."""
    rt = {"p50": 155.9, "p90": 211.3, "p99": 324.9, "p999": 500.0, "max": 1353.7, "count": 2000}
    plant = {"process": "plant", "mode": "lockstep", "rate_hz": 1000.0, "duration_s": 2.0,
             "cycles": 2001, "end_reason": "duration", "plant": desc,
             "final_state": final_state, "latency_us": {"round_trip": rt},
             "deadline": {"total": 2000, "misses": 0, "miss_ratio": 0.0, "max_consecutive": 0},
             "watchdog": {"trips": 0, "latched": False, "events": []},
             "safety": {"trips": 0, "events": [], "saturations": 0},
             "controls_applied": 2000, "saturations": 0, "rejected_messages": 0,
             "recording": {"rows_written": 2001, "rows_dropped": 0, "error": None},
             "run_id": "r1", "exit_code": 0}
    controller = {"process": "controller", "end_reason": "plant ended the run: duration",
                  "controller": "lqr", "gains": None, "states_dropped": 0, "overruns": 0,
                  "recording": {"rows_written": 2001, "rows_dropped": 0, "error": None},
                  "run_id": "r1", "exit_code": 0}
    return plant, controller


def config(**gates: Any) -> dict[str, Any]:
    overrides = {"run.mode": "lockstep", **{f"gates.{k}": v for k, v in gates.items()}}
    return load_config(None, overrides).model_dump(mode="json")


def run(desc: dict[str, Any], final_state: Sequence[float | None], **gates: Any
        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report of a run of `desc` ending in `final_state`, and its at_target gate."""
    report = build_report("r1", config(**gates), *processes(desc, final_state))
    gate = next(g for g in report["gates"] if g["name"] == "at_target")
    return report, gate


def test_a_dc_motor_at_its_speed_passes_on_omega_alone() -> None:
    report, gate = run(DC_MOTOR, [10.03, 0.4])  # current far from 0.05: not regulated
    assert report["verdict"] == "PASS" and gate["passed"]
    assert (gate["state"], gate["unit"], gate["threshold"]) == ("omega", "rad/s", 0.1)
    assert gate["value"] == pytest.approx(0.03)
    assert [s["name"] for s in gate["states"]] == ["omega"]


def test_a_dc_motor_short_of_its_speed_fails_saying_by_how_much() -> None:
    report, gate = run(DC_MOTOR, [9.5, 0.05])
    assert report["verdict"] == "FAIL" and not gate["passed"] and gate["critical"]
    assert gate["detail"] == "omega ended 0.5 rad/s from its target 10 (tolerance 0.1 rad/s)"


def test_a_chain_of_carts_is_judged_on_each_cart_against_its_own_target() -> None:
    _, gate = run(CARTS, [0.01, 0.52, 0.3, -0.2])  # velocities are not regulated
    assert gate["passed"] and gate["state"] == "x2" and gate["value"] == pytest.approx(0.02)
    report, gate = run(CARTS, [0.01, 0.0, 0.0, 0.0])  # x2 stayed at 0, its target is 0.5
    assert report["verdict"] == "FAIL"
    assert gate["detail"] == "x2 ended 0.5 m from its target 0.5 (tolerance 0.05 m)"


def test_a_swing_up_ending_one_full_turn_from_upright_passes_as_the_angle_wraps() -> None:
    report, gate = run(SWING_UP, [0.01, 6.2832, 0.0, 0.0])
    assert report["verdict"] == "PASS" and gate["passed"]
    assert gate["value"] == pytest.approx(6.2832 - 2 * math.pi, abs=1e-9)
    _, gate = run(SWING_UP, [0.0, -3 * math.pi + 0.01, 0.0, 0.0])  # hanging, -1.5 turns
    assert not gate["passed"] and gate["value"] == pytest.approx(math.pi - 0.01)
    assert gate["detail"] == ("theta ended at -9.415 rad, 3.13 rad from its target 0 modulo "
                              "a full turn (tolerance 0.02 rad)")
    _, gate = run(SWING_UP, [0.0, 0.05, 0.0, 0.0])  # within half a turn: no wrap to mention
    assert gate["detail"] == "theta ended 0.05 rad from its target 0 (tolerance 0.02 rad)"


def test_without_wraps_the_full_turn_is_a_full_turn_away() -> None:
    _, gate = run({**SWING_UP, "wraps": []}, [0.0, 6.2832, 0.0, 0.0])
    assert not gate["passed"]
    assert gate["detail"] == "theta ended 6.28 rad from its target 0 (tolerance 0.02 rad)"


def test_a_hover_plant_settled_away_from_its_set_point_fails_naming_z() -> None:
    report, gate = run(HOVER, [0.002, 1.55, 0.001, 0.0, 0.0, 0.0])
    assert report["verdict"] == "FAIL" and not gate["passed"]
    assert (gate["state"], gate["value"], gate["threshold"], gate["unit"]) == (
        "z", 1.55, 0.05, "m")
    assert gate["detail"] == "z ended 1.55 m from its target 0 (tolerance 0.05 m)"
    assert [s["passed"] for s in gate["states"]] == [True, False, True]
    lines = summary_table(report).splitlines()
    assert "at_target: z ended 1.55 m from its target 0 (tolerance 0.05 m)" in lines
    row = next(line for line in lines if line.startswith("at_target "))
    assert row.split() == ["at_target", "1.55", "0.05", "FAIL"]


def test_every_failing_state_is_named_in_the_detail() -> None:
    _, gate = run(HOVER, [0.3, 1.55, 0.001, 0.0, 0.0, 0.0])
    assert gate["state"] == "z"  # 31 tolerances away, x 6
    assert gate["detail"] == ("x ended 0.3 m from its target 0 (tolerance 0.05 m); "
                              "z ended 1.55 m from its target 0 (tolerance 0.05 m)")


def test_a_non_finite_final_state_fails_the_gate_with_no_value() -> None:
    report, gate = run(HOVER, [0.0, None, 0.0, 0.0, 0.0, 0.0])
    assert report["verdict"] == "FAIL" and gate["value"] is None and gate["state"] == "z"
    assert gate["detail"].startswith("z has no final value (null or absent")


def test_a_plant_that_regulates_nothing_says_the_gate_is_not_applied() -> None:
    report, gate = run({**DC_MOTOR, "regulated": []}, [3.0, 0.2])
    assert gate["applied"] is False and gate["passed"] and gate["weight"] == 0.0
    assert gate["value"] is None and "nothing to check" in gate["detail"]
    assert report["verdict"] == "PASS" and report["score"] == 100.0
    row = next(line for line in summary_table(report).splitlines()
               if line.startswith("at_target "))
    assert row.split()[-1] == "n/a"


def test_an_old_dip_report_gets_todays_verdict() -> None:
    final = [-0.339, 0.0095, 0.011746, 0.2116, -0.0553, -0.0563]  # the lockstep default run
    report, gate = run(OLD_DIP, final)
    assert report["verdict"] == "PASS"
    assert (gate["value"], gate["threshold"], gate["unit"]) == (0.011746, 0.02, "rad")
    report, gate = run(OLD_DIP, [0.0, 0.0, -0.021, 0.0, 0.0, 0.0])
    assert report["verdict"] == "FAIL" and gate["value"] == 0.021 and gate["state"] == "theta2"


def test_a_dip_described_with_the_new_keys_keeps_todays_states_and_tolerance() -> None:
    new_dip = {**OLD_DIP, "input_names": ["force"], "input_units": ["N"],  # a real plant.json
               "input_limits": [[-150.0, 150.0]], "equilibrium_input": [0.0],
               "regulated": ["theta1", "theta2"], "wraps": ["theta1", "theta2"]}
    for final in ([-0.339, 0.0095, 0.011746, 0.2116, -0.0553, -0.0563],
                  [0.0, 0.0, -0.021, 0.0, 0.0, 0.0], [0.0, None, 0.0, 0.0, 0.0, 0.0]):
        old, new = run(OLD_DIP, final), run(new_dip, final)
        assert old[0]["verdict"] == new[0]["verdict"]
        assert [old[1][k] for k in ("value", "threshold", "unit", "state", "passed")] == [
            new[1][k] for k in ("value", "threshold", "unit", "state", "passed")]
    assert run(new_dip, [0.0, 2 * math.pi, -0.01, 0.0, 0.0, 0.0])[1]["passed"]  # a full turn
    assert not run(OLD_DIP, [0.0, 2 * math.pi, -0.01, 0.0, 0.0, 0.0])[1]["passed"]


def test_an_old_report_names_its_angles_by_upright_angles_else_theta() -> None:
    rotary = {"name": "rotary", "state_names": ["arm", "pendulum", "arm_dot", "pendulum_dot"],
              "state_units": ["rad", "rad", "rad/s", "rad/s"], "upright_angles": ["pendulum"]}
    _, gate = run(rotary, [1.2, 0.005, 0.0, 0.0])  # the arm is free
    assert gate["passed"] and gate["state"] == "pendulum"
    no_list = {k: v for k, v in OLD_DIP.items() if k != "upright_angles"}
    _, gate = run(no_list, [5.0, 0.001, 0.03, 0.0, 0.0, 0.0])
    assert not gate["passed"] and gate["state"] == "theta2"


def test_an_old_report_without_any_angle_fails_as_it_did() -> None:
    carts = {"name": "carts", "state_names": ["x1", "v1"], "state_units": ["m", "m/s"],
             "upright_angles": []}
    report, gate = run(carts, [0.0, 0.0])
    assert report["verdict"] == "FAIL" and gate["value"] is None
    assert "no angle from upright" in gate["detail"]


def test_tolerances_come_by_state_then_unit_then_the_other_default() -> None:
    motor = {**DC_MOTOR, "regulated": ["omega", "current"]}
    _, gate = run(motor, [10.0, 0.13])  # current in A: target_tolerance_other 0.05
    assert not gate["passed"] and gate["threshold"] == 0.05 and gate["state"] == "current"
    _, gate = run(motor, [10.0, 0.13], target_tolerance={"A": 0.1})
    assert gate["passed"] and [s["tolerance"] for s in gate["states"]] == [0.1, 0.1]
    _, gate = run(motor, [10.3, 0.13], state_tolerance={"omega": 0.5}, target_tolerance_other=1)
    assert gate["passed"] and [s["tolerance"] for s in gate["states"]] == [0.5, 1.0]
    _, gate = run(SWING_UP, [0.0, 0.03, 0.0, 0.0], upright_tolerance_rad=0.05)
    assert gate["passed"] and gate["threshold"] == 0.05


def test_a_unit_map_keeps_the_defaults_of_the_units_it_does_not_name() -> None:
    _, gate = run(CARTS, [0.03, 0.5, 0.0, 0.0], target_tolerance={"m/s": 1.0})
    assert gate["passed"] and gate["threshold"] == 0.05  # m keeps its 0.05
    _, gate = run(CARTS, [0.03, 0.5, 0.0, 0.0], target_tolerance={"m": 0.01})
    assert not gate["passed"] and gate["threshold"] == 0.01 and gate["state"] == "x1"


def test_a_unit_map_refuses_rad_and_a_zero_tolerance_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"gates\.target_tolerance: .*'rad' entry: an "
                                          r"angle's tolerance is gates\.upright_tolerance_rad"):
        load_config(None, {"gates.target_tolerance": {"rad": 0.1}})
    with pytest.raises(ConfigError, match=r"gates\.state_tolerance\.z: 0 is out of range"):
        load_config(None, {"gates.state_tolerance": {"z": 0}})


def test_a_state_tolerance_for_a_state_the_plant_lacks_fails_naming_it() -> None:
    _, gate = run(HOVER, [0.0] * 6, state_tolerance={"zz": 0.1})
    assert not gate["passed"]
    assert gate["detail"].startswith("gates.state_tolerance names 'zz', not a state of this "
                                     "plant (its states: x, z, phi")


@pytest.mark.parametrize(("keys", "fix"), [
    ({"regulated": ["x", "height"]}, "the plant's `regulated` names 'height', not one of its "
                                     "states (x, z, phi, x_dot, z_dot, phi_dot)"),
    ({"regulated": "z"}, "the plant's `regulated` is 'z': it must be a list of state names"),
    ({"wraps": ["psi"]}, "the plant's `wraps` names 'psi', not one of its states"),
    ({"equilibrium": [0.0, 1.0]}, "the plant's `equilibrium` is [0.0, 1.0]: it must be 6 "
                                  "finite numbers, one per state"),
])
def test_a_wrong_description_fails_the_gate_naming_the_fix(keys: dict[str, Any],
                                                           fix: str) -> None:
    report, gate = run({**HOVER, **keys}, [0.0] * 6)
    assert report["verdict"] == "FAIL" and not gate["passed"]
    assert fix in gate["detail"]


def test_a_plant_without_state_names_fails_the_gate_saying_so() -> None:
    report, gate = run({}, [])
    assert report["verdict"] == "FAIL" and gate["value"] is None
    assert gate["detail"].startswith("the plant's report has no state names")


def test_the_summary_names_every_input_with_its_limits() -> None:
    report, _ = run(HOVER, [0.0] * 6)
    line = next(x for x in summary_table(report).splitlines() if x.startswith("state "))
    assert line.endswith("; inputs thrust_left (N), 0 to 40 N; thrust_right (N), 0 to 40 N")
    report, _ = run(DC_MOTOR, [10.0, 0.0])
    line = next(x for x in summary_table(report).splitlines() if x.startswith("state "))
    assert line == "state omega (rad/s), current (A); input voltage (V), limit ±12 V"


def test_the_summary_of_an_old_report_names_its_one_input() -> None:
    report, _ = run(OLD_DIP, [0.0] * 6)
    line = next(x for x in summary_table(report).splitlines() if x.startswith("state "))
    assert line.endswith("; input force (N), limit ±150 N")


def test_an_old_report_json_still_prints_its_upright_gate() -> None:
    report, _ = run(OLD_DIP, [0.0, 0.0, 0.03, 0.0, 0.0, 0.0])
    report["gates"][1] = {"name": "upright_at_end", "value": 0.03, "threshold": 0.02,
                          "passed": False, "unit": "rad", "weight": 3.0, "critical": True}
    lines = summary_table(report).splitlines()  # `hil report` on a run folder of that time
    row = next(line for line in lines if line.startswith("upright_at_end "))
    assert row.split() == ["upright_at_end", "0.03", "0.02", "FAIL"]
    assert not any(line.startswith(("upright_at_end:", "at_target")) for line in lines)
