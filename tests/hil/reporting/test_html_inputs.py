"""report.html shows every input of the plant: a trace per input, named, in its unit, with its
limits; a run folder of one `force_n` input (as written before several inputs) still renders.
The replay is checked in headless Chromium too: both input plots drawn, with their limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from headless_chromium import Chromium
from synthetic_run import make_run
from two_input_run import make_two_input_run, thrusts

from hil.recording.recorder import read_recording
from hil.reporting.html import REPLAY_FRAMES, write_html_report

RED = "[201,42,42]"  # the input's trace (#c92a2a)
GREY = "[134,142,150]"  # its limits, dashed (#868e96)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_two_input_run(tmp_path_factory.mktemp("two") / "r", steps=600)
    return run, write_html_report(run).read_text()


def replay_data(page: str) -> dict:
    blob = re.search(r'<script id="replay-data" type="application/json">(.*?)</script>', page,
                     re.S)
    assert blob, "no replay data in the page"
    return json.loads(blob.group(1).replace("<\\/", "</"))


def test_each_input_has_its_trace_name_unit_and_limits_in_the_page(two: tuple[Path, str]
                                                                   ) -> None:
    run, page = two
    data = replay_data(page)
    assert [(u["name"], u["unit"], u["low"], u["high"]) for u in data["inputs"]] == [
        ("thrust_left", "N", 0.0, 40.0), ("thrust_right", "N", 0.0, 40.0)]
    rec = read_recording(run / "plant.rec")
    assert REPLAY_FRAMES >= 600
    for u in data["inputs"]:
        np.testing.assert_allclose(u["values"], rec[u["name"]], atol=1e-6)
    assert data["inputs"][0]["values"] != data["inputs"][1]["values"]
    assert 'id="replay-input-0"' in page and 'id="replay-input-1"' in page
    assert 'id="replay-input-2"' not in page
    assert "<b>inputs</b> thrust_left (N) 0 .. 40 N; thrust_right (N) 0 .. 40 N" in page
    assert "State and thrust_left (N), thrust_right (N) trajectories" in page
    assert "force" not in page.split('<h2 id="replay">')[0]  # no legacy input anywhere
    for png in ("trajectories.png", "stability.png"):
        assert (run / png).read_bytes().startswith(b"\x89PNG")


def test_an_old_single_input_run_still_renders_its_force_with_its_limit(tmp_path: Path
                                                                       ) -> None:
    run = make_run(tmp_path / "old", steps=300)  # force_n column, max_force_n 150
    page = write_html_report(run).read_text()
    data = replay_data(page)
    assert [(u["name"], u["unit"], u["low"], u["high"]) for u in data["inputs"]] == [
        ("force", "N", -150.0, 150.0)]
    np.testing.assert_allclose(data["inputs"][0]["values"],
                               read_recording(run / "plant.rec")["force_n"], atol=1e-6)
    assert "<b>input</b> force (N), limit ±150 N" in page
    assert "State and force (N) trajectories" in page


def _pixels(canvas: str, rgb: str) -> str:
    return (f"(() => {{ const c = document.getElementById('{canvas}');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 0; i < d.length; i += 4)"
            f" if (JSON.stringify([d[i], d[i+1], d[i+2]]) === '{rgb}') n++; return n; }})()")


def test_the_replay_plots_both_inputs_with_their_limits_in_a_browser(
        two: tuple[Path, str], tmp_path: Path) -> None:
    run, _ = two
    with Chromium(tmp_path / "profile") as browser:
        page = browser.open((run / "report.html").as_uri())
        page.wait_for("document.readyState === 'complete' && !!window.hilReplay", 30)
        drawn = {canvas: (page.evaluate(_pixels(canvas, RED)), page.evaluate(_pixels(canvas, GREY)))
                 for canvas in ("replay-input-0", "replay-input-1")}
        page.evaluate("const s = document.getElementById('replay-scrub'); s.value = '321';"
                      "s.dispatchEvent(new Event('input'))")
        shown = page.evaluate("document.getElementById('replay-state').textContent")
        # Rates go to the rate plot by name or by unit (the helicopter's pitch_rate, rad/s).
        rates = page.evaluate("[['pitch_rate', 'rad/s'], ['z_dot', 'm/s'], ['x_dot', ''],"
                              " ['pitch', 'rad'], ['z', 'm']].map(([n, u]) =>"
                              " HilPlant.isRate(n, u))")
    assert rates == [True, True, True, False, False]
    for canvas, (red, grey) in drawn.items():
        assert red > 200, f"{canvas}: no input trace drawn"
        assert grey > 200, f"{canvas}: no limit lines drawn"
    values = dict(re.findall(r"(\w+) ([-+\d.]+) N", shown))
    u = thrusts(600)[320]  # the plant holds the previous step's control
    assert float(values["thrust_left"]) == pytest.approx(u[0], abs=6e-4)
    assert float(values["thrust_right"]) == pytest.approx(u[1], abs=6e-4)
