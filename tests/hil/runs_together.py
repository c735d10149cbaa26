"""`hil run`s started together and waited for: lockstep runs (no deadlines, each step waits
for its control) give the same result however they share the machine, so a module's runs
need not wait for one another. Each command line should give the controller time to find
its plant (controller.connect_timeout_s) while several runs start at once."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


def run_together(commands: Sequence[Sequence[str]], cwd: Path | Sequence[Path],
                 env: dict[str, str], timeout_s: float = 240
                 ) -> list[subprocess.CompletedProcess[str]]:
    """Each of `commands` run at once, from `cwd` (one folder for all, or one per command);
    their results, in order. Whatever still runs when one times out (or anything else goes
    wrong) is killed."""
    folders = [cwd] * len(commands) if isinstance(cwd, Path) else list(cwd)
    procs = [subprocess.Popen(list(argv), cwd=folder, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for argv, folder in zip(commands, folders, strict=True)]
    try:
        outputs = [p.communicate(timeout=timeout_s) for p in procs]
        return [subprocess.CompletedProcess(p.args, p.returncode, out, err)
                for p, (out, err) in zip(procs, outputs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
