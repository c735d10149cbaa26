"""report.html's replay, played in headless Chromium from a file:// URL with the network off."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from headless_chromium import Chromium
from synthetic_run import STATE_NAMES, make_run

from hil.recording.recorder import read_recording
from hil.reporting.html import write_html_report

ORANGE = "[232,89,12]"  # plant.js COLORS.link


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_run(tmp_path_factory.mktemp("replay") / "r", steps=2000)
    report = json.loads((folder / "report.json").read_text())
    report["safety"] = {"events": [{"gate": "angle", "time": 1.5, "value": 1.2, "limit": 1.0}]}
    report["gain_changes"] = [{"time": 0.5, "old": [2, 16], "new": [3, 16], "who": "me"}]
    (folder / "report.json").write_text(json.dumps(report))
    write_html_report(folder)
    return folder


def test_the_report_plays_pauses_scrubs_and_marks_events_offline(run: Path,
                                                                tmp_path: Path) -> None:
    html = (run / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing to fetch
    with Chromium(tmp_path / "profile") as browser:
        page = browser.open("about:blank")
        browser.call("Network.enable", session=page.session)
        browser.call("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1,
            "uploadThroughput": -1}, page.session)
        browser.call("Page.navigate", {"url": (run / "report.html").as_uri()}, page.session)
        page.wait_for("document.readyState === 'complete' && !!window.hilReplay", 30)
        assert page.evaluate("document.getElementById('replay-time').textContent") == "0.000 s"
        # The plant is drawn: orange link pixels on the replay canvas.
        count_links = ("(() => { const c = document.getElementById('replay-plant');"
                       " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                       " let n = 0; for (let i = 0; i < d.length; i += 4)"
                       f" if (JSON.stringify([d[i], d[i+1], d[i+2]]) === '{ORANGE}') n++;"
                       " return n; })()")
        assert page.evaluate(count_links) > 300
        # Events on the timeline, in time order.
        events = page.evaluate("[...document.querySelectorAll('#replay-events li')]"
                               ".map(li => li.textContent)")
        assert events[0].startswith("0.500 s  gains") and "by me" in events[0]
        assert events[1].startswith("1.500 s  safety: angle")
        # Play at 4x: the time runs; pause: it stops.
        page.evaluate("document.getElementById('replay-speed').value = '4';"
                      "document.getElementById('replay-play').click()")
        page.wait_for("parseFloat(document.getElementById('replay-time').textContent) > 0.3", 20)
        page.evaluate("document.getElementById('replay-play').click()")
        assert page.evaluate("window.hilReplay.playing") is False
        paused = page.evaluate("document.getElementById('replay-time').textContent")
        page.evaluate("new Promise(r => setTimeout(() => r(true), 300))")  # 300 ms paused
        assert page.evaluate("document.getElementById('replay-time').textContent") == paused
        # Scrub to a frame: the time and the state shown are that plant step's.
        page.evaluate("const s = document.getElementById('replay-scrub'); s.value = '1234';"
                      "s.dispatchEvent(new Event('input'))")
        shown = page.evaluate("document.getElementById('replay-state').textContent")
        t_shown = page.evaluate("document.getElementById('replay-time').textContent")
        # Clicking an event seeks there.
        page.evaluate("document.querySelectorAll('#replay-events a')[1].click()")
        after_click = page.evaluate("document.getElementById('replay-time').textContent")
    rec = read_recording(run / "plant.rec")
    assert t_shown == f"{rec['sim_time_s'][1234]:.3f} s"
    values = dict(re.findall(r"(\w+) ([-+\d.]+)", shown))
    for name in STATE_NAMES:
        assert float(values[name]) == pytest.approx(rec[name][1234], abs=6e-5), name
    assert after_click == "1.500 s"
