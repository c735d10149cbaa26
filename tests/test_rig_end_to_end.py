"""`hil run --config configs/rig-emulated.yaml`: the serial path end to end, as a user runs it.

Real processes (the rig emulator on a pseudo-terminal, hil-plant on its serial backend,
hil-controller) started by `hil run`; the assertions read the reports they leave. What the
plant does here does not depend on which rig answers, so the balancing run with corrupted
bytes runs on the Python emulator only; the C firmware runs through `hil run` in
tests/firmware_protocol/test_fw_end_to_end.py (balancing in QEMU; the host build with
corrupted bytes, unplugged), and the host build's corrupted bytes are counted by the bridge
in tests/plant_server/test_serial_backend.py and by a raw host in test_fw_rig.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import free_endpoint

from hil.config import dump_config, load_config

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "rig-emulated.yaml"
SERIAL_FIGURES = ("serial_round_trip", "rig_to_plant", "rig_age")


def rig_run_config(tmp_path: Path, **changes: Any) -> Path:
    """configs/rig-emulated.yaml with dotted-key `changes`; no history or HTML from tests."""
    changes = {"record.history_db": None, "record.html": False, **changes}
    path = tmp_path / "rig-emulated.yaml"
    path.write_text(dump_config(load_config(CONFIG, changes)))
    return path


def hil_run(config: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hil"), "run", "--config", str(config), "--endpoint",
                           free_endpoint(), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=90)


@pytest.mark.slow
@pytest.mark.realtime
def test_the_emulated_rig_balances_through_hil_run_and_counts_crc_errors(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = hil_run(rig_run_config(tmp_path), out, "--duration", "3")
    r = json.loads((out / "report.json").read_text())
    assert done.returncode == (0 if r["verdict"] == "PASS" else 1), done.stderr[-3000:]
    assert r["plant_end_reason"] == "duration" and r["rate_hz"] == 500
    assert max(abs(r["final_state"][1]), abs(r["final_state"][2])) < 0.02  # balanced
    s = r["serial"]
    assert s["port"] == str((out / "rig.pty").absolute()) and s["baud"] == 230_400
    assert s["crc_errors"] >= 1 and s["resyncs"] >= 1  # the 1e-4 corruption is seen
    assert s["frames_rx"] >= r["cycles"] and s["frames_tx"] >= r["cycles"]
    assert s["fault"] is None and s["rig"]["state_rate_hz"] == 500
    for fig in SERIAL_FIGURES:
        p = r["latency_us"][fig]
        assert p["count"] > 1000 and 0 < p["p50"] <= p["p99"] <= p["max"], fig
    wire_us = (40 + 18) * 10 / 230_400 * 1e6  # both frames' wire time: the loop's floor
    assert r["latency_us"]["serial_round_trip"]["p50"] > wire_us
    rig = r["rig_emulator"]
    assert rig["end_reason"] == "stopped" and rig["line"]["tx"]["corrupted_bytes"] >= 1
    assert "serial " in done.stdout and "crc errors" in done.stdout  # the summary line
    assert not (out / "rig.pty").exists()  # the emulator removed its link


HELICOPTER_RIG = {
    "run": {"mode": "realtime", "rate_hz": 200},
    "plant": {"backend": "serial", "model": "helicopter",
              "initial_state": [0.1, -0.2, 0.0, 0.0]},
    "serial": {"port": "emulated", "baud": 115_200},
    "rig_emulator": {"enabled": True, "watchdog_ms": 50},
    "controller": {"name": "lqr"},
    "safety": {"track_limit_m": None},
    "record": {"history_db": None, "html": False},
}


@pytest.mark.slow
@pytest.mark.realtime
def test_a_two_input_rig_is_balanced_through_hil_run_with_both_inputs_on_the_wire(
        tmp_path: Path) -> None:
    """The 2-DOF helicopter as an emulated rig (layout DECLARED, two motor voltages): the
    MIMO LQR levels it over the serial link, every CONTROL carrying both voltages."""
    config = tmp_path / "helicopter-rig.yaml"
    config.write_text(dump_config(load_config(None, {
        f"{section}.{key}": value for section, keys in HELICOPTER_RIG.items()
        for key, value in keys.items()})))
    out = tmp_path / "run"
    done = hil_run(config, out, "--duration", "3")
    r = json.loads((out / "report.json").read_text())
    assert done.returncode == 0 and r["verdict"] == "PASS", done.stdout[-3000:]
    assert max(abs(v) for v in r["final_state"][:2]) < 0.02  # pitch and yaw at target
    s = r["serial"]
    assert s["rig"]["state_layout"] == "DECLARED" and s["fault"] is None
    assert s["rig"]["input_limits"] == [[-24.0, 24.0], [-15.0, 15.0]]
    assert (s["input_count"], s["control_frame_bytes"], s["state_frame_bytes"]) == (2, 22, 32)
    assert r["plant"]["input_names"] == ["pitch_voltage", "yaw_voltage"]
    counters = r["rig_emulator"]["firmware"]["counters"]
    assert counters["controls_applied"] >= r["cycles"] - 10
    assert counters["controls_wrong_count"] == 0


@pytest.mark.realtime
def test_unplugging_the_emulated_rig_mid_run_puts_the_plant_safe_and_names_the_port(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = rig_run_config(tmp_path, **{"rig_emulator.unplug_after_s": 1.0})
    done = hil_run(config, out, "--duration", "5")
    port = str((out / "rig.pty").absolute())
    r = json.loads((out / "report.json").read_text())
    plant = json.loads((out / "plant.json").read_text())
    assert done.returncode == 1
    assert f"hil-plant: rig on {port} unplugged or gone" in done.stderr
    assert plant["end_reason"].startswith(f"rig on {port} unplugged or gone")
    assert plant["safe_state"] and plant["safe_reason"] == plant["end_reason"]
    assert r["controller_end_reason"] == f"plant ended the run: {plant['end_reason']}"
    assert r["verdict"] == "FAIL" and f"serial fault: rig on {port}" in done.stdout
    # Safe within the link's timeout of the unplug (in fact within a plant period or two).
    unplugged = r["rig_emulator"]["unplugged_at_ns"]
    timeout_ns = r["config"]["serial"]["silence_timeout_ms"] * 1e6
    s = r["serial"]
    assert 0 <= s["fault_detected_ns"] - unplugged < timeout_ns
    assert 0 <= s["safe_output_ns"] - unplugged < timeout_ns
    assert 0.9 < r["duration_s"] < 1.5  # the run ended at the unplug, not at 5 s


def test_hil_run_refuses_a_baud_too_slow_for_the_rate_before_starting_anything(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = hil_run(rig_run_config(tmp_path), out, "--rate", "1000")
    assert done.returncode == 2
    assert "230400 / 10 / 40 = 576 Hz" in done.stderr
    assert "1000 x 40 x 10 = 400000 baud" in done.stderr and "e.g. 460800" in done.stderr
    assert not out.exists()  # no emulator, no plant, no controller
