"""Property-based fuzzing of the operator commands' argument parsing (`hil estop|clear|gains|
watch`), in-process through `hil.cli.main`: whatever is typed, no traceback, never exit 0
(no plant listens), and a value outside its range always exits 2 with one line naming it.

Bounded: 200 examples a command. The only endpoint a command can reach is one where nothing
listens, and in-range timeouts are short, so an example that passes every check costs at most
50 ms (then exit 3, no answer). An e-stop whose only fault is --timeout or --reason is sent
and waited for 2 s: those examples are left to test_operator_edges.py.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
from conftest import free_endpoint
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hil.cli import main

NOBODY = free_endpoint()
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
BAD_ENDPOINTS = ("nonsense", "tcp://", "tcp://127.0.0.1", "tcp://127.0.0.1:0",
                 "tcp://127.0.0.1:65536", "tcp://127.0.0.1:5x", "tcp://:5", "udp://1.2.3.4:5",
                 "ipc://", "tcp://a b:5", "inproc://x", "")

# Each option as (argv words, whether the value is in range: True, False, or None when this
# test does not judge it: random text may be anything).
Option = tuple[list[str], bool | None]

# What argv can hold: any text, and the lone surrogates Python makes of bytes that are not
# UTF-8 (os.fsdecode's surrogateescape).
typed_char = st.one_of(st.characters(), st.characters(min_codepoint=0xDC80,
                                                      max_codepoint=0xDCFF))


def typed(max_size: int) -> st.SearchStrategy[str]:
    return st.text(typed_char, max_size=max_size)


def _timeout_ok(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return 0 < value <= 60


endpoints = st.one_of(
    st.just(([f"--endpoint={NOBODY}"], True)),
    st.sampled_from(BAD_ENDPOINTS).map(lambda e: ([f"--endpoint={e}"], False)),
    st.integers().map(lambda p: ([f"--endpoint=tcp://127.0.0.1:{p}"], False)).filter(
        lambda o: not 0 < int(o[0][0].rpartition(":")[2]) <= 65535),
    typed(40).map(lambda e: ([f"--endpoint={e}"], None)))
timeouts = st.one_of(
    st.floats(min_value=0.001, max_value=0.05).map(lambda t: ([f"--timeout={t!r}"], True)),
    st.floats().filter(lambda t: not 0 < t <= 60).map(lambda t: ([f"--timeout={t!r}"], False)),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "0", "-0", "-1", "60.0001", "", "abc",
                     "0x10", "1e-400"]).map(lambda t: ([f"--timeout={t}"], False)),
    typed(12).map(lambda t: ([f"--timeout={t}"], _timeout_ok(t) or None)))
keys = st.one_of(
    st.just(([], True)),
    st.sampled_from(["", " ", "/nonexistent/keys", "/etc/passwd"]).map(
        lambda k: ([f"--keys={k}"], False)),
    typed(20).map(lambda k: ([f"--keys={k}"], None)))
gain_words = st.lists(st.one_of(
    st.floats().map(repr), typed(10),
    st.tuples(typed(10), st.floats().map(repr)).map("=".join)), max_size=6)

# Words after the options; none starts with "-" (argparse would take "--k=x" for --keys).
junk = st.one_of(st.just([]), st.lists(typed(10).filter(lambda w: not w.startswith("-")),
                                       max_size=3))


def run_in_process(argv: list[str]) -> tuple[int, str]:
    """`hil ARGV` in this process: its exit status and stderr. Any exception fails the test
    (with the argv): a person would have seen a traceback."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # the CLI returns its status; it never exits inside
            raise AssertionError(f"hil {argv!r} raised SystemExit({exc.code})") from None
        except Exception as exc:
            raise AssertionError(f"hil {argv!r} raised {type(exc).__name__}: {exc}") from exc
    return code, err.getvalue()


def check(argv: list[str], options: list[Option]) -> None:
    code, err = run_in_process(argv)
    assert code != 0, (argv, err)  # nobody answers, whatever was typed
    assert code in (2, 3), (argv, code, err)
    assert "Traceback" not in err
    if any(ok is False for _, ok in options):
        assert code == 2, (argv, err)
        assert len(err.splitlines()) == 1, (argv, err)


@SETTINGS
@given(command=st.sampled_from(["clear", "watch"]), endpoint=endpoints, timeout=timeouts,
       keys_=keys, extra=junk)
def test_clear_and_watch_never_crash_nor_accept_a_value_out_of_range(
        command: str, endpoint: Option, timeout: Option, keys_: Option,
        extra: list[str]) -> None:
    options = [endpoint, timeout, keys_]
    check([command, *endpoint[0], *timeout[0], *keys_[0], *extra], options)


@SETTINGS
@given(endpoint=endpoints, timeout=timeouts, keys_=keys, values=gain_words)
def test_gains_never_crash_nor_send_a_value_out_of_range(
        endpoint: Option, timeout: Option, keys_: Option, values: list[str]) -> None:
    finite = all(_finite_number(word.rpartition("=")[2]) for word in values)
    options = [endpoint, timeout, keys_, ([], True if finite else None)]
    code, err = run_in_process(["gains", *endpoint[0], *timeout[0], *keys_[0], "--", *values])
    assert code in (2, 3) and "Traceback" not in err, (values, err)
    if not finite and endpoint[1] and timeout[1] and keys_[1]:
        assert code == 2 and "gain" in err, (values, err)  # never sent: named
    if any(ok is False for _, ok in options):
        assert code == 2 and len(err.splitlines()) == 1, err


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@SETTINGS
@given(endpoint=endpoints, timeout=timeouts, keys_=keys, reason=typed(30),
       extra=junk)
def test_estop_never_crashes_and_refuses_what_it_cannot_send_with(
        endpoint: Option, timeout: Option, keys_: Option, reason: str, extra: list[str]) -> None:
    # Sent anyway (a 2 s wait) when only --timeout is wrong: not here (see the module doc).
    assume(not (endpoint[1] is not False and keys_[1] is not False and timeout[1] is not True))
    check(["estop", *endpoint[0], *timeout[0], *keys_[0], f"--reason={reason}", *extra],
          [endpoint, keys_])


@pytest.mark.parametrize("port", [-1, 65536, 10**30])
def test_the_pages_port_is_range_checked_too(port: int, tmp_path: Path) -> None:
    code, err = run_in_process(["watch", "--run", str(tmp_path), f"--port={port}"])
    assert code == 2 and "--port" in err and len(err.splitlines()) == 1
