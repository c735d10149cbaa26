"""What `hil-plant` and `hil-controller` share: arguments, config, signals, the exit report.

Each process writes its JSON report on every exit path (end of run, SIGINT, SIGTERM, an
error), atomically (write then rename), so `hil run` never reads half a file. The run folder
(`--out`) is refused when it cannot be made or holds this process's report of another run,
unless `--overwrite` (hil/app/run_folder.py).
Exit status: 0 ran to the end, 1 ended by a fault, 2 bad usage or config, 3 peer unreachable
or silent, 4 refused by the peer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.app import early_signals, logs, run_folder
from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from hil.config import Config, ConfigError, load_config

__all__ = ["EXIT_FAULT", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNREACHABLE", "EXIT_USAGE"]


class StopFlag:
    """Set by SIGINT/SIGTERM; loops poll it once per tick."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        if early_signals.received is not None:  # it came while the process was starting
            self.signal = early_signals.received

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signal = signum


@dataclass
class ProcessContext:
    name: str
    config: Config
    out_dir: Path
    run_id: str
    log: Any
    stop: StopFlag


def _rss_kb(field_name: str) -> int | None:
    """A `Vm*` figure of this process from /proc/self/status, in kB (None off Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class ResourceMeter:
    """Resident memory at attach, at the end and its peak, for report.json's `resources`.

    `attached()` is called once, when the peer attaches (off the loop); `report()` at the
    end. The peak is the kernel's high-water mark (VmHWM), so nothing samples during the run.
    """

    def __init__(self) -> None:
        self.rss_at_start_kb = _rss_kb("VmRSS")
        self.rss_at_attach_kb: int | None = None

    def attached(self) -> None:
        if self.rss_at_attach_kb is None:
            self.rss_at_attach_kb = _rss_kb("VmRSS")

    def report(self) -> dict[str, Any]:
        def mb(kb: int | None) -> float | None:
            return None if kb is None else round(kb / 1024, 2)

        return {"rss_mb_at_start": mb(self.rss_at_start_kb),
                "rss_mb_at_attach": mb(self.rss_at_attach_kb),
                "rss_mb_at_end": mb(_rss_kb("VmRSS")), "rss_mb_peak": mb(_rss_kb("VmHWM")),
                "threads": len(os.listdir("/proc/self/task")) if os.path.isdir(
                    "/proc/self/task") else None,
                "open_fds": len(os.listdir("/proc/self/fd")) if os.path.isdir(
                    "/proc/self/fd") else None}


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def parse_args(prog: str, argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--config", help="YAML config file (default: built-in defaults)")
    p.add_argument("--out", help="run folder for the JSON report and logs (default: runs/<id>)")
    p.add_argument("--run-id", help="run identifier (default: a new one)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace this process's files of another run in --out")
    p.add_argument("--endpoint", help="ZeroMQ endpoint, overriding the config")
    return p.parse_args(argv)


NON_FINITE_KEY = "non_finite_values"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as strict JSON, atomically. It is always written: a non-finite number
    (NaN, inf: a diverged state, say) becomes null, and `non_finite_values` lists where each
    was ("final_state.1": "nan"), so a report survives the very failure it should describe."""
    try:
        text = json.dumps(data, indent=2, allow_nan=False, default=_jsonable)
    except ValueError:  # a non-finite float somewhere
        found: dict[str, str] = {}
        clean = _finite_or_null(json.loads(json.dumps(data, default=_jsonable)), "", found)
        clean[NON_FINITE_KEY] = {**clean.get(NON_FINITE_KEY, {}), **found}
        text = json.dumps(clean, indent=2, allow_nan=False)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _finite_or_null(obj: Any, where: str, found: dict[str, str]) -> Any:
    """`obj` (plain JSON types) with each non-finite float replaced by None, noted in `found`
    under its dotted path."""
    if isinstance(obj, float) and not math.isfinite(obj):
        found[where] = repr(obj)
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v, f"{where}.{k}" if where else str(k), found)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_null(v, f"{where}.{i}" if where else str(i), found)
                for i, v in enumerate(obj)]
    return obj


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def run_process(
    name: str,
    argv: list[str] | None,
    endpoint_key: str,
    body: Callable[[ProcessContext], tuple[int, dict[str, Any]]],
) -> int:
    """Parse, configure, run `body`, and write `<out>/<name>.json` whatever happens."""
    args = parse_args(f"hil-{name}", argv)
    overrides = {endpoint_key: args.endpoint} if args.endpoint else None
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"hil-{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    run_id = args.run_id or new_run_id()
    try:
        out_dir = run_folder.claim_for_process(
            str(Path("runs") / run_id) if args.out is None else args.out, name, run_id,
            args.overwrite)
    except run_folder.RunFolderError as exc:
        print(f"hil-{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log = logs.configure(name, config.logging.level, out_dir)
    stop = StopFlag()
    stop.install()
    ctx = ProcessContext(name, config, out_dir, run_id, log, stop)
    report: dict[str, Any] = {"process": name, "end_reason": "crashed before reporting"}
    code = EXIT_FAULT
    try:
        code, report = body(ctx)
    except ConfigError as exc:
        print(f"hil-{name}: {exc}", file=sys.stderr)
        report = {"process": name, "end_reason": f"config error: {exc}"}
        code = EXIT_USAGE
    except Exception as exc:
        log.exception("process failed", error=str(exc))
        report = {"process": name, "end_reason": f"error: {type(exc).__name__}: {exc}"}
        code = EXIT_FAULT
    finally:
        report.setdefault("process", name)
        report["run_id"] = run_id
        report["exit_code"] = code
        if stop.signal is not None:
            report["signal"] = signal.Signals(stop.signal).name
        try:
            write_json(out_dir / f"{name}.json", report)
        except (TypeError, ValueError) as exc:  # never mask the run's own end with this
            log.error("report not serialisable; wrote its outline", error=str(exc))
            write_json(out_dir / f"{name}.json", {
                key: report.get(key) for key in ("process", "end_reason", "run_id",
                                                 "exit_code", "signal")
            } | {"report_error": f"{type(exc).__name__}: {exc}"})
    return code
