"""The sweep's progress on stderr, in plain text: a bar redrawn in place on a terminal, one
line per finished run otherwise (a log, a CI job). The clock is passed in."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30


class Progress:
    """`total` runs of which `already` were done before (a resumed sweep)."""

    def __init__(self, total: int, already: int, stream: TextIO,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.already = total, already
        self.finished, self.not_passed = already, 0
        self.stream, self.clock = stream, clock
        self.began = clock()
        self.live = stream.isatty()

    def line(self) -> str:
        share = self.finished / self.total if self.total else 1.0
        filled = round(BAR_WIDTH * share)
        elapsed_s = self.clock() - self.began
        ran = self.finished - self.already
        left = self.total - self.finished
        eta = f", ~{elapsed_s / ran * left:.0f} s left" if ran and left else ""
        failed = f", {self.not_passed} not PASS" if self.not_passed else ""
        return (f"hil sweep [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                f"{self.finished}/{self.total} runs{failed}, {elapsed_s:.0f} s{eta}")

    def start(self) -> None:
        if self.already:
            self.stream.write(f"hil sweep: {self.already} of {self.total} runs already done "
                              f"(complete report.json); running the other "
                              f"{self.total - self.already}\n")
        self._draw("")

    def run_done(self, key: str, verdict: str) -> None:
        self.finished += 1
        if verdict != "PASS":
            self.not_passed += 1
        self._draw(f"  {key}: {verdict}")

    def finish(self) -> None:
        if self.live:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, what: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write(self.line() + what + "\n")
        self.stream.flush()
