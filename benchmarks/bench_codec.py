"""The wire codec and latency recording in isolation: before and after, side by side.

Codec: `hil.link.messages` (msgspec) against the msgpack codec it replaced
(``tests/hil/link/msgpack_codec.py``, the same table and limits), packing and decoding
`state` (6 and 32 floats) and `control` messages. Latency: `LatencyMonitor.record_ns`
(buffered, folded into the HDR histograms in batches) against recording every sample into
its histogram (``tests/hil/runtime/latency_reference.py``).

Each run times batches of `--batch` calls of every operation, old and new alternately so that
machine noise hits both alike, and takes the p50 of the per-call time over the batches; the
table shows the median of the runs' p50s and the ratio old / new. For recording it also shows
the mean per call over all batches (which includes the folds) and the median time of the call
that fills a buffer and folds it.

    .venv/bin/python benchmarks/bench_codec.py [--runs 3] [--batches 300] [--batch 100]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hil" / "link"))
sys.path.insert(0, str(ROOT / "tests" / "hil" / "runtime"))

import msgpack_codec as old_codec  # noqa: E402
from latency_reference import PerSampleRecorder  # noqa: E402

from hil.link import messages as new_codec  # noqa: E402
from hil.runtime.latency import BUFFER_SAMPLES, LatencyMonitor  # noqa: E402

STATE_6 = (123_456, 1_700_000_000_123_456_789, [0.01 * i - 0.021 for i in range(6)], 0)
STATE_32 = (123_456, 1_700_000_000_123_456_789, [0.01 * i - 0.021 for i in range(32)], 0)
CONTROL = (123_457, 123_456, [-12.375], 1_700_000_000_123_470_000, 1_700_000_000_123_480_000,
           4_200)
# Latencies around 60 us, spread over many HDR buckets, as a loop records them.
SAMPLES_NS = [40_000 + (i * 7919) % 45_000 for i in range(4096)]


# An operation: the old and the new function, and the arguments of each call of a batch.
Op = tuple[Callable[..., object], Callable[..., object], list[tuple[Any, ...]]]


def per_call_us(function: Callable[..., object], calls: list[tuple[Any, ...]]) -> float:
    start = time.perf_counter_ns()
    for args in calls:
        function(*args)
    return (time.perf_counter_ns() - start) / len(calls) / 1e3


def operations(batch: int) -> dict[str, Op]:
    """Operation -> (old, new, calls): both sides do the same work, checked here."""
    ops: dict[str, Op] = {}
    for name, fields in (("state 6", STATE_6), ("state 32", STATE_32)):
        data = new_codec.pack_state(*fields)
        assert data == old_codec.pack_state(*fields)
        ops[f"encode {name}"] = (old_codec.pack_state, new_codec.pack_state, [fields] * batch)
        ops[f"decode {name}"] = (old_codec.decode, new_codec.decode, [(data,)] * batch)
    data = new_codec.pack_control(*CONTROL)
    assert data == old_codec.pack_control(*CONTROL)
    ops["encode control"] = (old_codec.pack_control, new_codec.pack_control, [CONTROL] * batch)
    ops["decode control"] = (old_codec.decode, new_codec.decode, [(data,)] * batch)
    return ops


def one_run(ops: dict[str, Op], batches: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per operation and side: p50 and mean of the per-call time over the batches (us)."""
    times: dict[str, tuple[list[float], list[float]]] = {op: ([], []) for op in ops}
    for _ in range(batches):
        for op, (old, new, calls) in ops.items():
            times[op][0].append(per_call_us(old, calls))
            times[op][1].append(per_call_us(new, calls))
    return {op: {side: {"p50": statistics.median(t), "mean": statistics.fmean(t)}
                 for side, t in zip(("old", "new"), pair, strict=True)}
            for op, pair in times.items()}


def fold_call_us(repeats: int) -> float:
    """Median time of the `record_ns` call that fills a buffer and folds it."""
    times = []
    for _ in range(repeats):
        monitor = LatencyMonitor(("round_trip",))
        for value_ns in SAMPLES_NS[: BUFFER_SAMPLES - 1]:
            monitor.record_ns("round_trip", value_ns)
        start = time.perf_counter_ns()
        monitor.record_ns("round_trip", SAMPLES_NS[BUFFER_SAMPLES - 1])
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e3


def measure(runs: int, batches: int, batch: int) -> dict[str, Any]:
    ops = operations(batch)
    old_monitor, new_monitor = PerSampleRecorder(("round_trip",)), LatencyMonitor(("round_trip",))
    samples = [("round_trip", SAMPLES_NS[i % len(SAMPLES_NS)]) for i in range(batch)]
    ops["record_ns"] = (old_monitor.record_ns, new_monitor.record_ns, samples)
    results = [one_run(ops, batches) for _ in range(runs)]
    assert old_monitor.encode()["histograms"] == new_monitor.encode()["histograms"]
    table: dict[str, Any] = {}
    for op in ops:
        row = {f"{side}_{stat}_us": statistics.median(r[op][side][stat] for r in results)
               for side in ("old", "new") for stat in ("p50", "mean")}
        row["ratio_p50"] = row["old_p50_us"] / row["new_p50_us"]
        row["runs"] = [r[op] for r in results]
        table[op] = row
    table["record_ns"]["fold_call_us"] = fold_call_us(51)
    return {"benchmark": "codec", "runs": runs, "batches": batches, "batch": batch,
            "load_average": os.getloadavg()[0], "operations": table}


def print_table(result: dict[str, Any]) -> None:
    print(f"us per call: p50 over {result['batches']} batches of {result['batch']} calls, "
          f"median of {result['runs']} runs (load average {result['load_average']:.2f})")
    print(f"{'':18}{'before':>9}{'after':>9}{'ratio':>8}")
    for op, row in result["operations"].items():
        before = "msgpack" if op != "record_ns" else "per-sample"
        print(f"{op:18}{row['old_p50_us']:>9.3f}{row['new_p50_us']:>9.3f}"
              f"{row['ratio_p50']:>7.1f}x   (before: {before})")
    row = result["operations"]["record_ns"]
    print(f"record_ns mean per call, folds included: {row['old_mean_us']:.3f} -> "
          f"{row['new_mean_us']:.3f} us; the call that folds a full buffer "
          f"({BUFFER_SAMPLES} samples): {row['fold_call_us']:.1f} us")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (the median is reported)")
    parser.add_argument("--batches", type=int, default=300, help="batches per operation a run")
    parser.add_argument("--batch", type=int, default=100, help="calls per batch")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if min(args.runs, args.batches, args.batch) < 1:
        parser.error("--runs, --batches and --batch must be >= 1")
    result = measure(args.runs, args.batches, args.batch)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
