"""`hil run` with the C firmware as the rig: in QEMU (configs/rig-qemu.yaml) it balances and
passes its gates with the firmware's identity in the report; the host build, unplugged mid-run,
puts the plant safe. Real processes, real pseudo-terminals, real QEMU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_passed_but_timing, free_endpoint
from fw_kit import build

from hil.config import dump_config, load_config

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "rig-qemu.yaml"


def run_config(tmp_path: Path, **changes: Any) -> Path:
    changes = {"record.history_db": None, "record.html": False, **changes}
    path = tmp_path / "rig.yaml"
    path.write_text(dump_config(load_config(CONFIG, changes)))
    return path


def hil_run(config: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hil"), "run", "--config", str(config), "--endpoint",
                           free_endpoint(), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.realtime
def test_hil_run_balances_the_pendulum_on_the_firmware_in_qemu(tmp_path: Path) -> None:
    build("qemu")  # fails with what to install if the cross-compiler is missing
    out = tmp_path / "run"
    # 3 s, as the Python emulator's run of the same controller, gains and start in
    # tests/test_rig_end_to_end.py: upright within the gate's 0.02 rad well before.
    done = hil_run(run_config(tmp_path), out, "--duration", "3")
    r = json.loads((out / "report.json").read_text())
    assert done.returncode == (0 if r["verdict"] == "PASS" else 1), done.stdout[-3000:]
    assert_passed_but_timing(r)  # the timing gates are the machine's (tests/conftest.py)
    assert r["plant_end_reason"] == "duration"
    assert max(abs(r["final_state"][1]), abs(r["final_state"][2])) < 0.02
    rig = r["serial"]["rig"]  # CAPABILITIES, as the firmware sent it
    assert rig == {"rig_id": 0x51454D55, "firmware_version": "2.0.0",
                   "state_layout": "DOUBLE_INVERTED_PENDULUM", "state_encoding": "FLOAT32_SI",
                   "control_unit": "PHYSICAL", "state_rate_hz": 500, "watchdog_ms": 50,
                   "input_limits": [[-150.0, 150.0]]}
    # A STATE each plant cycle, but for the ticks the MCU skipped while QEMU did not run
    # (its own stall report: one tick per period stalled, and one more per stall)
    emu = r["rig_emulator"]
    not_run = emu["total_stall_ms"] * 500 / 1000 + emu["stalls"]
    assert r["serial"]["fault"] is None, emu["watchdog_trip_reports"]
    assert r["serial"]["frames_rx"] >= r["cycles"] - not_run, emu
    assert r["rig_emulator"]["build"] == "qemu"
    assert r["rig_emulator"]["machine"] == "mps2-an386"
    assert not (out / "rig.pty").exists()


@pytest.mark.realtime
def test_unplugging_the_host_build_mid_run_puts_the_plant_safe(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = run_config(tmp_path, **{"rig_emulator.kind": "host",
                                     "rig_emulator.unplug_after_s": 1.0,
                                     "rig_emulator.corrupt_byte_rate": 1e-4,
                                     "rig_emulator.seed": 1})
    done = hil_run(config, out, "--duration", "5")
    port = str((out / "rig.pty").absolute())
    r = json.loads((out / "report.json").read_text())
    assert done.returncode == 1, done.stdout[-3000:]
    assert f"rig on {port} unplugged or gone" in done.stderr
    plant = json.loads((out / "plant.json").read_text())
    assert plant["safe_state"]
    rig = r["rig_emulator"]
    assert rig["build"] == "host" and rig["end_reason"] == "unplugged"
    timeout_ns = r["config"]["serial"]["silence_timeout_ms"] * 1e6
    assert 0 <= r["serial"]["safe_output_ns"] - rig["unplugged_at_ns"] < timeout_ns
    assert 0.9 < r["duration_s"] < 1.5
    assert r["serial"]["rig"]["firmware_version"] == "2.0.0"
