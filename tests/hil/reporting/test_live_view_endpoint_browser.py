"""The page fed by `hil watch --endpoint`, in headless Chromium, during a real run.

The same page as `hil run --watch`, fed from the plant's observations instead of its
recording: it shows the run id, a running time and the latest state (checked against the
plant's own recording), and a screenshot shows the pendulum drawn on its cart.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import free_endpoint
from headless_chromium import Chromium
from test_live_view_browser import CART, LINK, free_port, pixels, wait_line

from hil.recording.recorder import read_recording

HIL = [sys.executable, "-m", "hil.cli"]


@pytest.mark.realtime
@pytest.mark.timeout(300)
def test_the_page_fed_by_an_endpoint_shows_the_running_plant(tmp_path: Path) -> None:
    endpoint, port, out = free_endpoint(), free_port(), tmp_path / "run"
    run = subprocess.Popen([*HIL, "run", "--duration", "12", "--endpoint", endpoint, "--out",
                            str(out), "--run-id", "endpoint-page-run"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watch = subprocess.Popen([*HIL, "watch", "--endpoint", endpoint, "--port", str(port),
                              "--timeout", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_line(watch, "live view:", 90) == f"live view: http://127.0.0.1:{port}/"
        with Chromium(tmp_path / "profile") as browser:
            page = browser.open(f"http://127.0.0.1:{port}/")
            assert page.wait_for("document.getElementById('run-id').textContent "
                                 "=== 'endpoint-page-run'", 30)
            first = float(page.wait_for(
                "(() => { const t = parseFloat(document.getElementById('run-time').textContent);"
                " return t > 1.0 ? String(t) : null })()", 60))
            later = float(page.wait_for(
                f"(() => {{ const t = parseFloat(document.getElementById('run-time')"
                f".textContent); return t > {first} + 0.5 ? String(t) : null }})()", 20))
            assert later > first + 0.5  # the time runs
            shown = json.loads(page.evaluate(
                "JSON.stringify({t: document.getElementById('run-time').textContent,"
                " names: [...document.querySelectorAll('#state tr')].map(r => r.cells[0]"
                ".textContent), values: [...document.querySelectorAll('#state tr')]"
                ".map(r => r.cells[1].textContent), status: "
                "document.getElementById('status').textContent})"))
            png = page.screenshot("#plant")
            (tmp_path / "endpoint.png").write_bytes(png)  # kept for a person to look at
        watch.send_signal(signal.SIGINT)
        assert watch.wait(30) == 0
        _, err = run.communicate(timeout=120)
    finally:
        for p in (watch, run):
            if p.poll() is None:
                p.kill()
                p.wait()
    # The run went to its end. (Its verdict is not this test's: Chromium starting on the
    # loaded 2-core machine has stalled the loops long enough to trip the watchdog.)
    plant = json.loads((out / "plant.json").read_text())
    assert plant["end_reason"] == "duration", err[-3000:]
    assert plant["observers"]["subscribed"] == 1 and plant["observers"]["dropped"] == 0
    assert shown["names"] == ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot",
                              "force"]
    assert shown["status"].startswith("live")
    # The latest state on the page is the plant's own, at the time the page says.
    rec = read_recording(out / "plant.rec")
    t_shown = float(shown["t"].split()[0])
    row = int(np.argmin(np.abs(rec["sim_time_s"] - t_shown)))
    assert abs(rec["sim_time_s"][row] - t_shown) < 1e-3
    for name, text in zip(shown["names"][:6], shown["values"][:6], strict=True):
        assert float(text) == pytest.approx(rec[name][row], abs=6e-5), name
    assert float(shown["values"][6]) == pytest.approx(rec["force_n"][row], abs=6e-4)
    # The plant's canvas shows the pendulum: the links (orange) stand above the cart (blue).
    link, cart = pixels(png, LINK), pixels(png, CART)
    assert len(cart) > 300, f"cart not drawn: {len(cart)} pixels"
    assert len(link) > 300, f"links not drawn: {len(link)} pixels"
    assert link[:, 0].mean() < cart[:, 0].mean() - 40  # rows grow downwards
    assert abs(np.median(link[:, 1]) - np.median(cart[:, 1])) < 60  # on the cart, near upright
