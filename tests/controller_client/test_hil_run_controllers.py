"""End to end through `hil run` (real plant and controller processes over ZeroMQ): every
controller balances the plant in lockstep, and bad controller config exits 2 naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NO_HTML, free_endpoint

CONTROLLERS = ["classical_smc", "sta_smc", "adaptive_smc", "hybrid_adaptive_sta_smc", "lqr"]


def hil_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hil.cli", "run", *NO_HTML, "--mode", "lockstep",
           "--endpoint", free_endpoint(), "--out", str(tmp_path / "run"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", CONTROLLERS)
def test_hil_run_lockstep_passes_and_ends_upright(tmp_path: Path, name: str) -> None:
    done = hil_run(tmp_path, "--controller", name, "--duration", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["verdict"] == "PASS" and report["controller"] == name
    assert max(abs(report["final_state"][1]), abs(report["final_state"][2])) < 0.02
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["stability.lyapunov.decrease_ratio"]["passed"]
    assert gates["stability.actuator.saturation_duty"]["passed"]
    assert report["stability"]["lyapunov"]["steps"] == report["latency_us"]["compute"]["count"]
    assert report["latency_us"]["compute"]["count"] >= 5000
    assert not (tmp_path / "run" / "report.html").exists()  # --set record.html=false


def test_hil_run_unknown_controller_exits_2_listing_the_known_ones(tmp_path: Path) -> None:
    done = hil_run(tmp_path, "--controller", "pid", "--duration", "1")
    assert done.returncode == 2
    assert ("controller.name: unknown controller 'pid'; known controllers: adaptive_smc, "
            "classical_smc, hybrid_adaptive_sta_smc, lqr, sta_smc") in done.stderr


@pytest.mark.parametrize(("gains", "message"), [
    ("[2, 16, 42]", "controller.gains: classical_smc takes 6 gains "
                    "[k1, k2, lambda1, lambda2, K, kd], got 3"),
    ("[2, 16, 42, 7.2, -20, 5]", "controller.gains: classical_smc gain K (index 4) must be "
                                 "finite and > 0, got -20"),
])
def test_hil_run_bad_gains_exit_2_naming_the_gain(tmp_path: Path, gains: str,
                                                  message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"controller:\n  name: classical_smc\n  gains: {gains}\n")
    done = hil_run(tmp_path, "--config", str(config), "--duration", "1")
    assert done.returncode == 2
    assert message in done.stderr
