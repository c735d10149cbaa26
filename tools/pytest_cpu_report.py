"""Where the test suite's CPU goes: a pytest plugin that counts each test's CPU time (the test
process's and that of every process it reaped), and a summary by file.

    PYTHONPATH=tools .venv/bin/python -m pytest -p pytest_cpu_report -n 2 --dist loadfile
    .venv/bin/python tools/pytest_cpu_report.py        # the files that cost the most

Each test process writes `cpu-per-test.<pid>.json` into $HIL_CPU_REPORT_DIR (default: the
system's temporary folder) at the end of its session. A process is counted when it is reaped:
one that lives on past its test (a session fixture's server, a Dask cluster) is counted in
whichever test its process reaps it, so a file whose CPU exceeds its wall time by far holds
such an end.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_ROWS: list[tuple[str, float, float]] = []


def _folder() -> Path:
    return Path(os.environ.get("HIL_CPU_REPORT_DIR", tempfile.gettempdir()))


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Iterator[None]:
    cpu_s, began = _cpu_s(), time.monotonic()
    yield
    _ROWS.append((item.nodeid, _cpu_s() - cpu_s, time.monotonic() - began))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _ROWS:
        (_folder() / f"cpu-per-test.{os.getpid()}.json").write_text(json.dumps(_ROWS))


def summary(top: int = 30) -> str:
    rows = [row for path in _folder().glob("cpu-per-test.*.json")
            for row in json.loads(path.read_text())]
    by_file: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for nodeid, cpu_s, wall_s in rows:
        entry = by_file[nodeid.split("::")[0]]
        entry[0] += cpu_s
        entry[1] += wall_s
        entry[2] += 1
    total = sum(row[1] for row in rows) or 1.0
    lines = [f"{len(rows)} tests, {total:.0f} CPU-s"]
    for name, (cpu_s, wall_s, count) in sorted(by_file.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"{cpu_s:8.1f} CPU-s {wall_s:8.1f} s {int(count):5d} tests "
                     f"{cpu_s / total:6.1%}  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
