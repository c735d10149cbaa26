"""hil sweep end to end: 2 laws x 2 experiments x 3 seeds = 12 real lockstep `hil run`s,
here (2 at a time), then one seed's 4 of them on a real Dask cluster of two worker processes
(the session's) giving the same rows; a resumed sweep reruns only what has no complete
report.json, also after a Ctrl-C mid-sweep; and the page looked at in headless Chromium."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from headless_chromium import Chromium

from hil.sweep.table import VOLATILE, read_table, result_digest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[3]
RUN_TIMEOUT_S = 600.0
# The example sweep (2 laws x 2 experiments x 3 seeds, 2 s at 250 Hz), its config absolute.
EXAMPLE = REPO / "configs" / "sweep-dip.yaml"


def hil_sweep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil.cli", "sweep", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)


def results(folder: Path) -> list[dict[str, str]]:
    """sweep.csv without its volatile columns."""
    return [{k: v for k, v in row.items() if k not in VOLATILE}
            for row in read_table((folder / "sweep.csv").read_text())]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["configs"] = [str(EXAMPLE.parent / path) for path in spec["configs"]]
    spec["set"] = {"record.history_db": str(folder / "history.db")}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def local(work: Path) -> Path:
    done = hil_sweep(str(work / "sweep.yaml"), "--out", str(work / "local"), "--jobs", "2")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "12/12 runs" in done.stderr and "12/12 runs PASS" in done.stdout
    return work / "local"


def test_a_local_sweep_runs_every_combination_through_hil_run(local: Path, work: Path):
    rows = read_table((local / "sweep.csv").read_text())
    assert [(r["law"], r["experiment"], r["seed"]) for r in rows] == [
        (law, experiment, seed) for law in ("lqr", "smc") for experiment in ("step", "push")
        for seed in ("1", "2", "3")]
    assert {r["verdict"] for r in rows} == {"PASS"} and {r["config"] for r in rows} == \
        {"default"}
    step = [r for r in rows if r["experiment"] == "step"]
    assert all(float(r["x.iae"]) > 0 and r["x.rise_time_s"] for r in step)
    # The seeds change the runs: each law's three step runs differ.
    assert len({(r["law"], r["x.iae"]) for r in step}) == 6
    for row in rows:
        report = json.loads((Path(row["run_dir"]) / "report.json").read_text())
        assert report["mode"] == "lockstep" and report["run_id"] == row["run_id"]
        assert report["controller"] == {"lqr": "lqr", "smc": "classical_smc"}[row["law"]]
    with sqlite3.connect(work / "history.db") as db:
        stored = {run_id for (run_id,) in db.execute("SELECT run_id FROM runs")}
    assert {r["run_id"] for r in rows} <= stored
    assert json.loads((local / "sweep.json").read_text())["passed"] == 12


def test_the_same_sweep_on_a_dask_cluster_gives_the_same_table(local: Path, work: Path,
                                                              dask_cluster: str):
    """The example's seed 3 (both laws, both experiments: 4 runs) on the session's cluster of
    two worker processes: the same rows, and the same digest of them, as the local sweep's
    seed-3 rows (a seed's runs do not depend on the other seeds of the sweep)."""
    spec = yaml.safe_load((work / "sweep.yaml").read_text())
    spec["seeds"] = [3]
    (work / "seed3.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    done = hil_sweep(str(work / "seed3.yaml"), "--out", str(work / "dask"),
                     "--scheduler", dask_cluster)
    assert done.returncode == 0, done.stderr + done.stdout
    here = [row for row in results(local) if row["seed"] == "3"]
    assert len(here) == 4 and results(work / "dask") == here
    on_dask = json.loads((work / "dask" / "sweep.json").read_text())
    assert on_dask["result_digest"] == result_digest(here)
    assert on_dask["scheduler"] == dask_cluster and on_dask["ran_now"] == 4


def test_a_resumed_sweep_reruns_only_the_runs_without_a_complete_report(local: Path,
                                                                         work: Path):
    folder = work / "resumed"
    shutil.copytree(local, folder)
    runs = sorted((folder / "runs").iterdir())
    lost = [runs[0], runs[7]]
    for run in lost:
        (run / "report.json").unlink()
    kept = {run: (run / "report.json").stat().st_mtime_ns for run in runs if run not in lost}
    # One run at a time; Ctrl-C once the first rerun is done: the second is stopped.
    proc = subprocess.Popen([sys.executable, "-m", "hil.cli", "sweep", "--resume",
                             str(folder), "--jobs", "1"], cwd=REPO, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "11/12 runs" in line:
            proc.send_signal(signal.SIGINT)
            break
    out, rest = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 130, "".join(seen) + rest + out
    assert "10 of 12 runs already done" in seen[1]
    assert "continue with hil sweep --resume" in rest and "11/12 runs PASS" in out
    assert json.loads((folder / "sweep.json").read_text())["interrupted"] is True
    # Resumed again: only the run that was stopped is run.
    done = hil_sweep("--resume", str(folder), "--jobs", "2")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "11 of 12 runs already done" in done.stderr and "1 run now" in done.stdout
    assert {run: (run / "report.json").stat().st_mtime_ns for run in kept} == kept
    assert results(folder) == results(local)


def test_the_page_ranks_the_laws_and_shows_their_plots_in_a_browser(local: Path,
                                                                     tmp_path: Path):
    with Chromium(tmp_path / "profile") as browser:
        page = browser.open((local / "sweep.html").as_uri())
        assert page.wait_for("document.readyState === 'complete' && "
                             "document.querySelectorAll('table.ranking').length") == 2
        ranked = page.evaluate(
            "[...document.querySelectorAll('table.ranking')].map(t => [...t.rows].slice(1)"
            ".map(r => r.cells[1].textContent))")
        assert all(sorted(laws) == ["lqr", "smc"] for laws in ranked)
        assert page.evaluate("[...document.querySelectorAll('table.ranking th')]"
                             ".some(h => h.textContent.startsWith('x.iae'))")
        overall = page.evaluate("[...document.querySelector('table.overall').rows].slice(1)"
                                ".map(r => r.cells[1].textContent)")
        assert sorted(overall) == ["lqr", "smc"]
        images = page.wait_for(
            "(() => { const i = [...document.querySelectorAll('img.plot')]; return i.every("
            "x => x.complete && x.naturalWidth > 600) && i.length })()")
        assert images == 2
        assert page.evaluate("document.querySelector('table.runs').rows.length") == 13
