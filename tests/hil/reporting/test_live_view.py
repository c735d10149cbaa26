"""The live view's feed (from a real recording being written) and server (real sockets)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import numpy as np
import pytest
from synthetic_run import STATE_NAMES, STATE_UNITS
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from hil.dynamics.inputs import Inputs
from hil.recording.recorder import Recorder, plant_columns
from hil.reporting.liveview.feed import RecordingFeed
from hil.reporting.liveview.server import AddressRefused, LiveViewServer

T0_NS = 10**12
FORCE = Inputs.single("force", "N", 150.0)


def plant_row(seq: int, flags: int = 0) -> tuple:
    t = seq * 1e-3
    state = [0.01 * t, 0.1 * np.cos(t), -0.05, 0.0, 0.0, 0.0]
    missed = seq % 100 == 50
    return (seq, T0_NS + seq * 1_000_000, t, *state, 2.0 * seq, flags, 0, seq - 1,
            seq - 2 if missed else seq - 1, 300_000 + 1000 * (seq % 100))


def write(path: Path, rows: range, flags: int = 0) -> None:
    rec = Recorder(path, plant_columns(STATE_NAMES, STATE_UNITS, FORCE),
                   {"run_id": "r-1", "plant": {"name": "dip", "state_names": STATE_NAMES,
                                               "state_units": STATE_UNITS},
                    "mode": "realtime", "period_ns": 1_000_000},
                   flush_interval_s=60.0, fsync_interval_s=0.0)
    for seq in rows:
        rec.record(plant_row(seq, flags if seq == rows[-1] else 0))
    rec.close()


def test_the_feed_says_hello_then_plays_rows_out_on_the_plant_clock(tmp_path: Path) -> None:
    now = [T0_NS]
    feed = RecordingFeed(tmp_path, max_points=10, delay_ns=100_000_000, clock=lambda: now[0])
    assert feed.poll() == []  # no recording yet
    write(tmp_path / "plant.rec", range(1000), flags=1 | 4)
    now[0] = T0_NS + 600_000_000  # rows published up to 500 ms ago are due
    hello, update = feed.poll()
    assert hello["run_id"] == "r-1" and hello["rate_hz"] == 1000.0
    assert hello["plant"]["state_names"] == STATE_NAMES
    assert hello["inputs"] == [{"name": "force", "unit": "N", "low": None, "high": None}]
    assert update["seq"] == 500 and update["t"] == pytest.approx(0.5)
    assert update["state"] == pytest.approx(list(plant_row(500)[3:9]))
    assert update["input"] == [plant_row(500)[9]]
    assert len(update["series"]["t"]) == 10 and update["series"]["t"][-1] == update["t"]
    assert update["health"]["steps"] == 1000 and update["health"]["misses"] == 10
    assert 300 <= update["health"]["round_trip_p50_us"] < update["health"]["round_trip_p99_us"]
    assert not update["health"]["safe"]
    assert feed.poll() == []  # nothing more is due at the same time
    last = feed.poll(final=True)[0]
    assert last["seq"] == 999 and last["health"]["safe"] and last["health"]["safety"]
    json.dumps(last, allow_nan=False)


def test_the_feed_reports_warnings_from_the_logs(tmp_path: Path) -> None:
    feed = RecordingFeed(tmp_path)
    with (tmp_path / "plant.log.jsonl").open("w") as log:
        log.write(json.dumps({"process": "plant", "event": "plant serving", "level": "info"}))
        log.write("\n" + json.dumps({"process": "plant", "gate": "angle", "level": "warning",
                                     "event": "safety gate tripped"}) + "\n{\"torn")
    (update,) = feed.poll()
    assert [e["event"] for e in update["events"]] == ["safety gate tripped"]
    assert '"gate": "angle"' in update["events"][0]["detail"]


@pytest.fixture
def server():
    hello = {"type": "hello", "run_id": "r-1"}
    sent = threading.Event()

    def poll(final: bool) -> list[dict]:
        if sent.is_set():
            return [{"type": "update", "t": 1.0}]
        sent.set()
        return [hello]

    srv = LiveViewServer(poll, port=0, max_clients=16, max_messages_per_client=5).start()
    yield srv
    srv.stop()


def test_the_server_serves_the_page_and_counts_what_it_does_not_have(server) -> None:
    page = urlopen(server.url, timeout=10).read().decode()
    assert '<canvas id="plant"' in page and "live.js" in page
    assert "HilPlant" in urlopen(server.url + "plant.js", timeout=10).read().decode()
    with pytest.raises(HTTPError) as missing:
        urlopen(server.url + "secrets.txt", timeout=10)
    assert missing.value.code == 404
    assert server.statistics().http_not_found == 1


def test_a_hundred_pages_at_once_are_bounded_and_counted(server) -> None:
    ws_url = f"ws://127.0.0.1:{server.port}/ws"
    accepted, refused = [], 0
    for _ in range(100):
        try:
            accepted.append(connect(ws_url, open_timeout=10).__enter__())
        except InvalidStatus as exc:
            assert exc.response.status_code == 503
            refused += 1
    try:
        assert len(accepted) == 16 and refused == 84
        assert json.loads(accepted[0].recv(timeout=10))["type"] == "hello"
        assert json.loads(accepted[0].recv(timeout=10))["type"] == "update"
        stats = server.statistics()
        assert stats.clients_now == 16 and stats.clients_refused == 84
    finally:
        for ws in accepted:
            ws.close()


def test_junk_from_a_page_is_ignored_counted_and_ends_its_connection(server) -> None:
    ws_url = f"ws://127.0.0.1:{server.port}/ws"
    with connect(ws_url) as ws:
        for i in range(5):
            ws.send(f"junk {i}")
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
    assert ws.close_code == 1008
    with connect(ws_url) as ws, pytest.raises(ConnectionClosed):
        ws.send(b"\x00" * 10_000)  # over max_message_bytes
        while True:
            ws.recv(timeout=10)
    assert ws.close_code == 1009
    # The server counts a connection it closed after the close went out: wait for it
    # (bounded), as the page's side of the close can be seen first on a loaded machine.
    give_up = time.monotonic() + 10
    while server.statistics().clients_closed_for_junk < 2 and time.monotonic() < give_up:
        time.sleep(0.01)
    stats = server.statistics()
    assert stats.client_messages_ignored >= 5 and stats.clients_closed_for_junk == 2


def test_a_port_in_use_is_an_error_naming_it_and_the_port_as_what_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(AddressRefused, match=f"127.0.0.1:{port}: Address already in use"
                           ) as refused:
            LiveViewServer(lambda final: [], port=port).start()
    assert refused.value.part == "port"


@pytest.mark.parametrize("host", ["nonsense.invalid", "999.1.1.1", "192.0.2.1"])
def test_a_host_that_is_not_this_machine_is_an_error_naming_the_host_to_change(
        host: str) -> None:
    # 192.0.2.1: TEST-NET-1, a well-formed address that no interface here has.
    with pytest.raises(AddressRefused, match=f"cannot serve the live view on {host}:0") as refused:
        LiveViewServer(lambda final: [], host=host, port=0).start()
    assert refused.value.part == "host"
