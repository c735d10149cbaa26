"""`python -m plant_server.firmware_rig` as `hil run` starts it for `rig_emulator.kind: qemu`:
it boots the image in real QEMU, links the UART's pseudo-terminal once the firmware listens,
serves until SIGINT and leaves rig.json; a config it cannot honour is refused in one line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fw_kit import build
from rigkit import READY_TIMEOUT_S, PtyRig, RawHost, rig_config

from firmware_protocol import Capabilities, Hello, State


class FirmwareRigProcess(PtyRig):
    """`python -m plant_server.firmware_rig --kind qemu` on `config`."""

    name = "firmware rig (qemu)"

    def __init__(self, config: Path, out: Path) -> None:
        super().__init__(out)
        self._start([sys.executable, "-m", "plant_server.firmware_rig", "--kind", "qemu",
                     "--config", str(config), "--out", str(out), "--link", str(self.link)],
                    READY_TIMEOUT_S + 60)  # a first build takes a while


def test_the_qemu_rig_links_its_port_answers_and_leaves_rig_json_when_stopped(
        tmp_path: Path) -> None:
    build("qemu")  # fails with what to install if the cross-compiler is missing
    config = rig_config(tmp_path, rate_hz=200, watchdog_ms=50, rig_id=0x51454D55)
    rig = FirmwareRigProcess(config, tmp_path / "rig")
    with rig:
        pty = str(rig.link.resolve())
        host = RawHost(rig.port)
        try:
            host.send(Hello())
            _, caps = host.wait_for(Capabilities, timeout_s=3.0)
            host.wait_for(State, timeout_s=3.0)
        finally:
            host.close()
        report = rig.stop()
    assert rig.proc.returncode == 0
    assert caps.message.rig_id == 0x51454D55 and caps.message.state_rate_hz == 200
    assert report["process"] == "rig_firmware" and report["build"] == "qemu"
    assert report["end_reason"] == "stopped"  # SIGINT, not QEMU's own exit
    assert report["path"] == pty and pty.startswith("/dev/pts/")
    assert report["link"] == str(rig.link) and not rig.link.exists()  # unlinked on the way out
    assert report["settings"]["rate_hz"] == "200" and report["settings"]["watchdog_ms"] == "50"
    assert report["qemu_exit"] is not None  # QEMU was ended, not left running
    assert report["boot_s"] > 0 and report["stalls"] >= 0


def test_fault_knobs_on_the_qemu_rig_are_refused_in_one_line_naming_them(
        tmp_path: Path) -> None:
    config = rig_config(tmp_path, corrupt_byte_rate=1e-4)
    done = subprocess.run([sys.executable, "-m", "plant_server.firmware_rig", "--kind", "qemu",
                           "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "hil rig (qemu): rig_emulator.kind qemu has no fault knobs (corrupt_byte_rate, "
        "drop_frame_rate, added_latency_ms, unplug_after_s): use kind: host"]
