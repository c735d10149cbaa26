"""`hil ARGS` run by the CLI's own main() in the test process: what the `hil` program runs,
against the same real processes and sockets, without an interpreter's start-up per command."""

from __future__ import annotations

import subprocess

import pytest

from hil.cli import main as hil_main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`hil ARGS` in this process, as a CompletedProcess with its exit status and output."""
    capsys.readouterr()
    code = hil_main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["hil", *args], code, out, err)
