"""The live view end to end, the pages loaded in headless Chromium.

One real run (plant and controller processes on loopback) watched two ways at once in one
real browser: `hil run --watch` (the page fed from the run's recording) and `hil watch
--endpoint` (fed from the plant's observations). Each page shows the run id, a running time
and the latest state (checked against the plant's own recording), and its canvas the
pendulum drawn upright on its cart. A port in use refuses the run before anything starts.
"""

from __future__ import annotations

import io
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_endpoint
from headless_chromium import Chromium, Page
from PIL import Image

from hil.recording.recorder import read_recording

HIL = [sys.executable, "-m", "hil.cli"]
LINK = (232, 89, 12)  # plant.js COLORS.link
CART = (28, 126, 214)  # plant.js COLORS.cart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_line(proc: subprocess.Popen, prefix: str, timeout_s: float) -> str:
    """The first stdout line of `proc` starting with `prefix`; the rest of stdout is drained
    on a thread so the process never blocks on a full pipe."""
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    give_up = time.monotonic() + timeout_s
    seen = []
    while (left := give_up - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        if line.startswith(prefix):
            return line
        seen.append(line)
    raise AssertionError(f"no {prefix!r} line within {timeout_s} s: {seen[-20:]!r}")


def pixels(png: bytes, color: tuple[int, int, int], tolerance: int = 12) -> np.ndarray:
    """(row, col) of every pixel within `tolerance` of `color`."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return np.argwhere((np.abs(rgb - np.array(color)) <= tolerance).all(axis=2))


STATE_JS = ("JSON.stringify({t: document.getElementById('run-time').textContent,"
            " names: [...document.querySelectorAll('#state tr')].map(r => r.cells[0]"
            ".textContent), values: [...document.querySelectorAll('#state tr')]"
            ".map(r => r.cells[1].textContent), status: "
            "document.getElementById('status').textContent})")


def watch_page(page: Page, run_id: str) -> tuple[dict, bytes]:
    """Wait until `page` shows `run_id` and a running time; then (what it shows, a PNG of
    its plant canvas)."""
    assert page.wait_for(f"document.getElementById('run-id').textContent === '{run_id}'", 60)
    first = float(page.wait_for(
        "(() => { const t = parseFloat(document.getElementById('run-time').textContent);"
        " return t > 1.0 ? String(t) : null })()", 60))
    later = float(page.wait_for(
        f"(() => {{ const t = parseFloat(document.getElementById('run-time')"
        f".textContent); return t > {first} + 0.5 ? String(t) : null }})()", 20))
    assert later > first + 0.5  # the time runs
    return json.loads(page.evaluate(STATE_JS)), page.screenshot("#plant")


def check_page(shown: dict, png: bytes, rec: dict) -> None:
    """What a page showed is the plant's own latest state, and its canvas a pendulum."""
    assert shown["names"] == ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot",
                              "force"]
    assert shown["status"].startswith("live")
    # The latest state on the page is the plant's own, at the time the page says.
    t_shown = float(shown["t"].split()[0])
    row = int(np.argmin(np.abs(rec["sim_time_s"] - t_shown)))
    assert abs(rec["sim_time_s"][row] - t_shown) < 1e-3
    for name, text in zip(shown["names"][:6], shown["values"][:6], strict=True):
        assert float(text) == pytest.approx(rec[name][row], abs=6e-5), name
    assert float(shown["values"][6]) == pytest.approx(rec[rec.inputs[0]][row], abs=6e-4)
    # The plant's canvas shows the pendulum: the links (orange) stand above the cart (blue).
    link, cart = pixels(png, LINK), pixels(png, CART)
    assert len(cart) > 300, f"cart not drawn: {len(cart)} pixels"
    assert len(link) > 300, f"links not drawn: {len(link)} pixels"
    assert link[:, 0].mean() < cart[:, 0].mean() - 40  # rows grow downwards
    assert abs(np.median(link[:, 1]) - np.median(cart[:, 1])) < 60  # on the cart, near upright


@pytest.mark.slow
@pytest.mark.realtime
@pytest.mark.timeout(300)
def test_both_feeds_show_the_run_id_a_running_time_and_the_latest_state(tmp_path: Path) -> None:
    """One real run, watched two ways at once in one browser: `hil run --watch` (the page fed
    from the run's recording) and `hil watch --endpoint` (fed from the plant's observations).
    The run is stopped with Ctrl-C once both pages have been read."""
    out, endpoint = tmp_path / "run", free_endpoint()
    port, watch_port = free_port(), free_port()
    # Chromium starting on a loaded 2-core machine can stall the loops past the default 20 ms
    # watchdog; a trip would drop the pendulum this test looks at (the watchdog is not what
    # it tests: tests/faults does).
    config = tmp_path / "run.yaml"
    config.write_text("plant: {watchdog_timeout_ms: 250}\n")
    run = subprocess.Popen(
        [*HIL, "run", "--config", str(config), "--duration", "60", "--watch", "--watch-port",
         str(port), "--endpoint", endpoint, "--out", str(out), "--run-id", "watch-test-run"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watch = None
    try:
        assert wait_line(run, "live view:", 60) == f"live view: http://127.0.0.1:{port}/"
        watch = subprocess.Popen([*HIL, "watch", "--endpoint", endpoint, "--port",
                                  str(watch_port), "--timeout", "60"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert wait_line(watch, "live view:", 90) == f"live view: http://127.0.0.1:{watch_port}/"
        with Chromium(tmp_path / "profile") as browser:
            shown, png = watch_page(browser.open(f"http://127.0.0.1:{port}/"), "watch-test-run")
            (tmp_path / "live.png").write_bytes(png)  # kept by pytest for a person to look at
            shown_ep, png_ep = watch_page(browser.open(f"http://127.0.0.1:{watch_port}/"),
                                          "watch-test-run")
            (tmp_path / "endpoint.png").write_bytes(png_ep)
        watch.send_signal(signal.SIGINT)  # the observer leaves mid-run
        assert watch.wait(30) == 0
        run.send_signal(signal.SIGINT)  # Ctrl-C: the run stops and writes its reports
        run.wait(120)
    finally:
        for p in (watch, run):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    plant = json.loads((out / "plant.json").read_text())
    assert plant["end_reason"] == "stopped", plant["end_reason"]
    assert plant["observers"]["subscribed"] == 1 and plant["observers"]["dropped"] == 0
    rec = read_recording(out / "plant.rec")
    check_page(shown, png, rec)
    check_page(shown_ep, png_ep, rec)


def test_a_port_in_use_refuses_the_run_before_it_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([*HIL, "run", "--duration", "1", "--watch", "--watch-port",
                               str(port), "--endpoint", free_endpoint(), "--out",
                               str(tmp_path / "run")], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr and "--watch-port" in done.stderr
    assert not (tmp_path / "run" / "plant.rec").exists()  # nothing started
    assert not (tmp_path / "run" / "plant.json").exists()
