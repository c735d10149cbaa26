"""The firmware's sources ship in the package: a wheel built from this tree holds every
source, Makefile and linker script of firmware_protocol/firmware/ (and none of its build
outputs), and the host build compiles from the wheel's files alone, as a non-editable
install does when `rig_emulator.kind` is host or qemu.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from fw_kit import FIRMWARE

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hil", "plant_server", "controller_client", "firmware_protocol")
SKIP = shutil.ignore_patterns("build", "__pycache__", "*.pyc", "*.egg-info")


def firmware_sources() -> set[str]:
    """Every file of firmware_protocol/firmware/ a build needs (build outputs excluded)."""
    return {f"firmware_protocol/firmware/{p.relative_to(FIRMWARE).as_posix()}"
            for p in FIRMWARE.rglob("*")
            if p.is_file() and "build" not in p.relative_to(FIRMWARE).parts
            and (p.suffix in (".c", ".h", ".ld") or p.name == "Makefile")}


def test_a_wheel_holds_the_firmware_sources_and_builds_the_host_firmware(
        tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: the wheel build writes build/ and *.egg-info
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=SKIP)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                           "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                           str(src)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("hil_runtime-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        needed = firmware_sources()
        assert len(needed) >= 20 and "firmware_protocol/firmware/Makefile" in needed
        assert needed <= names, sorted(needed - names)
        assert "firmware_protocol/c/hilproto.c" in names  # the codec the Makefile builds in
        assert not [n for n in names if "/firmware/build/" in n]
        site = tmp_path / "site"
        z.extractall(site, [n for n in names if n.startswith("firmware_protocol/")])
    out = tmp_path / "fw-build"
    done = subprocess.run(["make", "-C", str(site / "firmware_protocol" / "firmware"), "host",
                           f"BUILD={out}"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (out / "host" / "hil-rig-host").stat().st_size > 0
