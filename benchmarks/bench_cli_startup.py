"""Start-up time of the operator's commands: `hil estop --help`, `hil clear --help`.

Median of N runs of each command, this tree against another git revision checked out into a
temporary worktree (default: the last commit before the layout split), interleaved in one
run so the machine's load hits both alike.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 10] [--against 6f9ea7d]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE_LAYOUT = "6f9ea7d"


def _time(cmd: list[str], pythonpath: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          cwd=pythonpath, check=False)
    if done.returncode not in (0, 3):  # 3: the unreachable plant, as expected
        raise SystemExit(f"{cmd} exited {done.returncode}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--against", default=BEFORE_LAYOUT, help="git revision to compare")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other),
                        args.against], check=True, capture_output=True)
        try:
            trees = {f"{args.against}": other, "this tree": ROOT}
            print(f"{'command':<24}{'tree':<14}{'median ms':>10}{'min ms':>9}")
            # --help: parse and print; the unreachable estop: the real command's imports, its
            # socket and a 10 ms wait for an answer that never comes (exit 3).
            commands = {"hil estop --help": ["estop", "--help"],
                        "hil clear --help": ["clear", "--help"],
                        "hil estop (no plant)": ["estop", "--endpoint", "tcp://127.0.0.1:9",
                                                 "--timeout", "0.01"]}
            for label, words in commands.items():
                cmd = [sys.executable, "-m", "hil.cli", *words]
                samples: dict[str, list[float]] = {name: [] for name in trees}
                for _ in range(args.runs):
                    for name, tree in trees.items():
                        samples[name].append(_time(cmd, tree))
                for name, values in samples.items():
                    print(f"{label:<24}{name:<14}"
                          f"{statistics.median(values) * 1e3:>10.0f}{min(values) * 1e3:>9.0f}")
                before, after = (statistics.median(v) for v in samples.values())
                print(f"{'':<24}{'speed-up':<14}{before / after:>9.1f}x")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)],
                           check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
