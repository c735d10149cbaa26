"""`hil doctor`, run for real on this machine: its table, its exit status, its history rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hil.app import doctor
from hil.config import load_config
from hil.reporting import history

ROOT = Path(__file__).resolve().parents[3]


def hil(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def probe(code: str) -> bool:
    """Whether `code` runs without an error in a fresh Python on this machine."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          timeout=60).returncode == 0


def expected_statuses() -> dict[str, str]:
    """What the scheduling, memory and CPU checks must find here, found by the test itself:
    SCHED_FIFO and mlockall tried in a fresh process, the governors and the timer slack read
    from the kernel (the doctor's own numbers are not used)."""
    priority = load_config(None).realtime.sched_priority
    fifo = probe(f"import os; os.sched_setscheduler(0, os.SCHED_FIFO, "
                 f"os.sched_param({priority}))")
    locked = probe("import ctypes, ctypes.util; libc = ctypes.CDLL(ctypes.util.find_library("
                   "'c'), use_errno=True); assert libc.mlockall(1 | 2 | 4) == 0")
    governors = [p.read_text().strip() for p in
                 Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")]
    slack_ns = int(Path("/proc/self/timerslack_ns").read_text())
    return {"sched_fifo": "pass" if fifo else "fail",
            "memory_lock": "pass" if locked else "warn",
            "cpu_governor": "pass" if all(g == "performance" for g in governors) else "warn",
            "timer_slack": "pass" if fifo or slack_ns <= 1000 else "warn"}


def test_doctor_judges_this_machine_as_found_prints_each_check_and_appends_the_history(
        tmp_path: Path) -> None:
    expected = expected_statuses()
    db, out = tmp_path / "history.db", tmp_path / "doctor.json"
    done = hil("doctor", "--only", ",".join(expected), "--history-db", str(db), "--json",
               str(out))
    result = json.loads(out.read_text())
    assert {c["name"]: c["status"] for c in result["checks"]} == expected
    ready = "fail" not in expected.values()
    assert result["ready"] is ready
    assert done.returncode == (0 if ready else 1), done.stdout + done.stderr
    counts = {s: list(expected.values()).count(s) for s in ("pass", "warn", "fail")}
    assert (f"{'READY' if ready else 'NOT READY'} for real time: {counts['pass']} pass, "
            f"{counts['warn']} warn, {counts['fail']} fail") in done.stdout
    lines = done.stdout.splitlines()
    for check in result["checks"]:
        mark = {"pass": "pass", "warn": "WARN", "fail": "FAIL"}[check["status"]]
        assert any(line.startswith(f"{mark:<5} {check['name']} ") for line in lines), lines
        if check["status"] != "pass":  # every warning and failure says how to fix it
            assert check["fix"] and f"fix: {check['fix']}" in done.stdout
    rows = history.list_doctor(db, limit=50)
    assert {r["check_name"]: r["status"] for r in rows} == expected
    assert all(r["ready"] == ready for r in rows)
    listed = hil("doctor", "--history", "--history-db", str(db))
    assert listed.returncode == 0 and all(name in listed.stdout for name in expected)


def test_the_measuring_checks_measure_as_many_wakeups_and_round_trips_as_they_say(
        tmp_path: Path) -> None:
    out = tmp_path / "doctor.json"
    done = hil("doctor", "--only", "transport_floor,loop_jitter", "--jitter-s", "0.5",
               "--no-history", "--json", str(out))
    checks = {c["name"]: c for c in json.loads(out.read_text())["checks"]}
    assert list(checks) == ["transport_floor", "loop_jitter"], done.stderr
    jitter = checks["loop_jitter"]["figures"]
    assert jitter["wakeups"] == 500  # 0.5 s at the default 1 kHz
    assert 0 <= jitter["p50_us"] <= jitter["p99_us"] <= jitter["max_us"]
    assert "500 wake-ups at 1000 Hz" in checks["loop_jitter"]["detail"]
    # A control has the period less the phase offset (0.3) and the guard (0.15) kept free.
    assert jitter["budget_us"] == 550.0
    floor = checks["transport_floor"]["figures"]
    assert 0 < floor["p50_us"] <= floor["p99_us"] and floor["n"] == 2000


def test_a_missing_serial_port_fails_the_doctor_with_the_fix_and_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "rig.yaml"
    config.write_text("run:\n  rate_hz: 500\nplant:\n  backend: serial\nserial:\n"
                      f"  port: {tmp_path / 'ttyHIL0'}\n  baud: 230400\n")
    done = hil("doctor", "--config", str(config), "--only", "serial_port,cpu_governor",
               "--no-history")
    assert done.returncode == 1, done.stdout + done.stderr
    assert [x.split()[1] for x in done.stdout.splitlines()[1:3]] == ["cpu_governor",
                                                                      "serial_port"]
    line = next(x for x in done.stdout.splitlines() if x.startswith("FAIL  serial_port"))
    assert f"{tmp_path / 'ttyHIL0'} does not exist" in line
    assert "fix: plug in the rig, then set serial.port to its /dev/serial/by-id/" in done.stdout
    assert "NOT READY" in done.stdout


def test_a_serial_port_present_and_permitted_passes(tmp_path: Path) -> None:
    port = tmp_path / "tty"
    port.write_bytes(b"")
    config = load_config(None, {"plant.backend": "serial", "serial.port": str(port),
                                "run.rate_hz": 500, "serial.baud": 230400})
    check = doctor.check_serial(config)
    assert (check.status, check.fix) == ("pass", "")


def test_a_bad_config_or_check_name_exits_2_naming_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("run:\n  rate_hx: 500\n")
    done = hil("doctor", "--config", str(config))
    assert done.returncode == 2 and "run.rate_hx: unknown key" in done.stderr
    done = hil("doctor", "--only", "serial,loop_jitter")
    assert done.returncode == 2 and "--only: unknown check(s) serial; the checks are" in done.stderr


@pytest.mark.parametrize(("text", "cpus"), [("", set()), ("1", {1}), ("0-2,5", {0, 1, 2, 5})])
def test_isolated_cpu_lists_are_read_as_the_kernel_writes_them(text: str, cpus: set[int]) -> None:
    assert doctor._parse_cpu_list(text) == cpus


def test_a_version_1_history_gains_the_doctor_table_and_keeps_its_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "h.db"
    with monkeypatch.context() as m:  # a database written before the doctor table existed
        m.setattr(history, "_MIGRATIONS", history._MIGRATIONS[:1])
        m.setattr(history, "SCHEMA_VERSION", 1)
        history.append_run(db, {"run_id": "r1", "verdict": "PASS"}, "d")
    assert history.list_doctor(db) == []
    assert [r["run_id"] for r in history.list_runs(db)] == ["r1"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone()[0] == "2"


def test_a_config_that_turns_sched_fifo_off_is_warned_about(tmp_path: Path) -> None:
    config = load_config(None, {"realtime.sched_fifo": False})
    found = {c.name: c for c in doctor.run_checks(
        config, only={"sched_fifo", "timer_slack"}).checks}
    assert found["sched_fifo"].status in ("warn", "fail")
    assert found["sched_fifo"].fix
    if found["sched_fifo"].status == "warn":  # allowed, but not asked for
        assert "realtime.sched_fifo: true" in found["sched_fifo"].fix
    # Without SCHED_FIFO the loops keep the default timer slack (50 us unless changed).
    assert found["timer_slack"].detail.endswith("without SCHED_FIFO every wake-up may come "
                                                 "this late")


def test_the_cache_check_starts_a_two_input_plant_and_its_law() -> None:
    """The probe steps the plant at its trim (one number per input) and builds it as the
    plant does (build_plant_model: plug-ins, FMUs), so any runnable config passes it."""
    check = doctor.check_numba_cache(str(ROOT / "configs" / "helicopter.yaml"))
    assert check.status in ("pass", "warn"), check.detail  # warn: the cache was cold
    assert check.figures is not None and check.figures["second_start_s"] > 0
