"""CURVE: only clients with authorized keys reach the plant; keys are made by hil keygen."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from hil.config import ConfigError, load_config
from hil.link import messages as msg
from hil.link import operator, security
from hil.link.transport import ControllerSocket, PlantSocket

BIN = Path(sys.executable).parent


def hil(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hil"), *args], capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `hil keygen` for the module: no test changes the keys it made."""
    d = tmp_path_factory.mktemp("curve") / "keys"
    done = hil("keygen", str(d))
    assert done.returncode == 0, done.stderr
    return d


def test_keygen_writes_both_pairs_secret_files_private_and_never_overwrites(keys: Path) -> None:
    for name in ("plant.key", "plant.key_secret", "controller.key", "controller.key_secret",
                 "authorized/controller.key"):
        assert (keys / name).is_file(), name
    assert stat.S_IMODE((keys / "plant.key_secret").stat().st_mode) == 0o600
    again = hil("keygen", str(keys))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_keygen_creates_secret_keys_0600_never_chmod_after_whatever_the_umask(
        tmp_path: Path) -> None:
    # strace records each file's creation mode: a secret key written with the default mode
    # and narrowed afterwards is readable by anyone in between (umask 0 makes it 0666).
    strace = shutil.which("strace")
    assert strace, "this test needs strace (apt-get install strace)"
    d, trace = tmp_path / "keys", tmp_path / "trace.txt"
    done = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=openat,open,creat,chmod,fchmod,fchmodat,mkdir",
         "-o", str(trace), sys.executable, "-c",
         f"import os; os.umask(0); from hil.link import security; security.generate({str(d)!r})"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = [line for line in trace.read_text().splitlines() if str(d) in line]
    for name in ("plant.key_secret", "controller.key_secret"):
        (created,) = [c for c in calls if f'"{d / name}"' in c and "O_CREAT" in c]
        assert "O_EXCL" in created and created.rstrip().split(", ")[-1].startswith("0600)"), created
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    assert not [c for c in calls if "chmod" in c], calls
    for folder in (d, d / "authorized"):  # nobody else may add a trusted key
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "authorized" / "controller.key").stat().st_mode) == 0o644
    assert (d / "authorized" / "controller.key").read_text() == (d / "controller.key").read_text()


def _exchange(plant: PlantSocket, client: ControllerSocket, wait_s: float = 1.5) -> bool:
    client.send(msg.encode("hello", 1, "t"))
    give_up = time.monotonic() + wait_s
    while time.monotonic() < give_up:
        if plant.recv_nowait() is not None:
            return True
        time.sleep(0.005)
    return False


def test_authorized_client_gets_through(keys: Path, endpoint: str) -> None:
    plant = PlantSocket(endpoint, curve_keys_dir=keys)
    client = ControllerSocket(endpoint, curve_keys_dir=keys)
    try:
        assert _exchange(plant, client)
    finally:
        client.close()
        plant.close()


def test_clients_without_or_with_unknown_keys_never_reach_the_plant(keys: Path, tmp_path: Path,
                                                                    endpoint: str) -> None:
    other = tmp_path / "other"
    security.generate(other)
    (other / "plant.key").write_bytes((keys / "plant.key").read_bytes())  # knows the plant
    plant = PlantSocket(endpoint, curve_keys_dir=keys)
    plain = ControllerSocket(endpoint)
    stranger = ControllerSocket(endpoint, curve_keys_dir=other)
    try:
        # Both try at once, so one wait covers both: nothing from either reaches the plant.
        plain.send(msg.encode("hello", 1, "plain"))
        assert not _exchange(plant, stranger)
    finally:
        plain.close()
        stranger.close()
        plant.close()


def _breaks_off_every_handshake() -> str:
    """A TCP peer that resets each connection after the first bytes of the ZMTP greeting: what a
    CURVE plant looks like to a plain client when its reset overtakes its greeting."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(10)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: a reset, not an orderly close

    threading.Thread(target=serve, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}"


def test_a_peer_that_breaks_off_every_handshake_is_a_refusal_not_a_timeout() -> None:
    endpoint = _breaks_off_every_handshake()
    with pytest.raises(operator.Refused, match=r"requires CURVE.*pass --keys DIR"):
        operator.clear(endpoint, timeout_s=60)  # before: NoAnswer after the whole minute


def test_a_curve_plant_refuses_every_plain_request(keys: Path, endpoint: str) -> None:
    """The plant's own context, as in its own process: libzmq reports its refusal as a
    protocol failure or as a reset handshake, in any order, and both end in Refused."""
    plant = PlantSocket(endpoint, ctx=zmq.Context(), curve_keys_dir=keys)
    try:
        for _ in range(20):
            with pytest.raises(operator.Refused, match="requires CURVE"):
                operator.clear(endpoint, timeout_s=60)
    finally:
        plant.close()


def test_missing_keys_name_the_file_and_the_fix(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(security.CurveKeyError, match=r"plant\.key_secret not found.*hil keygen"):
        PlantSocket(endpoint, curve_keys_dir=tmp_path)
    with pytest.raises(security.CurveKeyError, match=r"controller\.key_secret not found"):
        ControllerSocket(endpoint, curve_keys_dir=tmp_path)
    with pytest.raises(security.CurveKeyError, match=r"folder .*none does not exist.*hil keygen"):
        ControllerSocket(endpoint, curve_keys_dir=tmp_path / "none")


def test_network_endpoint_is_allowed_once_curve_is_on() -> None:
    with pytest.raises(ConfigError, match="without authentication"):
        load_config(None, {"plant.endpoint": "tcp://0.0.0.0:5600"})
    c = load_config(None, {"plant.endpoint": "tcp://0.0.0.0:5600", "security.curve": True})
    assert c.security.curve


def test_a_closed_loop_runs_over_curve(keys: Path, tmp_path: Path, endpoint: str) -> None:
    cfg = tmp_path / "curve.yaml"
    cfg.write_text(f"security:\n  curve: true\n  keys_dir: {keys}\n"
                   "record:\n  enabled: false\n")
    out = tmp_path / "run"
    done = hil("run", "--config", str(cfg), "--mode", "lockstep", "--duration", "1",
               "--endpoint", endpoint, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["plant_end_reason"] == "duration", done.stdout + done.stderr
    assert report["counters"]["controls_applied"] == 1000


def test_hil_run_with_curve_but_no_keys_exits_2_naming_the_key(tmp_path: Path,
                                                               endpoint: str) -> None:
    cfg = tmp_path / "curve.yaml"
    cfg.write_text(f"security:\n  curve: true\n  keys_dir: {tmp_path / 'nokeys'}\n")
    done = hil("run", "--config", str(cfg), "--endpoint", endpoint, "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "security.keys_dir" in done.stderr and "hil keygen" in done.stderr
