"""`hil watch --endpoint`: observing a plant that is already running, read-only.

Real processes on loopback: a CURVE plant that refuses an observer without keys, or with a
key it does not trust, and serves one with them; the bound on observers; and an observer that
stops reading, whose copies the plant drops and counts without ever waiting for it. A real
`hil run` with `hil watch --endpoint` attached, its feed checked against the plant's own
recording, shares its run with the browser test: test_live_view_browser.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import structlog
import zmq
from conftest import free_endpoint
from test_live_view_browser import free_port

from hil.dynamics import create_model
from hil.link import messages as msg
from hil.link import security
from hil.link.observer import Observer, ObserveRefused, Refused
from hil.link.transport import PlantSocket
from plant_server.backends import SimBackend
from plant_server.server import PlantServer, PlantSettings

HIL = [sys.executable, "-m", "hil.cli"]
MS = 1_000_000
NAMES = ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"]


def curve_plant(tmp_path: Path, endpoint: str) -> tuple[subprocess.Popen[str], Path, Path]:
    keys, stranger = tmp_path / "keys", tmp_path / "stranger"
    for folder in (keys, stranger):  # what `hil keygen` does (tested in test_security.py)
        security.generate(folder)
    (stranger / "plant.key").write_bytes((keys / "plant.key").read_bytes())
    cfg = tmp_path / "plant.yaml"
    cfg.write_text(f"security: {{curve: true, keys_dir: {keys}}}\n"
                   "plant: {attach_timeout_s: 120}\nrecord: {enabled: false}\n")
    plant = subprocess.Popen([sys.executable, "-m", "plant_server.main", "--config", str(cfg),
                              "--endpoint", endpoint, "--out", str(tmp_path / "plant")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return plant, keys, stranger


@pytest.mark.timeout(240)
def test_a_curve_plant_refuses_an_observer_without_authorized_keys(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    plant, keys, stranger = curve_plant(tmp_path, endpoint)
    observers: list[Observer] = []
    try:
        # With the keys: subscribed (waits for the plant to be up), told what it observes.
        first = Observer(endpoint, str(keys))
        observers.append(first)
        answer = first.subscribe(90)
        assert answer.kind == "observing" and answer["lease_ms"] == msg.OBSERVE_LEASE_MS
        assert answer["description"]["state_names"] == NAMES
        # No keys: refused in the handshake, at once, saying that --keys is needed; exit 4.
        started = time.monotonic()
        bare = subprocess.run([*HIL, "watch", "--endpoint", endpoint, "--port",
                               str(free_port()), "--timeout", "30"],
                              capture_output=True, text=True, timeout=90)
        assert bare.returncode == 4, bare.stderr
        assert time.monotonic() - started < 25
        assert (f"hil watch: the plant at {endpoint} refused the connection: it requires CURVE "
                "(security.curve on); pass --keys DIR") in bare.stderr
        # A key the plant does not trust: refused, naming the key.
        with pytest.raises(Refused, match=r"refused this client's CURVE key \(.*stranger"):
            stray = Observer(endpoint, str(stranger))
            observers.append(stray)
            stray.subscribe(30)
        # Observers are bounded: the plant serves four, refuses the fifth and says why.
        for _ in range(msg.MAX_OBSERVERS - 1):
            observers.append(Observer(endpoint, str(keys)))
            observers[-1].subscribe(30)
        fifth = Observer(endpoint, str(keys))
        observers.append(fifth)
        with pytest.raises(ObserveRefused, match="already has 4 observers"):
            fifth.subscribe(30)
    finally:
        for o in observers:
            o.close()
        plant.send_signal(signal.SIGTERM)
        plant.communicate(timeout=60)


def test_an_observer_that_stops_reading_is_dropped_and_counted_never_waited_for(
        endpoint: str) -> None:
    """The plant's own send path on real sockets: an observer that subscribes and never reads
    fills its queue; every further copy is dropped at once and counted (in the plant's figures
    and in the next copy that gets through), never waited for (a blocking send would hang this
    test); a lease not renewed expires, and a closed observer is forgotten."""
    model = create_model("dip", {}, substeps=4)
    backend = SimBackend(model, np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0]), MS)
    settings = PlantSettings(mode="realtime", period_ns=MS, duration_s=1.0, start_delay_ns=0,
                             watchdog_timeout_ns=20 * MS, attach_timeout_ns=1000 * MS)
    now = [10**12]
    sock = PlantSocket(endpoint, ctx=zmq.Context())
    sock.sock.setsockopt(zmq.SNDBUF, 4096)  # small kernel buffers: the bound is reached soon
    server = PlantServer(backend, sock, settings, structlog.get_logger(), clock=lambda: now[0],
                         run_id="in-process")
    observer = Observer(endpoint)
    observer._sock.sock.setsockopt(zmq.RCVBUF, 4096)  # applies at subscribe's reconnect
    try:
        observer._sock.sock.disconnect(endpoint)
        observer._sock.sock.connect(endpoint)
        observer._observe()
        give_up = time.monotonic() + 10
        while not server.observers:
            assert time.monotonic() < give_up, "the subscription never arrived"
            sock.sock.poll(10)
            server.drain()
        assert server.observers.every == 1e9 / MS / msg.OBSERVE_HZ == 25
        # The observer reads nothing: the plant's sends fill its queue, then drop.
        counts, sends = server.observers.counts, 0
        while counts["dropped"] < 1000:
            server.observe(now[0], 0)
            sends += 1
            assert sends < 200_000, counts
        assert counts["sent"] + counts["dropped"] == sends
        assert counts["sent"] >= 100  # the high-water mark's worth, at least, got through
        assert server.observers  # still subscribed: a full queue is not a vanished observer
        # Reading again: the copies queued, each saying how many were dropped before it was
        # sent, until the newest says all of them (no more drop: this reader keeps up).
        dropped_seen: list[int] = []
        give_up = time.monotonic() + 10
        while not dropped_seen or dropped_seen[-1] != counts["dropped"]:
            assert time.monotonic() < give_up, (dropped_seen[-5:], counts)
            server.observe(now[0], 0)
            observer._sock.sock.poll(10)
            dropped_seen += [o["dropped"] for o in observer._read(100_000)
                             if o.kind == "observation"]
        assert dropped_seen == sorted(dropped_seen) and dropped_seen[0] == 0
        assert counts["dropped"] >= 1000 and counts["sent"] >= len(dropped_seen)
        # A lease that was not renewed expires: the next publish forgets the observer.
        now[0] += msg.OBSERVE_LEASE_MS * MS
        server.observe(now[0], 0)
        assert not server.observers and counts["expired"] == 1
        # Renewed (a new subscription), then the observer closes: forgotten as gone.
        observer._observe()
        give_up = time.monotonic() + 10
        while not server.observers:
            assert time.monotonic() < give_up
            sock.sock.poll(10)
            server.drain()
        observer.close()
        give_up = time.monotonic() + 10
        while server.observers:
            assert time.monotonic() < give_up, counts
            server.observe(now[0], 0)
            time.sleep(0.01)
        assert counts["gone"] == 1 and counts["subscribed"] == 2
        assert server.report()["observers"] == counts
    finally:
        observer.close()
        sock.close()
