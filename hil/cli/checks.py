"""What the operator commands accept from the command line, checked before anything is sent.

`hil estop`, `hil clear`, `hil gains` and `hil watch` are typed by a person, maybe in an
emergency: each value is checked here, in the standard library only, and a bad one raises
`UsageError` naming the option, the value and what is accepted. The command prints that one
line and exits 2. (`hil estop` sends the e-stop first and complains after: hil/cli/operator.py.)
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

DEFAULT_TIMEOUT_S = 2.0
MAX_TIMEOUT_S = 60.0
# Enough to say why; the rest of a longer --reason is cut (the e-stop still goes).
MAX_REASON_CHARS = 1000
# The kernel's limit on a Unix socket path (sun_path is 108 bytes with its NUL).
MAX_IPC_PATH_BYTES = 107
ENDPOINT_FORMS = "tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555) or ipc://PATH"

_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


class UsageError(ValueError):
    """A command-line value the command cannot use; the message names the option, the value
    and what is accepted."""


def timeout_s(text: str) -> float:
    """`--timeout TEXT` as seconds, 0 < t <= MAX_TIMEOUT_S."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= MAX_TIMEOUT_S:  # false for nan too
        raise UsageError(f"--timeout {_show(text)}: give seconds to wait for the plant's "
                         f"answer, 0 < t <= {MAX_TIMEOUT_S:g} (e.g. --timeout "
                         f"{DEFAULT_TIMEOUT_S:g})")
    return value


def endpoint(text: str) -> str:
    """`--endpoint TEXT` if it is a plant endpoint a client can connect to: tcp://HOST:PORT
    with PORT in 1..65535, or ipc://PATH."""
    scheme, sep, rest = text.partition("://")
    if sep and scheme == "ipc":
        problem = _ipc_problem(rest)
    elif sep and scheme == "tcp":
        problem = _tcp_problem(rest)
    else:
        problem = "not a plant endpoint"
    if problem:
        raise UsageError(f"--endpoint {_show(text)}: {problem}; give {ENDPOINT_FORMS}")
    return text


def _tcp_problem(rest: str) -> str:
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        return "no HOST:PORT after tcp://"
    if not _HOST.fullmatch(host):
        return f"{_show(host)} is not a host name or address"
    if not (port.isascii() and port.isdigit() and len(port) <= 5) or not 0 < int(port) <= 65535:
        return f"port {_show(port)} is not a number in 1..65535"
    return ""


def _ipc_problem(path: str) -> str:
    if not path:
        return "no PATH after ipc://"
    if "\0" in path or not path.isprintable():
        return "the path holds control characters"
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > MAX_IPC_PATH_BYTES:
        return f"the path is {size} bytes, over the {MAX_IPC_PATH_BYTES} a Unix socket takes"
    return ""


def keys_dir(text: str | None) -> str | None:
    """`--keys TEXT`: None (no CURVE) or a folder name; what the folder holds is checked when
    the keys are loaded (hil/link/security.py)."""
    if text is not None and not text.strip():
        raise UsageError(f"--keys {_show(text)}: an empty folder name; give the CURVE keys "
                         "folder made by `hil keygen DIR`")
    return text


def port(option: str, value: int) -> int:
    """A TCP port to serve a page on: 0 (any free one) .. 65535."""
    if not 0 <= value <= 65535:
        raise UsageError(f"{option} {value}: not a TCP port; give 0..65535 (e.g. {option} 8700)")
    return value


def reason(text: str) -> tuple[str, str | None]:
    """The e-stop's `--reason` as it can be sent (valid text, at most MAX_REASON_CHARS), and
    what was changed to send it, if anything."""
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if len(clean) > MAX_REASON_CHARS:
        return clean[:MAX_REASON_CHARS], (f"--reason is {len(clean)} characters, over "
                                          f"{MAX_REASON_CHARS}: sent its first "
                                          f"{MAX_REASON_CHARS}")
    return clean, None


# What str.splitlines() breaks a line at, each shown escaped in a one-line message.
_ONE_LINE = {ord(c): ascii(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def run_folder(text: str, needs: str | None = "config.yaml") -> Path:
    """The run folder `text` names, holding `needs` (what a run writes into it, if given);
    UsageError saying which of the two it is not."""
    path = Path(text)
    where = "give the folder a run wrote (hil run's --out, or runs/RUN_ID)"
    if not path.is_dir():
        raise UsageError(f"no run folder {_show(text)}: {where}")
    if needs is not None and not (path / needs).is_file():
        raise UsageError(f"{_show(text)} holds no {needs}: it is not a run's folder, or that "
                         f"run wrote none; {where}")
    return path


def one_line(text: str) -> str:
    """`text` on one line: a line break typed into a value (a path, a name) shows escaped."""
    return text.translate(_ONE_LINE)


def say(command: str, message: object) -> None:
    """Print `hil COMMAND: MESSAGE` on stderr, on one line (`one_line`)."""
    print(f"hil {command}: {one_line(str(message))}", file=sys.stderr)


def _show(text: str) -> str:
    """`text` quoted for a message, printable whatever it holds, and cut if long."""
    return ascii(text) if len(text) <= 60 else ascii(text[:60])[:-1] + "...'"
