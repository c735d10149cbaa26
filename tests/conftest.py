"""Fixtures shared by the whole suite."""

from __future__ import annotations

import socket

import pytest


def free_endpoint() -> str:
    """A loopback TCP endpoint on a port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def endpoint() -> str:
    return free_endpoint()


# For `hil run` end-to-end tests that look at neither the HTML report nor the run history:
# no plots (about 2 s a run under coverage) and no rows in the checkout's runs/history.db.
NO_HTML = ("--set", "record.html=false", "--set", "record.history_db=null")
