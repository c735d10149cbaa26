"""Transport on real ZeroMQ sockets over loopback: routing, waits, caps."""

from __future__ import annotations

import time

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from hil.link import messages as msg
from hil.link.transport import (
    MAX_MSG_BYTES,
    ControllerSocket,
    PlantSocket,
    wait_for_message,
    wait_until,
)


@pytest.fixture
def pair(endpoint: str):
    plant = PlantSocket(endpoint)
    ctrl = ControllerSocket(endpoint)
    yield plant, ctrl
    ctrl.close()
    plant.close()


def recv_within(sock_recv, timeout_s: float = 2.0):
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        got = sock_recv()
        if got is not None:
            return got
        time.sleep(0.001)
    raise AssertionError("nothing received")


def test_plant_sees_who_sent_and_answers_that_peer(pair) -> None:
    plant, ctrl = pair
    ctrl.send(msg.encode("hello", 1, "c"))
    peer, data = recv_within(plant.recv_nowait)
    assert msg.decode(data).kind == "hello"
    plant.send(peer, msg.encode("bye", "done"))
    assert msg.decode(recv_within(ctrl.recv_nowait))["reason"] == "done"


def test_plant_binding_a_busy_endpoint_names_it(pair, endpoint: str) -> None:
    with pytest.raises(OSError, match=f"cannot bind plant endpoint {endpoint}"):
        PlantSocket(endpoint)


def test_sending_to_a_departed_peer_is_silently_dropped(pair) -> None:
    plant, ctrl = pair
    ctrl.send(msg.encode("hello", 1, "c"))
    peer, _ = recv_within(plant.recv_nowait)
    plant.send(b"\x00nobody", msg.encode("bye", "lost"))  # must neither raise nor block
    plant.send(peer, msg.encode("bye", "first"))
    plant.send(peer, msg.encode("bye", "second"))
    # The real peer gets exactly its own two, in order: nothing of the lost one, and the
    # socket still routes after it.
    assert msg.decode(recv_within(ctrl.recv_nowait))["reason"] == "first"
    assert msg.decode(recv_within(ctrl.recv_nowait))["reason"] == "second"


def test_oversized_messages_never_reach_the_plant(pair) -> None:
    plant, ctrl = pair
    monitor = plant.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        ctrl.send(b"\x00" * (MAX_MSG_BYTES + 1))
        # ZeroMQ drops the connection on reading the oversized frame: wait for that.
        assert monitor.poll(10_000), "the oversized message did not end the connection"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        assert plant.recv_nowait() is None  # dropped with it, never delivered
    finally:
        plant.sock.disable_monitor()
        monitor.close(linger=0)
    # The controller reconnects; the next message is the first the plant sees.
    ctrl.send(msg.encode("hello", 1, "c"))
    _, data = recv_within(plant.recv_nowait, timeout_s=10.0)
    assert msg.decode(data).kind == "hello"


def test_wait_until_wakes_on_arrival_long_before_the_deadline(pair) -> None:
    plant, ctrl = pair
    got = []

    def drain() -> bool:
        while (m := plant.recv_nowait()) is not None:
            got.append(time.monotonic_ns())
            del m
        return bool(got)

    t0 = time.monotonic_ns()
    ctrl.send(b"ping")
    wait_until(plant.sock, t0 + 2_000_000_000, drain, spin_ns=0)
    assert got and got[0] - t0 < 1_000_000_000  # woke on arrival, not at the 2 s deadline


def test_wait_until_returns_at_its_deadline_without_input(pair) -> None:
    plant, _ = pair
    deadline = time.monotonic_ns() + 30_000_000
    wait_until(plant.sock, deadline, lambda: False, spin_ns=200_000)
    late = time.monotonic_ns() - deadline
    assert 0 <= late < 20_000_000  # never early; bounded lateness on a loaded machine


def test_wait_for_message_times_out_false_and_returns_true_on_input(pair) -> None:
    plant, ctrl = pair
    t0 = time.monotonic()
    assert wait_for_message(plant.sock, 20_000_000, lambda: True) is False
    assert time.monotonic() - t0 >= 0.019
    ctrl.send(b"x")
    assert wait_for_message(plant.sock, 2_000_000_000, lambda: plant.recv_nowait() is not None)


def test_controller_socket_reports_multipart_as_empty(pair) -> None:
    plant, ctrl = pair
    ctrl.send(b"hi")
    peer, _ = recv_within(plant.recv_nowait)
    plant.sock.send_multipart([peer, b"a", b"b"], zmq.NOBLOCK)
    assert recv_within(ctrl.recv_nowait) == b""


def test_wait_for_message_spinning_takes_an_early_answer_and_still_times_out(pair) -> None:
    plant, ctrl = pair
    ctrl.send(b"x")
    time.sleep(0.05)  # already queued: taken inside the spin window
    assert wait_for_message(plant.sock, 1_000_000_000, lambda: plant.recv_nowait() is not None,
                            spin_ns=50_000_000)
    t0 = time.monotonic()
    assert not wait_for_message(plant.sock, 30_000_000, lambda: False, spin_ns=10_000_000)
    assert time.monotonic() - t0 >= 0.029  # the spin never cuts the timeout short


def test_the_monotonic_clock_is_named_by_the_kernels_boot_id_and_no_other_clock_is() -> None:
    from pathlib import Path

    from hil.link.transport import monotonic_clock_id

    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert len(boot_id) == 36 and monotonic_clock_id(time.monotonic_ns) == boot_id
    assert monotonic_clock_id(lambda: time.monotonic_ns()) == ""  # a clock of its own
    assert monotonic_clock_id(time.perf_counter_ns) == ""
