"""Bad input to the operator commands (`hil estop|clear|gains|watch`): one line naming the
option, the value and what is accepted, exit 2, never a traceback; `hil estop` sends its
e-stop before it complains about a bad --timeout."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NO_HTML, free_endpoint

from hil.cli import checks, main

BIN = Path(sys.executable).parent
# Nothing listens there: a command that got past its checks would wait and exit 3.
NOBODY = free_endpoint()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_usage(code: int, err: str, *named: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in named:
        assert text in err, (text, err)


COMMANDS = (["estop"], ["clear"], ["gains"], ["gains", "k=1"], ["watch"])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("endpoint", [
    "nonsense", "tcp://", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0",
    "tcp://127.0.0.1:5x", "tcp://127.0.0.1:*", "tcp://a b:5", "tcp://\u00e9:5", "udp://1.2.3.4:5",
    "ipc://", "ipc://" + "a" * 200, "tcp://127.0.0.1:" + "9" * 5000, ""])
def test_an_endpoint_zeromq_cannot_use_is_named_with_the_accepted_forms(
        command: list[str], endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([*command, "--endpoint", endpoint], capsys)
    assert_one_line_usage(code, err, "--endpoint", "tcp://HOST:PORT", "ipc://PATH")
    assert out == ""


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["estop"]], ids=" ".join)
@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "1e308", "0", "-1", "60.001", "abc",
                                     ""])
def test_a_timeout_out_of_range_is_refused_before_anything_is_sent(
        command: list[str], timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code, out, err = run_main([*command, "--endpoint", NOBODY, f"--timeout={timeout}"], capsys)
    assert_one_line_usage(code, err, "--timeout", repr(timeout), "0 < t <= 60")
    assert out == "" and time.monotonic() - started < 1.0  # nobody was waited for


@pytest.mark.parametrize("timeout", ["0.05", "1e-1"])
def test_a_timeout_in_range_is_taken(timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["clear", "--endpoint", NOBODY, "--timeout", timeout], capsys)
    assert code == 3 and "no answer" in err, err


def test_the_timeout_range_includes_its_upper_bound() -> None:
    assert checks.timeout_s("60") == 60.0


def test_estop_with_a_bad_timeout_still_sends_then_exits_2_naming_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    # No plant: the e-stop went out and waited the default 2 s, then the complaint.
    started = time.monotonic()
    code, _, err = run_main(["estop", "--endpoint", NOBODY, "--timeout", "nan"], capsys)
    assert code == 2
    assert time.monotonic() - started >= 2.0  # it waited for an answer: it was sent
    no_answer, complaint = err.splitlines()
    assert "no answer from a plant" in no_answer
    assert "--timeout 'nan'" in complaint and "the e-stop was sent all the same" in complaint


def test_estop_that_cannot_be_sent_says_so_and_not_that_it_was_sent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by test_operator_fuzz.py: with no keys folder and a bad --timeout, it said both
    # "no keys" and "the e-stop was sent all the same".
    code, _, err = run_main(["estop", "--endpoint", NOBODY, "--timeout", "0",
                             "--keys", str(tmp_path / "none")], capsys)
    assert_one_line_usage(code, err, "--keys: CURVE keys folder", "does not exist")
    assert "e-stop was sent" not in err


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_empty_keys_folder_name_is_refused_not_taken_as_here(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main([*command, "--endpoint", NOBODY, "--keys", ""], capsys)
    assert_one_line_usage(code, err, "--keys ''", "hil keygen")


@pytest.mark.parametrize(("values", "named"), [
    (["1", "nan"], "gain #2 is 'nan'"),
    (["1e400"], "gain #1 is '1e400'"),
    (["k1=3", "K=-inf"], "gain 'K' is '-inf'"),
    (["k1=x"], "gain 'k1': 'x' is not a number"),
    (["1", "k=2"], "not both"),
    (["=3"], "no gain name"),
])
def test_gains_that_are_not_finite_numbers_are_named(
        values: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["gains", "--endpoint", NOBODY, *values], capsys)
    assert_one_line_usage(code, err, named)


def test_too_many_gains_are_refused_naming_the_protocols_limit(
        capsys: pytest.CaptureFixture[str]) -> None:
    values = [str(i) for i in range(2000)]
    code, _, err = run_main(["gains", "--endpoint", NOBODY, "--timeout", "30", *values], capsys)
    assert_one_line_usage(code, err, "a gains_set of 2000 values", "16384-byte limit",
                          "MAX_MESSAGE_BYTES")


def test_a_gain_name_over_the_protocols_text_bound_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    # 8,193 characters fit in a message but not in msgpack's bound on a string.
    code, _, err = run_main(["gains", "--endpoint", NOBODY, "k" * 8193 + "=1"], capsys)
    assert_one_line_usage(code, err, "over the protocol's bounds", "8193")


def test_a_gain_name_that_is_not_text_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # A name from argv bytes that are not UTF-8 (Python keeps them as lone surrogates).
    code, _, err = run_main(["gains", "--endpoint", NOBODY, "k\udcff=1"], capsys)
    assert_one_line_usage(code, err, "'\\udcff' is not valid text")


def test_a_usage_error_of_argparse_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["clear", "--endpoint", NOBODY, "--timeout", "-inf"], capsys)
    assert_one_line_usage(code, err, "hil clear: argument --timeout: expected one argument",
                          "see hil clear --help")


@pytest.mark.parametrize("typed", ["a\nb", "\x0c", "x\u2028y"])
def test_a_line_break_typed_into_a_value_stays_on_the_one_line(
        typed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by test_operator_fuzz.py (a form feed split argparse's message in two lines).
    for argv in (["clear", "--endpoint", NOBODY, typed],
                 ["clear", "--endpoint", NOBODY, "--keys", str(tmp_path / typed)]):
        code, _, err = run_main(argv, capsys)
        assert_one_line_usage(code, err, ascii(typed)[1:-1])


@pytest.mark.parametrize("port", ["-1", "65536", "70000"])
def test_watch_refuses_a_page_port_that_is_not_a_port(
        port: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["watch", "--endpoint", NOBODY, "--port", port], capsys)
    assert_one_line_usage(code, err, f"--port {port}", "0..65535")


@pytest.mark.parametrize(("argv", "named"), [
    (["run", "--watch", "--watch-host", "nonsense.invalid"], "give --watch-host a name or an"),
    (["watch", "--run", ".", "--host", "192.0.2.1"], "give --host a name or an address"),
    (["run", "--watch", "--watch-port", "{taken}"], "choose another port with --watch-port"),
    (["watch", "--run", ".", "--port", "{taken}"], "choose another port with --port"),
], ids=["run-host", "watch-host", "run-port", "watch-port"])
def test_a_page_address_that_cannot_be_served_names_the_commands_own_flag_to_change(
        argv: list[str], named: str, tmp_path: Path) -> None:
    """`hil run --watch` and `hil watch` say which of their own flags to change: a port in
    use, or a host that is not this machine's (nothing of the run starts)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        done = subprocess.run([str(BIN / "hil"), *(a.format(taken=port) for a in argv),
                               *(["--mode", "lockstep", "--endpoint", free_endpoint(),
                                  "--out", "run", *NO_HTML] if argv[0] == "run" else [])],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and named in done.stderr, done.stderr
    assert "cannot serve the live view on " in done.stderr
    assert not (tmp_path / "run" / "plant.json").exists()  # nothing of a run started


def wait_for_event(log: Path, event: str, proc: subprocess.Popen[str],
                   timeout_s: float = 60.0) -> None:
    """Wait until `event` is in the JSON-lines log `log` (the process still running)."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        lines = log.read_text().splitlines() if log.exists() else []
        if any(line.endswith("}") and json.loads(line).get("event") == event
               for line in lines):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no {event!r} in {log} within {timeout_s} s")


@pytest.mark.realtime
def test_hil_estop_with_timeout_nan_stops_a_real_plant_then_exits_2(tmp_path: Path) -> None:
    out, endpoint = tmp_path / "run", free_endpoint()
    run = subprocess.Popen(
        [str(BIN / "hil"), "run", "--out", str(out), "--endpoint", endpoint, "--duration", "60",
         "--set", "controller.connect_timeout_s=60", "--set", "plant.attach_timeout_s=60",
         *NO_HTML], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_event(out / "controller.log.jsonl", "attached", run)
        estop = subprocess.run([str(BIN / "hil"), "estop", "--endpoint", endpoint,
                                "--timeout", "nan", "--reason", "odd timeout"],
                               capture_output=True, text=True, timeout=60)
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert estop.returncode == 2, estop.stderr
    assert "e-stop: safe output applied" in estop.stdout
    assert len(estop.stderr.splitlines()) == 1 and "--timeout 'nan'" in estop.stderr
    plant = json.loads((out / "plant.json").read_text())
    assert plant["end_reason"] == "estop: odd timeout" and plant["safe_state"] is True
    assert run.returncode == 1  # the run ended by the e-stop, well before its 60 s


@pytest.mark.parametrize("command", ["report", "replay", "export"])
def test_a_folder_that_is_no_run_is_named_with_where_runs_are(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hil report|replay|export` of a path that is not there, or of a folder no run wrote
    (no config.yaml; for export, no plant.rec), say which, in one line."""
    missing = str(tmp_path / "nope")
    code, _, err = run_main([command, missing], capsys)
    assert_one_line_usage(code, err, f"hil {command}: no run folder", "hil run's --out")
    code, _, err = run_main([command, str(tmp_path)], capsys)
    if command == "export":  # a recording alone is enough (a plant started by hand)
        assert_one_line_usage(code, err, "no ", "plant.rec (was recording off")
    else:
        assert_one_line_usage(code, err, "holds no config.yaml", "hil run's --out")


def test_replay_of_a_run_without_a_controller_recording_says_there_is_nothing_to_replay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.yaml").write_text("run: {mode: lockstep}\n")
    code, _, err = run_main(["replay", str(tmp_path)], capsys)
    assert_one_line_usage(code, err, "holds no controller.rec: nothing to replay")


@pytest.mark.parametrize("case", ["not there", "under a file", "empty", "blank"])
def test_keygen_names_a_folder_it_cannot_write_in_one_line_and_writes_nothing(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    folder, said = {"not there": ("/proc/no-such-keys", "cannot write keys in /proc/no-such"),
                    "under a file": (str(tmp_path / "a-file" / "keys"), "Not a directory"),
                    "empty": ("", "the keys folder's name is empty"),
                    "blank": ("  ", "the keys folder's name is empty")}[case]
    before = sorted(Path.cwd().iterdir())
    code, out, err = run_main(["keygen", folder], capsys)
    assert_one_line_usage(code, err, said, "name a folder")
    assert out == "" and sorted(Path.cwd().iterdir()) == before  # no key written anywhere
