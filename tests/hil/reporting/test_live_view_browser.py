"""The live view end to end, the pages loaded in headless Chromium.

One real run (plant and controller processes on loopback) watched two ways at once:
`hil run --watch` (the page fed from the run's recording) and `hil watch --endpoint` (fed
from the plant's observations). `hil watch`'s WebSocket feed, read as the page reads it, is
checked against the plant's own recording, and the run is undisturbed by its observer; then
in one real browser each page shows the run id, a running time and the latest state (checked
against the plant's own recording), and its canvas the pendulum drawn upright on its cart.
A port in use refuses the run before anything starts.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_HTML, assert_passed_but_timing, free_endpoint, free_port
from headless_chromium import Chromium, Page
from PIL import Image
from websockets.sync.client import connect

from hil.recording.recorder import read_recording

HIL = [sys.executable, "-m", "hil.cli"]
LINK = (232, 89, 12)  # plant.js COLORS.link
CART = (28, 126, 214)  # plant.js COLORS.cart


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


RUN_ID = "watch-test-run"
NAMES = ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"]


def read_feed(port: int, until_t: float, timeout_s: float) -> tuple[dict, list[dict]]:
    """The page's WebSocket: the hello, then updates until one at run time >= `until_t`."""
    give_up = time.monotonic() + timeout_s
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=timeout_s))
        updates: list[dict] = []
        while time.monotonic() < give_up:
            u = json.loads(ws.recv(timeout=max(0.1, give_up - time.monotonic())))
            updates.append(u)
            if u.get("t", -1.0) >= until_t:
                return hello, updates
    raise AssertionError(f"no update at t >= {until_t} within {timeout_s} s: "
                         f"{[u.get('t') for u in updates][-5:]}")


@dataclass(frozen=True)
class WatchedRun:
    """One real run, watched while it ran: `hil watch --endpoint`'s WebSocket feed as the
    page reads it, then both pages (`hil run --watch`'s and `hil watch`'s) in a browser."""

    out: Path
    run_code: int
    run_stderr: str
    watch_code: int
    urls: tuple[str, str]  # the "live view:" lines of hil run and hil watch
    hello: dict
    updates: list[dict]
    pages: dict[str, tuple[dict, bytes]]  # "run", "endpoint": what it showed, its canvas
    ports: tuple[int, int]


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory: pytest.TempPathFactory) -> WatchedRun:
    """`hil run --watch --endpoint` for a fixed duration, with `hil watch --endpoint` attached.
    The feed is read first (until run time 3 s), then the two pages are loaded one after the
    other; then the observer leaves mid-run and the run ends at its duration. Chromium starts
    before the run, so its start-up stalls no loop; a 250 ms watchdog all the same: this
    2-core VM stalls both loops for 20 ms at times, which trips the default 20 ms one and
    drops the pendulum (the watchdog is the fault suite's to test)."""
    tmp = tmp_path_factory.mktemp("watched")
    out, endpoint = tmp / "run", free_endpoint()
    port, watch_port = free_port(), free_port()
    run_err = tmp / "run.stderr"
    run = watch = None
    with Chromium(tmp / "profile") as browser, run_err.open("w") as err:
        try:
            run = subprocess.Popen(
                [*HIL, "run", *NO_HTML, "--set", "plant.watchdog_timeout_ms=250", "--duration",
                 "10", "--watch", "--watch-port", str(port), "--endpoint", endpoint, "--out",
                 str(out), "--run-id", RUN_ID], stdout=subprocess.PIPE, stderr=err, text=True)
            watch = subprocess.Popen([*HIL, "watch", "--endpoint", endpoint, "--port",
                                      str(watch_port), "--timeout", "60"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            urls = (wait_line(run, "live view:", 60), wait_line(watch, "live view:", 90))
            hello, updates = read_feed(watch_port, 3.0, 90)
            pages = {}
            for name, at in (("run", port), ("endpoint", watch_port)):
                pages[name] = watch_page(browser.open(f"http://127.0.0.1:{at}/"), RUN_ID)
                (tmp / f"{name}.png").write_bytes(pages[name][1])  # for a person to look at
            watch.send_signal(signal.SIGINT)  # the observer leaves mid-run
            watch_code = watch.wait(30)
            run.wait(120)
        finally:
            for p in (watch, run):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
    return WatchedRun(out, run.returncode, run_err.read_text(), watch_code, urls, hello,
                      updates, pages, (port, watch_port))


@pytest.mark.slow
@pytest.mark.realtime
@pytest.mark.timeout(300)
def test_both_feeds_show_the_run_id_a_running_time_and_the_latest_state(
        watched_run: WatchedRun) -> None:
    """One real run, watched two ways in one browser: `hil run --watch` (the page fed from
    the run's recording) and `hil watch --endpoint` (fed from the plant's observations)."""
    port, watch_port = watched_run.ports
    assert watched_run.urls == (f"live view: http://127.0.0.1:{port}/",
                                f"live view: http://127.0.0.1:{watch_port}/")
    assert watched_run.watch_code == 0
    plant = json.loads((watched_run.out / "plant.json").read_text())
    assert plant["end_reason"] == "duration", plant["end_reason"]
    assert plant["observers"]["subscribed"] == 1 and plant["observers"]["dropped"] == 0
    rec = read_recording(watched_run.out / "plant.rec")
    for shown, png in watched_run.pages.values():
        check_page(shown, png, rec)


@pytest.mark.slow
@pytest.mark.realtime
@pytest.mark.timeout(300)
def test_hil_watch_endpoint_shows_the_running_plants_state(watched_run: WatchedRun) -> None:
    """`hil watch --endpoint`'s WebSocket feed, read as the page reads it, is the plant's own
    recording; the observer leaves mid-run and the run is undisturbed by it."""
    out, hello = watched_run.out, watched_run.hello
    assert watched_run.watch_code == 0
    assert watched_run.run_code in (0, 1), watched_run.run_stderr[-3000:]  # a verdict
    assert hello["type"] == "hello" and hello["run_id"] == RUN_ID
    assert hello["plant"]["state_names"] == NAMES
    assert [(u["name"], u["unit"]) for u in hello["inputs"]] == [("force", "N")]
    assert hello["rate_hz"] == 1000.0
    shown = [u for u in watched_run.updates if "t" in u]
    assert len(shown) >= 20, len(shown)
    # Every state the page was shown is the plant's own at that step (exact: the same floats).
    rec = read_recording(out / "plant.rec")
    row = {int(s): i for i, s in enumerate(rec["seq"])}
    for u in shown:
        i = row[u["seq"]]
        assert u["t"] == pytest.approx(rec["sim_time_s"][i], abs=1e-9)
        assert u["state"] == [float(rec[n][i]) for n in NAMES], u["seq"]
        assert u["input"] == [float(rec[c][i]) for c in rec.inputs]
        assert u["health"]["steps"] == u["seq"] + 1
        for t, state in zip(u["series"]["t"], u["series"]["state"], strict=True):
            j = int(np.argmin(np.abs(rec["sim_time_s"] - t)))
            assert state == [float(rec[n][j]) for n in NAMES]
    # About 40 copies a second: every 25th step at 1 kHz; none dropped from a reading page.
    # An update shows the newest copy and carries every copy read since the last one in its
    # series (on a loaded machine a poll may read two or three): together the series have
    # every copy, 25 states apart: 25 ms of simulated time, a little more where the plant
    # skipped a tick (it woke a whole period late), never the 50 ms of a lost copy.
    steps = np.diff([u["seq"] for u in shown])
    assert (steps % 25 == 0).all(), steps
    gaps = np.diff([t for u in shown for t in u["series"]["t"]])
    assert ((gaps > 0.025 - 1e-6) & (gaps < 0.045)).all(), gaps
    last = shown[-1]["health"]
    assert last["observer_dropped"] == 0 and last["round_trip_p99_us"] > 0
    assert not last["safe"] and not last["final"]
    # The run was undisturbed by its observer: every gate passed (the timing gates are the
    # machine's: consistent with their figures).
    report = json.loads((out / "report.json").read_text())
    assert report["plant_end_reason"] == "duration"
    assert_passed_but_timing(report)
    assert report["verdict"] == ("PASS" if watched_run.run_code == 0 else "FAIL")
    # The plant served one observer, then forgot it (gone, or its lease expired).
    observers = json.loads((out / "plant.json").read_text())["observers"]
    assert observers["subscribed"] == 1 and observers["refused"] == 0
    assert observers["gone"] + observers["expired"] == 1, observers
    assert observers["dropped"] == 0 and observers["sent"] >= len(shown)


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
