"""HTML report: a self-contained page with the gates, latencies, config and plots of a run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from synthetic_run import make_run

from hil.reporting.html import PLOT_FILES as PLOTS
from hil.reporting.html import percentile_curve, write_html_report


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("run") / "r")
    page = write_html_report(run)
    assert page == run / "report.html"
    return run, page.read_text()


def test_every_plot_is_written_as_a_png_and_shown_on_the_page(full_run: tuple[Path, str]
                                                               ) -> None:
    run, page = full_run
    for name in PLOTS:
        data = (run / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, name
        assert f'<img src="{name}"' in page
    assert set(re.findall(r'<img src="([^"]+)"', page)) == set(PLOTS)


def test_the_page_is_self_contained(full_run: tuple[Path, str]) -> None:
    _, page = full_run
    assert "<style>" in page and "<script>" in page  # the replay's scripts, inline
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page


def test_the_page_shows_verdict_score_gates_latency_and_config(full_run: tuple[Path, str]
                                                               ) -> None:
    run, page = full_run
    report = json.loads((run / "report.json").read_text())
    assert f'class="badge {report["verdict"]}"' in page
    assert f"score {report['score']:.4g} / 100" in page
    for g in report["gates"]:
        assert f"<td>{g['name']}</td>" in page
    rt = report["latency_us"]["round_trip"]
    assert f"<td>round_trip</td><td>{rt['p50']:.4g}</td>" in page
    assert "upright_tolerance_rad: 0.02" in page  # the run's config.yaml
    assert "theta1 +" in page and " rad" in page  # the final state, named, with units
    assert "Notes" not in page  # nothing missing


def test_a_failed_gate_is_marked(tmp_path: Path) -> None:
    run = make_run(tmp_path / "slow", rt_scale=2.0, steps=300, recordings=False)
    page = write_html_report(run).read_text()
    row = re.search(r'<tr class="failed"><td>round_trip_p99</td>.*?</tr>', page)
    assert row and '<td class="fail">FAIL</td>' in row.group(0)


def test_without_recordings_only_the_latency_plot_is_made_and_the_page_says_why(
        tmp_path: Path) -> None:
    run = make_run(tmp_path / "norec", steps=300, recordings=False)
    (run / "stability.png").write_bytes(b"from an earlier report")
    page = write_html_report(run).read_text()
    assert (run / "latency_percentiles.png").exists()
    assert not any((run / name).exists() for name in PLOTS[1:])
    assert "no plant.rec" in page and "no controller.rec" in page


def test_a_killed_run_is_reported_from_what_it_recorded(tmp_path: Path) -> None:
    run = make_run(tmp_path / "killed", steps=300)
    rec = run / "plant.rec"
    rec.write_bytes(rec.read_bytes()[:-40])  # lose the end marker and tear the last chunk
    (run / "controller.json").unlink()
    page = write_html_report(run).read_text()
    assert "plant.rec: " in page and "bytes at the end ignored" in page
    assert "no latency histograms from controller.json" in page
    assert all((run / name).exists() for name in PLOTS)


def test_text_from_the_run_is_escaped(tmp_path: Path) -> None:
    run = make_run(tmp_path / "esc", run_id="<script>alert(1)</script>", steps=200,
                   recordings=False)
    page = write_html_report(run).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("lockstep", [False, True])
def test_the_timing_plot_draws_lateness_only_where_there_are_deadlines(
        tmp_path: Path, lockstep: bool) -> None:
    """Lockstep records lateness 0: no flat 1 us line, a note instead; the state ->
    controller leg is drawn either way."""
    from hil.recording.recorder import read_recording
    from hil.reporting.html import _timing_figure

    run = make_run(tmp_path / "r", steps=300, lockstep=lockstep)
    plant, controller = read_recording(run / "plant.rec"), read_recording(run / "controller.rec")
    fig = _timing_figure(plant, controller, plant["sim_time_s"])
    top, bottom = fig.axes[:2]
    labels = {line.get_label() for line in top.lines}
    notes = [t.get_text() for t in top.texts]
    if lockstep:
        assert labels == set() and notes == ["no lateness: lockstep has no deadlines"]
    else:
        assert {"plant lateness: max", "controller lateness: median"} <= labels and not notes
    assert {line.get_label() for line in bottom.lines} == {"state → controller: max",
                                                           "state → controller: median"}


def test_misses_while_latched_safe_are_told_apart_in_the_summary_and_the_page(
        tmp_path: Path) -> None:
    from hil.reporting.report import summary_table

    run = make_run(tmp_path / "r", steps=300, recordings=False)
    report = json.loads((run / "report.json").read_text())
    assert "while" not in summary_table(report)  # the synthetic run never went safe
    report["deadline"].update(misses=250, misses_while_safe=240)
    (run / "report.json").write_text(json.dumps(report))
    assert f"longest run {report['deadline']['max_consecutive']}, 240 while safe)" in (
        summary_table(report))
    assert ", 240 while latched safe)" in write_html_report(run).read_text()


def test_percentile_curve_spans_the_median_to_the_max() -> None:
    h = HdrHistogram(1, 60_000_000_000, 3)
    assert [len(a) for a in percentile_curve(h)] == [0, 0]
    values = np.random.default_rng(3).lognormal(12, 0.5, 5000).astype(int)
    for v in values:
        h.record_value(int(v))
    p, us = percentile_curve(h, points=100)
    assert p[0] == 0 and 99.97 < p[-1] < 100  # 1 - 1/count
    assert np.all(np.diff(p) > 0) and np.all(np.diff(us) >= 0)
    assert us[-1] == pytest.approx(values.max() / 1000, rel=1e-3)
    assert np.interp(50.0, p, us) == pytest.approx(np.median(values) / 1000, rel=0.02)
    # Each point but the last (the maximum) is hdrh's own value at that percentile.
    assert us[:-1].tolist() == [h.get_value_at_percentile(x) / 1000 for x in p[:-1]]
