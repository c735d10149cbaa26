"""Fault injection at the simulated plant: seeded latency, jitter, drops and sensor noise,
in the injector itself and end to end on a real-time run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import finish, free_endpoint, kill_all, report, start_attached, write_config

from hil.config import ConfigError, load_config
from plant_server.faults import FaultInjector, FaultSettings, settings_from_config
from plant_server.main import _faults

MS = 1_000_000


def draws(settings: FaultSettings, n: int = 2000) -> tuple[list, list, np.ndarray]:
    inj = FaultInjector(settings, 3)
    states = [inj.state_delay_ns() for _ in range(n)]
    controls = [inj.control_delay_ns() for _ in range(n)]
    noise = np.array([inj.measured(np.zeros(3)) for _ in range(n)])
    return states, controls, noise


def test_the_same_seed_draws_the_same_faults_and_another_seed_does_not() -> None:
    s = FaultSettings(seed=3, state_latency_ns=2 * MS, jitter_ns=MS, drop_rate=0.1,
                      sensor_noise_std=0.01)
    a, b = draws(s), draws(s)
    assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2], b[2])
    other = draws(FaultSettings(seed=4, state_latency_ns=2 * MS, jitter_ns=MS,
                                drop_rate=0.1, sensor_noise_std=0.01))
    assert other[0] != a[0]


def test_latency_jitter_and_drops_have_the_configured_size() -> None:
    states, controls, _ = draws(FaultSettings(seed=1, state_latency_ns=2 * MS,
                                              control_latency_ns=MS, jitter_ns=MS,
                                              drop_rate=0.2))
    kept = [d for d in states if d is not None]
    assert 0.17 < 1 - len(kept) / len(states) < 0.23
    assert min(kept) >= 2 * MS and max(kept) <= 3 * MS
    assert np.std(kept) == pytest.approx(MS / np.sqrt(12), rel=0.1)  # uniform jitter
    kept_controls = [d for d in controls if d is not None]
    assert min(kept_controls) >= MS and max(kept_controls) <= 2 * MS


def test_sensor_noise_has_the_configured_deviation_per_entry_and_leaves_state_alone() -> None:
    _, _, noise = draws(FaultSettings(sensor_noise_std=[0.0, 0.01, 0.1]), 5000)
    assert np.all(noise[:, 0] == 0.0)
    assert np.std(noise, axis=0)[1:] == pytest.approx([0.01, 0.1], rel=0.05)
    inj = FaultInjector(FaultSettings(), 3)
    state = np.array([1.0, 2.0, 3.0])
    assert inj.measured(state) == [1.0, 2.0, 3.0] and not inj.active


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\), got 1.0"):
        FaultSettings(drop_rate=1.0)
    with pytest.raises(ValueError, match="sensor_noise_std must be one number or 3 numbers"):
        FaultInjector(FaultSettings(sensor_noise_std=[0.1, 0.2]), 3)


def test_timing_faults_need_realtime_but_noise_works_in_lockstep() -> None:
    lockstep = load_config(None, {"run.mode": "lockstep", "faults.drop_rate": 0.1})
    with pytest.raises(ConfigError, match=r"faults: latency, jitter and drop_rate need run\.mode "
                                          r"realtime"):
        _faults(lockstep, 6)
    noisy = load_config(None, {"run.mode": "lockstep", "faults.sensor_noise_std": 0.01})
    assert _faults(noisy, 6).active
    assert settings_from_config(load_config(None, {"faults.jitter_ms": 1.5}).faults).jitter_ns == (
        1_500_000)


@pytest.mark.realtime
def test_a_realtime_run_with_latency_and_drops_sees_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = write_config(out, free_endpoint(), run__duration_s=30.0,
                          faults__state_latency_ms=2.0, faults__drop_rate=0.05,
                          faults__seed=11)
    plant, controller = start_attached(config, out)
    try:
        time.sleep(1.0)
        code, err = finish(plant, signal.SIGINT)
        finish(controller)
    finally:
        kill_all(plant, controller)
    assert code == 0, err
    r = report(out, "plant")
    f = r["faults"]
    published = r["cycles"]
    assert f["seed"] == 11
    assert 0.02 < f["states_dropped"] / published < 0.08
    assert 0.02 < f["controls_dropped"] / r["controls_applied"] < 0.08
    # Each state reached the controller 2 ms late: so did every answer.
    assert r["latency_us"]["round_trip"]["p50"] > 2000
    c = report(out, "controller")
    assert c["latency_us"]["state_to_controller"]["p50"] > 2000
