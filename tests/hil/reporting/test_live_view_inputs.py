"""The live view with several inputs: both feeds say each input's name, unit and limits in
their hello and carry the inputs as a list, one value per input, in every update.

The run-folder feed reads a real two-input recording as the recorder writes it; the endpoint
feed reads a real `Observer` subscribed over ZeroMQ to a plant socket that this test drives
with the plant's own encoder (`messages.pack_observation`), a list `u` per observation."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import zmq
from headless_chromium import Chromium
from synthetic_run import STATE_NAMES, STATE_UNITS
from two_input_run import DESCRIPTION, INPUTS, NAMES, UNITS, make_two_input_run, thrusts

from hil.link import messages as msg
from hil.link.observer import Observer
from hil.link.transport import PlantSocket
from hil.recording.recorder import Recorder, plant_columns
from hil.reporting.liveview.endpoint import EndpointFeed
from hil.reporting.liveview.feed import RecordingFeed
from hil.reporting.liveview.server import LiveViewServer

T0_NS = 10**12
HELLO_INPUTS = [{"name": "thrust_left", "unit": "N", "low": 0.0, "high": 40.0},
                {"name": "thrust_right", "unit": "N", "low": 0.0, "high": 40.0}]


def u_at(seq: int) -> list[float]:
    return [10.0 + 0.01 * seq, 30.0 - 0.02 * seq]


def test_the_recording_feed_names_each_input_and_plays_them_as_lists(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "plant.rec", plant_columns(NAMES, UNITS, INPUTS),
                   {"run_id": "two", "plant": DESCRIPTION, "mode": "realtime",
                    "period_ns": 1_000_000}, flush_interval_s=60.0, fsync_interval_s=0.0)
    for seq in range(400):
        rec.record((seq, T0_NS + seq * 1_000_000, seq * 1e-3, *[0.001 * seq] * 6, *u_at(seq),
                    0, 0, seq - 1, seq - 1, 200_000))
    rec.close()
    feed = RecordingFeed(tmp_path, max_points=5, delay_ns=0, clock=lambda: T0_NS + 10**9)
    hello, update = feed.poll()
    assert hello["inputs"] == HELLO_INPUTS
    assert hello["plant"]["state_names"] == list(NAMES)
    assert update["seq"] == 399 and update["input"] == u_at(399)
    assert len(update["series"]["input"]) == len(update["series"]["t"]) == 5
    assert update["series"]["input"][-1] == u_at(399)
    assert update["state"] == pytest.approx([0.399] * 6)


def test_an_old_force_n_recording_feeds_one_named_input(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "plant.rec", plant_columns(STATE_NAMES, STATE_UNITS),
                   {"run_id": "old", "plant": {"name": "dip", "state_names": STATE_NAMES,
                                               "state_units": STATE_UNITS,
                                               "max_force_n": 150.0}},
                   flush_interval_s=60.0, fsync_interval_s=0.0)
    rec.record((0, T0_NS, 0.0, *[0.0] * 6, 2.5, 0, 0, -1, -1, -1))
    rec.close()
    hello, update = RecordingFeed(tmp_path, delay_ns=0, clock=lambda: T0_NS).poll()
    assert hello["inputs"] == [{"name": "force", "unit": "N", "low": -150.0, "high": 150.0}]
    assert update["input"] == [2.5] and update["series"]["input"] == [[2.5]]


def _play_plant(sock: PlantSocket, subscribed: threading.Event, done: threading.Event,
                errors: list[BaseException]) -> None:
    """Answer the first `observe` as a plant does, then send 30 observations of two inputs."""
    try:
        give_up = time.monotonic() + 10
        while (frames := sock.recv_nowait()) is None:
            assert time.monotonic() < give_up, "no observe arrived"
            time.sleep(0.001)
        peer = frames[0]
        assert msg.decode(frames[-1]).kind == "observe"
        sock.send(peer, msg.encode("observing", 1000, "observed-two", {
            **DESCRIPTION, "mode": "realtime", "rate_hz": 1000.0}))
        assert subscribed.wait(10)
        for seq in range(30):
            sock.send(peer, msg.pack_observation(seq, T0_NS + seq * 25_000_000, seq * 0.025,
                                                 [0.0] * 6, u_at(seq), 0, seq + 1, 0,
                                                 150_000, "", 0))
    except BaseException as exc:  # reported by the test's thread
        errors.append(exc)
    finally:
        done.set()


def test_the_endpoint_feed_names_each_input_and_reads_a_list_u(endpoint: str) -> None:
    ctx = zmq.Context()
    sock = PlantSocket(endpoint, ctx=ctx)
    subscribed, done, errors = threading.Event(), threading.Event(), []
    plant = threading.Thread(target=_play_plant, args=(sock, subscribed, done, errors))
    plant.start()
    observer = Observer(endpoint)
    try:
        feed = EndpointFeed(observer, observer.subscribe(timeout_s=10), max_points=4)
        subscribed.set()
        assert done.wait(10) and not errors, errors
        updates: list[dict] = []
        give_up = time.monotonic() + 10
        while not updates or updates[-1]["seq"] < 29:
            assert time.monotonic() < give_up, updates[-1:]
            updates += [s for s in feed.poll() if s["type"] == "update" and "seq" in s]
            time.sleep(0.005)
    finally:
        subscribed.set()
        plant.join()
        observer.close()
        sock.close()
        ctx.term()
    assert feed.hello is not None and feed.hello["inputs"] == HELLO_INPUTS
    assert updates[-1]["input"] == u_at(29)
    for update in updates:
        assert update["input"] == u_at(update["seq"])
        assert all(len(row) == 2 for row in update["series"]["input"])


RED, GREY = "[201,42,42]", "[134,142,150]"  # an input's trace, its limits (plant.js)
TABLE_JS = ("JSON.stringify([...document.querySelectorAll('#state tr')].map(r => "
            "[...r.cells].map(c => c.textContent)))")


def _pixels(canvas: str, rgb: str) -> str:
    return (f"(() => {{ const c = document.getElementById('{canvas}');"
            " if (!c) return 0;"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 0; i < d.length; i += 4)"
            f" if (JSON.stringify([d[i], d[i+1], d[i+2]]) === '{rgb}') n++; return n; }})()")


def test_the_page_shows_each_input_by_name_with_its_plot_and_limits(tmp_path: Path) -> None:
    run = make_two_input_run(tmp_path / "run", steps=600)
    now = [0]  # nothing is due until the page is there
    server = LiveViewServer(RecordingFeed(run, clock=lambda: now[0]).poll, "127.0.0.1",
                            0).start()
    try:
        with Chromium(tmp_path / "profile") as browser:
            page = browser.open(server.url)
            page.wait_for("document.getElementById('run-id').textContent === 'two-inputs'", 30)
            now[0] = 2**62  # every row is due: one update with the last of them
            page.wait_for("document.getElementById('run-time').textContent === '0.599 s'", 30)
            table = json.loads(page.evaluate(TABLE_JS))
            drawn = {k: (page.evaluate(_pixels(f"plot-input-{k}", RED)),
                         page.evaluate(_pixels(f"plot-input-{k}", GREY))) for k in (0, 1)}
    finally:
        server.stop()
    assert [row[0] for row in table] == [*NAMES, "thrust_left", "thrust_right"]
    held = thrusts(600)[598]  # the plant shows the control it holds: the previous step's
    assert [row[2] for row in table[6:]] == ["N", "N"]
    assert [float(row[1]) for row in table[6:]] == pytest.approx(held.tolist(), abs=6e-4)
    for k, (red, grey) in drawn.items():
        assert red > 50, f"input {k}: no trace drawn"
        assert grey > 200, f"input {k}: no limits drawn"
