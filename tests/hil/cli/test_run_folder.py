"""`--out`: a folder holding an earlier run is refused unless --overwrite (which removes that
run's files first, so no old log line is read as the new run's), by `hil run` and by the
processes alike; a path that is a file, under a file or impossible is named, exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NO_HTML, free_endpoint
from finished_run import finished_run

from hil.app import run_folder
from hil.cli import main

BIN = Path(sys.executable).parent
LOCKSTEP = ("--mode", "lockstep", "--duration", "0.5", *NO_HTML)


def hil_run(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hil"), "run", "--out", str(out), "--endpoint",
                           free_endpoint(), *LOCKSTEP, *extra], capture_output=True, text=True,
                          timeout=300)


def events(log: Path, event: str) -> int:
    return sum(json.loads(line).get("event") == event for line in log.read_text().splitlines())


@pytest.mark.slow
def test_a_finished_run_is_kept_unless_overwrite_replaces_it_whole(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # A copy of the session's finished run (finished_run.py): a real run's folder, and one
    # run fewer than making it here.
    first = finished_run(tmp_path_factory)
    assert first.done.returncode in (0, 1), first.done.stderr
    out = Path(shutil.copytree(first.out, tmp_path / "run"))
    assert (out / "report.json").exists()
    kept = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = hil_run(out)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    assert f"--out {out} holds an earlier run" in again.stderr
    assert "add --overwrite" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == kept
    replaced = hil_run(out, "--overwrite")
    assert replaced.returncode in (0, 1), replaced.stderr
    assert (out / "plant.log.jsonl").exists(), replaced.stdout + replaced.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run_id"] != json.loads(kept["report.json"])["run_id"]
    # One run's lines, not two runs' appended.
    assert events(out / "plant.log.jsonl", "plant serving") == 1
    assert events(out / "controller.log.jsonl", "attached") == 1


@pytest.mark.parametrize("mark", ["report.json", "plant.json", "controller.json", "plant.rec",
                                  "controller.log.jsonl"])
def test_hil_run_refuses_a_folder_with_any_file_of_a_run_and_touches_nothing(
        tmp_path: Path, mark: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / mark).write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["run", "--out", str(tmp_path), *LOCKSTEP]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"holds an earlier run ({mark})" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mark, "notes.txt"])


def test_overwrite_removes_the_runs_files_and_leaves_the_others(tmp_path: Path) -> None:
    names = ["report.json", "plant.json", "controller.json", "plant.rec", "controller.rec",
             "plant.log.jsonl", "controller.log.jsonl", "report.html", "timing.png", "rig.json"]
    for name in [*names, "notes.txt", "config.yaml"]:
        (tmp_path / name).write_text("old")
    assert run_folder.claim(str(tmp_path), overwrite=True) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "notes.txt"]


def test_the_run_files_name_the_html_reports_plots() -> None:
    from hil.reporting.html import PLOT_FILES

    assert set(PLOT_FILES) <= set(run_folder.RUN_FILES)


def bad_paths(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """--out values that cannot be a run folder, and what the refusal says."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    return {"a file": (str(a_file), "a file, not a folder"),
            "under a file": (str(a_file / "run"), f"{a_file} is a file, so no folder"),
            "impossible": ("/proc/nope/run", "cannot make the folder"),
            "empty": ("", "an empty folder name"),
            "NUL": ("run\0x", "cannot make the folder")}


@pytest.mark.parametrize("case", ["a file", "under a file", "impossible", "empty", "NUL"])
def test_hil_run_names_an_out_path_it_cannot_use(
        tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    out, said = bad_paths(tmp_path)[case]
    assert main(["run", "--out", out, *LOCKSTEP]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and said in err and "--out" in err, err


@pytest.mark.parametrize(("setting", "said"), [
    ("plant.params.nonsense=1", "plant.params: unknown DIPParams parameter(s) 'nonsense'"),
    ("plant.params.cart_mass_kg=-1", "plant.params: cart_mass_kg must be > 0, got -1"),
    ("plant.initial_state=[1,2]", "plant.initial_state: model 'dip' has 6 states"),
])
def test_a_built_in_models_bad_params_are_refused_before_a_run_folder_exists(
        tmp_path: Path, setting: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Checked by `hil run` itself, as the plant checks them: one line, exit 2, and no run
    folder or process (before, both programs started, each said it, and the run folder
    held their partial reports)."""
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *LOCKSTEP, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"hil run: {said}"), err
    assert not out.exists()


@pytest.mark.parametrize("process", ["hil-plant", "hil-controller"])
@pytest.mark.parametrize("case", ["under a file", "impossible"])
def test_the_processes_name_an_out_path_they_cannot_use(tmp_path: Path, process: str,
                                                        case: str) -> None:
    out, said = bad_paths(tmp_path)[case]
    done = subprocess.run([str(BIN / process), "--out", out], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and said in done.stderr, done.stderr


def start_plant(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A plant that nobody attaches to, ending after its (short) attach timeout."""
    config = out.parent / "plant.yaml"
    config.write_text("plant: {attach_timeout_s: 0.2}\nrecord: {history_db: null}\n")
    return subprocess.run([str(BIN / "hil-plant"), "--config", str(config), "--out", str(out),
                           "--endpoint", free_endpoint(), *extra], capture_output=True,
                          text=True, timeout=120)


def test_a_process_refuses_its_report_of_another_run_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "plant.json").write_text(json.dumps({"run_id": "earlier"}))
    (out / "plant.log.jsonl").write_text('{"event": "from the earlier run"}\n')
    refused = start_plant(out, "--run-id", "later")
    assert refused.returncode == 2
    assert "holds plant.json of another run (earlier)" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert json.loads((out / "plant.json").read_text()) == {"run_id": "earlier"}
    same_run = start_plant(out, "--run-id", "earlier")  # a process of that same run: welcome
    assert same_run.returncode != 2, same_run.stderr
    replaced = start_plant(out, "--run-id", "later", "--overwrite")
    assert replaced.returncode != 2, replaced.stderr
    assert json.loads((out / "plant.json").read_text())["run_id"] == "later"
    assert "from the earlier run" not in (out / "plant.log.jsonl").read_text()
