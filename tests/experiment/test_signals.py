"""The experiment's signals against NumPy written from their definitions, and the tables the
loops evaluate (the reference replaces, disturbances add; one array, reused)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.config import validate_config
from hil.experiment.plan import disturbance_table, reference_table

NAMES = ("x", "theta", "x_dot", "theta_dot")
EQ = (0.5, 0.0, 0.0, 0.0)
T = np.linspace(0.0, 3.0, 3001)


def experiment(**section: object):
    return validate_config({"experiment": section}).experiment


def reference(signal: dict) -> np.ndarray:
    return reference_table(experiment(reference=[signal]), NAMES, EQ).series(T)


def test_a_step_holds_the_equilibrium_then_its_value() -> None:
    got = reference({"state": "x", "signal": "step", "at_s": 1.0, "value": 0.8})
    assert np.array_equal(got[:, 0], np.where(T >= 1.0, 0.8, 0.5))
    assert np.array_equal(got[:, 1:], np.zeros((len(T), 3)))  # the others: the equilibrium


def test_a_ramp_starts_at_its_initial_and_holds_where_it_stops() -> None:
    got = reference({"state": "theta", "signal": "ramp", "at_s": 0.5, "slope_per_s": -0.2,
                     "initial": 0.1, "value": -0.1})[:, 1]
    want = np.where(T < 0.5, 0.1, np.maximum(0.1 - 0.2 * (T - 0.5), -0.1))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["sine", "square"])
def test_sine_and_square_about_the_equilibrium(kind: str) -> None:
    got = reference({"state": "x", "signal": kind, "at_s": 0.25, "amplitude": 0.2,
                     "frequency_hz": 2.0, "phase_deg": 30.0})[:, 0]
    s = np.sin(2 * math.pi * 2.0 * (T - 0.25) + math.radians(30.0))
    shape = s if kind == "sine" else np.where(s >= 0, 1.0, -1.0)
    want = np.where(T < 0.25, 0.5, 0.5 + 0.2 * shape)
    if kind == "sine":
        np.testing.assert_allclose(got, want, atol=1e-12)
    else:  # away from the edges, where sin's rounding may flip the sign
        away = np.abs(s) > 1e-9
        assert np.array_equal(got[away], want[away])


def test_disturbances_add_up_on_their_input_and_a_pulse_ends() -> None:
    table = disturbance_table(experiment(disturbances=[
        {"input": "force", "signal": "pulse", "at_s": 1.0, "duration_s": 0.5, "value": 3.0},
        {"input": "force", "signal": "step", "at_s": 2.0, "value": -1.0},
        {"input": "torque", "signal": "sine", "amplitude": 2.0, "frequency_hz": 1.0}]),
        ("force", "torque"))
    assert table is not None
    got = table.series(T)
    force = np.where((T >= 1.0) & (T - 1.0 < 0.5), 3.0, 0.0) + np.where(T >= 2.0, -1.0, 0.0)
    assert np.array_equal(got[:, 0], force)
    np.testing.assert_allclose(got[:, 1], 2.0 * np.sin(2 * math.pi * T), atol=1e-12)
    assert disturbance_table(experiment(), ("force",)) is None


def test_at_reuses_one_array_and_without_an_experiment_is_the_equilibrium() -> None:
    table = reference_table(None, NAMES, EQ)
    first = table.at(0.0)
    assert table.at(5.0) is first
    assert first.tolist() == list(EQ)


def test_a_chirp_sweeps_from_f0_to_f1_over_its_duration_then_rests() -> None:
    got = reference({"state": "x", "signal": "chirp", "at_s": 0.5, "amplitude": 0.1,
                     "f0_hz": 0.5, "f1_hz": 4.0, "duration_s": 2.0})[:, 0]
    tau = T - 0.5
    phase = 2 * math.pi * (0.5 * tau + (4.0 - 0.5) * tau**2 / (2 * 2.0))
    want = np.where((tau >= 0) & (tau < 2.0), 0.5 + 0.1 * np.sin(phase), 0.5)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_seeded_noise_has_its_rms_its_band_and_repeats_with_its_seed() -> None:
    def noise(seed: int) -> np.ndarray:
        table = disturbance_table(experiment(disturbances=[
            {"input": "force", "signal": "noise", "std": 0.5, "bandwidth_hz": 5.0,
             "seed": seed, "components": 64}]), ("force",))
        assert table is not None
        return table.series(np.arange(0.0, 200.0, 0.01))[:, 0]

    a, b, c = noise(1), noise(1), noise(2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.sqrt(np.mean(a**2)) == pytest.approx(0.5, rel=0.1)
    power = np.abs(np.fft.rfft(a)) ** 2
    freqs = np.fft.rfftfreq(len(a), 0.01)
    assert power[freqs > 6.0].sum() < 1e-3 * power.sum()  # nothing beyond the band


@pytest.mark.parametrize("hold", [False, True])
def test_a_csv_reference_follows_its_points_linearly_or_held(tmp_path, hold: bool) -> None:
    (tmp_path / "ref.csv").write_text("time_s,value\n0.0,0.1\n0.5,0.3\n1.25,-0.2\n2.0,0.0\n")
    section = experiment(reference=[{"state": "x", "signal": "csv", "path": "ref.csv",
                                     "at_s": 0.5, "hold": hold}])
    got = reference_table(section, NAMES, EQ, str(tmp_path)).series(T)[:, 0]
    times, values = np.array([0.0, 0.5, 1.25, 2.0]), np.array([0.1, 0.3, -0.2, 0.0])
    if hold:
        index = np.clip(np.searchsorted(times, T - 0.5, side="right") - 1, 0, 3)
        want = values[index]
    else:
        want = np.interp(T - 0.5, times, values)
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(("text", "problem"), [
    (None, "cannot read"),
    ("time_s,value\n0,1\n1\n", "must hold rows of two numbers"),
    ("0,1\n1,2\n1,3\n", "times must increase, row 3 of the points has 1 after 1"),
])
def test_a_csv_reference_that_cannot_be_used_is_refused_naming_its_key(
        tmp_path, text: str | None, problem: str) -> None:
    from hil.config import ConfigError
    from hil.experiment.plan import check_experiment

    if text is not None:
        (tmp_path / "ref.csv").write_text(text)
    section = experiment(reference=[{"state": "x", "signal": "csv", "path": "ref.csv"}])
    with pytest.raises(ConfigError) as caught:
        check_experiment(section, "cart", NAMES, ("force",), str(tmp_path))
    assert str(caught.value).startswith("experiment.reference[0].path: ")
    assert problem in str(caught.value)
