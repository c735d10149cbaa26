"""`hil tune` against the lab's experiment: the tuning's simulation of a draw against a real
lockstep `hil run` of the same plant, sensors and gains, the compiled loop against the Python
one, the cost's refusals, the safety gates as a hard constraint, determinism."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import free_endpoint

from controller_client.tuning.batch import M_FALLEN, M_STEPS, METRICS, run_batch, simulate_python
from controller_client.tuning.engine import LocalEvaluator, Problem, optimise
from controller_client.tuning.experiment import metric_columns, sensor_noise, sensor_seed
from controller_client.tuning.plants import plant_model
from controller_client.tuning.problem import (
    FAILED_COST,
    Settings,
    TuningError,
    evaluation_costs,
    failed_draws,
    robust_cost,
)
from hil.config import SensorsConfig, load_config
from hil.experiment.sensors import Sensors

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
STEP_CONFIG = ROOT / "configs" / "cartpole-step.yaml"
# Actuators too (a lag, an input delay of two periods), so the real run checks them as well.
LAG = {"lag_s": {"force": 0.02}, "delay_steps": 2}
# The DIP's sliding-mode law tracking a cart step, through every part of an experiment.
DIP_EXPERIMENT = {
    "reference": [{"state": "x", "signal": "step", "at_s": 0.3, "value": 0.1}],
    "disturbances": [{"input": "force", "signal": "pulse", "at_s": 0.8, "duration_s": 0.05,
                      "value": 3.0}],
    "sensors": {"noise_std": {"x": 0.001}, "counts_per_rev": {"theta1": 4096},
                "delay_samples": 1, "seed": 4},
    "actuator": {"lag_s": {"force": 0.005}, "rate_limit_per_s": {"force": 4000.0},
                 "delay_steps": 1}}


def step_settings(config_path: Path = STEP_CONFIG, **more) -> Settings:
    """The tuning's settings of a config as `hil tune` makes them (lockstep: no link delay;
    the run's duration, as the experiment is measured over it)."""
    config = load_config(config_path)
    fields = dict(controller=config.controller.name, draws=1, uncertainty=0.0, seed=3,
                  duration_s=config.run.duration_s, rate_hz=config.run.rate_hz, delay=0.0,
                  substeps=config.plant.substeps, starts=(tuple(config.plant.initial_state),),
                  angle_limit_rad=config.safety.angle_limit_rad.lockstep,
                  track_limit_m=config.safety.track_limit_m, plant_model=config.plant.model,
                  sanity_factor=config.safety.sanity_force_factor,
                  experiment=config.experiment.model_dump(mode="json"),
                  experiment_dir=config.source_dir, cost={"x.settling_time_s": 1.0})
    fields.update(more)
    return Settings(**fields)


def with_experiment(settings: Settings, **parts) -> Settings:
    return dataclasses.replace(settings, experiment={**settings.experiment, **parts})


def test_a_draw_s_metrics_are_the_real_lockstep_run_s(tmp_path: Path) -> None:
    """The tuning's compiled simulation of draw 0 (the nominal plant, its sensors seeded as
    the tuning seeds that draw) gives the metrics report.json gives for `hil run` of the
    same config with that sensor seed, through the real processes."""
    settings = with_experiment(step_settings(), actuator=LAG)
    problem = Problem(settings, None)
    mine = run_batch(problem.make_law, np.array([problem.default_gains]), problem.train)
    seed = sensor_seed(problem.experiment, settings.seed, 0, 0)
    config = yaml.safe_load(STEP_CONFIG.read_text())
    config["experiment"]["sensors"]["seed"] = seed
    config["experiment"]["actuator"] = LAG
    config["record"] = {"history_db": None, "html": False}
    path = tmp_path / "step.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([str(BIN / "hil"), "run", "--config", str(path), "--out",
                           str(tmp_path / "run"), "--endpoint", free_endpoint()],
                          capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    theirs = report["experiment"]["metrics"]
    assert sorted(theirs) == list(problem.metric_names)
    values = dict(zip(problem.metric_names, mine[0, 0, 0, METRICS:], strict=True))
    assert mine[0, 0, 0, M_STEPS] == report["cycles"] - 1
    for name in problem.metric_names:
        # The run's last row holds the safe output the plant applies as it ends (the
        # tuning's, the last control): effort differs by that half period's share.
        tolerance = 1e-4 if name == "force.effort" else 1e-12
        assert values[name] == pytest.approx(theirs[name], rel=tolerance, abs=1e-12), name
    assert values["x.settling_time_s"] == pytest.approx(2.7, abs=0.3)


def test_the_compiled_loop_and_the_python_loop_agree_under_every_part_of_an_experiment(
        ) -> None:
    """The compiled loop (the law's kernel seeing x - target) against the Python loop (the
    law's own compute(state, t, target), the runtime's model.step), on the DIP with a
    reference, a disturbance, noisy quantised late sensors and actuators; and the LQR on
    the cart-pole (its tracking kernel) likewise."""
    dip = Settings(controller="classical_smc", draws=2, seed=1, duration_s=1.5, rate_hz=1000,
                   delay=0.0, experiment=DIP_EXPERIMENT, cost={"x.ise": 1.0})
    for settings in (dip, with_experiment(step_settings(draws=2, uncertainty=0.05),
                                          actuator=LAG)):
        problem = Problem(settings, None)
        sc = problem.train
        compiled = run_batch(problem.make_law, np.array([problem.default_gains]), sc)
        assert problem.compiled and compiled[0, :, 0, M_FALLEN].sum() == 0
        for k in range(sc.n_draws):
            traj = np.zeros((sc.steps + 1, len(sc.experiment.recorded) + 1))
            figures = np.zeros(METRICS)
            simulate_python(problem.make_law(problem.default_gains),
                            plant_model(sc.plant, sc.draws[k]), sc.starts[0].copy(), sc,
                            figures, draw=k, traj=traj)
            values = np.zeros(len(problem.metric_names))
            metric_columns(sc.experiment, sc.times_s(), traj[None], np.array([True]),
                           values[None])
            np.testing.assert_allclose(figures, compiled[0, k, 0, :METRICS], rtol=1e-9,
                                       atol=1e-12)
            np.testing.assert_allclose(values, compiled[0, k, 0, METRICS:], rtol=1e-9,
                                       atol=1e-12)


def test_each_draw_s_sensor_noise_is_what_the_sensors_draw_from_its_seed() -> None:
    problem = Problem(step_settings(draws=3), None)
    spec, sc = problem.experiment, problem.train
    noise = sensor_noise(spec, 3, 0, 3, 50, 4)
    for k in range(3):
        sensors = Sensors(SensorsConfig(noise_std={n: 1.0 for n in spec.state_names},
                                        seed=sensor_seed(spec, 3, 0, k)), spec.state_names)
        for i in range(50):
            seen = np.zeros(4)
            sensors.sense(seen)
            np.testing.assert_array_equal(seen, noise[k, i])
    np.testing.assert_array_equal(sc.noise[:, :50], noise)
    assert not np.array_equal(noise[0], noise[1])
    held = sensor_noise(spec, 3, 1, 3, 50, 4)
    assert not np.array_equal(held[0], noise[0])


def test_a_metric_the_experiment_cannot_give_is_refused_naming_those_it_can() -> None:
    with pytest.raises(TuningError) as refused:
        Problem(step_settings(cost={"x.settling_s": 1.0}), None)
    assert str(refused.value) == (
        "tuning.cost: 'x.settling_s' is not a metric of this experiment; the metrics it "
        "gives: force.effort, force.peak_abs, x.iae, x.ise, x.itae, x.overshoot_pct, "
        "x.peak, x.peak_time_s, x.rise_time_s, x.settling_time_s, x.steady_state_error")
    with pytest.raises(TuningError, match=r"'theta\.iae' is not a metric of this experiment"):
        Problem(step_settings(cost={"theta.iae": 1.0}), None)  # theta has no reference
    with pytest.raises(TuningError, match="none: the config has no experiment section"):
        Problem(step_settings(experiment=None), None)


def test_the_cli_refuses_a_bad_cost_before_any_work(tmp_path: Path) -> None:
    config = yaml.safe_load(STEP_CONFIG.read_text())
    config["tuning"] = {"cost": {"force.efort": 1.0}}
    path = tmp_path / "step.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([str(BIN / "hil"), "tune", "--config", str(path), "--out",
                           str(tmp_path / "t")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2
    assert "'force.efort' is not a metric of this experiment; the metrics it gives: " \
           "force.effort, force.peak_abs" in done.stderr
    assert not (tmp_path / "t").exists()


def test_a_draw_that_trips_a_gate_fails_graded_by_what_it_did_not_survive() -> None:
    """The step takes the cart to 0.3 m: with the track gate at 0.2 m every draw trips it
    there, and fails (not a large metric): FAILED_COST x (1 + the share of the run lost)."""
    settings = step_settings(draws=2, uncertainty=0.05, track_limit_m=0.2)
    problem = Problem(settings, LocalEvaluator("lqr", {}, 1, (), settings.plant()))
    sc = problem.train
    rows = np.array([problem.default_gains])
    metrics = run_batch(problem.make_law, rows, sc)
    assert (metrics[0, :, 0, M_FALLEN] == 1).all()
    assert np.isnan(metrics[0, :, 0, METRICS:]).all()  # no metrics of a failed draw
    lost = (sc.steps - metrics[0, :, 0, M_STEPS]) / sc.steps
    assert lost.min() > 0.5 and lost.max() < 0.9  # it tripped after the step at 1 s of 8
    per_draw = problem.per_draw(rows, sc)
    np.testing.assert_allclose(per_draw[0], FAILED_COST * (1.0 + lost))
    assert failed_draws(per_draw)[0] == 2


def test_failures_rank_below_every_passing_draw_and_an_unmeasurable_metric_fails() -> None:
    """Columns: the figures, then one metric weighted 1; a passing draw of a huge metric,
    one whose metric cannot be measured (NaN: fails as if at its end), one tripped early."""
    metrics = np.zeros((3, 1, 1, METRICS + 1))
    metrics[..., M_STEPS] = 100
    metrics[0, 0, 0, METRICS] = 5e9
    metrics[1, 0, 0, METRICS] = np.nan
    metrics[2, 0, 0, [M_FALLEN, M_STEPS, METRICS]] = (1, 40, np.nan)
    costs = evaluation_costs(metrics, 100, {METRICS: 1.0})
    assert costs[0, 0] < FAILED_COST
    assert costs[1, 0] == FAILED_COST and costs[2, 0] == pytest.approx(1.6 * FAILED_COST)
    robust = robust_cost(costs, 0.7)
    assert robust[0] < robust[1] < robust[2]
    signed = metrics[:1].copy()
    signed[0, 0, 0, METRICS] = -0.25  # a signed metric (steady_state_error) by its magnitude
    assert evaluation_costs(signed, 100, {METRICS: 2.0})[0, 0] == 0.5


def test_the_same_seed_gives_the_same_history_on_threads_and_on_dask() -> None:
    """One thread, two, a Dask cluster of two worker processes (which measure the metrics
    themselves), and the settings as tuning.json keeps them for --resume: one history."""
    from controller_client.tuning.remote import DaskEvaluator

    settings = step_settings(draws=2, uncertainty=0.05, budget=8, batch_size=4,
                             duration_s=4.0, lower=(2.0, 50.0, 0.5, 0.5, 0.003),
                             upper=(40.0, 200.0, 2.0, 2.0, 0.03))
    saved = Settings.from_dict(json.loads(json.dumps(settings.as_dict())))
    assert saved == settings
    histories = []
    for workers in (1, 2):
        evaluator = LocalEvaluator("lqr", {}, workers, (), settings.plant())
        histories.append(optimise(Problem(saved if workers == 2 else settings, evaluator),
                                  []))
    dask = DaskEvaluator("lqr", {}, workers=2, plant=settings.plant())
    try:
        histories.append(optimise(Problem(settings, dask), []))
    finally:
        dask.close()
    assert histories[0] == histories[1] == histories[2]
    assert min(min(b.costs) for b in histories[0]) < FAILED_COST
