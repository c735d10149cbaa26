"""hil export: one row per plant step, a header naming each column with its unit."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from synthetic_run import STATE_NAMES, make_run

from hil.cli import main
from hil.recording.export import export_recording
from hil.recording.recorder import read_recording


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("export") / "r", steps=500)


def test_csv_has_a_unit_header_and_every_step_exactly(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "plant.csv"
    assert main(["export", str(run), "--format", "csv", "--output", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[:4] == ["seq", "t_ns [ns]", "sim_time_s [s]", "x [m]"]
    # The input by its own name (the cart's force), not its recording column `force_n`.
    assert "theta1 [rad]" in header and "force [N]" in header and "flags" in header
    assert "force_n [N]" not in header
    rec = read_recording(run / "plant.rec")
    assert len(rows) - 1 == rec.rows == 500
    table = rows[1:]
    assert [int(r[0]) for r in table] == list(range(500))
    assert int(table[-1][1]) == int(rec["t_ns"][-1])  # int64 nanoseconds, not 1.2e+12
    theta = header.index("theta1 [rad]")
    np.testing.assert_array_equal([float(r[theta]) for r in table], rec["theta1"])  # exact


def test_npz_holds_each_column_with_names_and_units(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "plant.npz"
    rec = export_recording(run, "npz", out)
    with np.load(out) as data:
        assert list(data["_columns"]) == [c.name for c in rec.columns]
        units = dict(zip(data["_columns"], data["_units"], strict=True))
        assert units["theta1"] == "rad" and units["seq"] == ""
        for name in ("seq", "t_ns", *STATE_NAMES, "force_n"):
            np.testing.assert_array_equal(data[name], rec[name])
        assert data["seq"].dtype == np.int64


def test_a_killed_plants_recording_exports_its_intact_rows(run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    killed = tmp_path / "killed"
    killed.mkdir()
    data = (run / "plant.rec").read_bytes()
    (killed / "plant.rec").write_bytes(data[:-30])
    out = tmp_path / "k.csv"
    assert main(["export", str(killed), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "bytes at the end of plant.rec ignored" in captured.err
    assert "400 plant steps" in captured.out
    assert len(out.read_text().splitlines()) == 401


def test_export_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tmp_path), "--output", str(tmp_path / "x.csv")]) == 2
    assert "plant.rec" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "xls", "--output", "x"]) == 2
    with pytest.raises(ValueError, match="format must be one of csv, npz"):
        export_recording(tmp_path, "xls", tmp_path / "x")


@pytest.mark.parametrize("fmt", ["csv", "npz", "mcap"])
@pytest.mark.parametrize("case", ["not there", "under a file"])
def test_an_output_that_cannot_be_written_is_named_with_the_option_to_change(
        run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, fmt: str, case: str) -> None:
    (tmp_path / "a-file").write_text("")
    output = {"not there": f"/proc/no-such-folder/run.{fmt}",
              "under a file": str(tmp_path / "a-file" / f"run.{fmt}")}[case]
    assert main(["export", str(run), "--format", fmt, "--output", output]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith(f"hil export: cannot write "
                                                                f"{output}: "), err
    assert "give --output a file in a folder you can write" in err
