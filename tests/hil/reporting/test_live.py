"""The live status line: rate, misses and round-trip p99 from a plant recording in progress."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from synthetic_run import STATE_NAMES, STATE_UNITS

from hil.dynamics.inputs import Inputs
from hil.recording.recorder import Recorder, plant_columns
from hil.reporting.live import LiveStatus, StatusPrinter

STATE = [0.0, 0.1, -0.05, 0.0, 0.0, 0.0]
FORCE = Inputs.single("force", "N", 150.0)


def plant_row(seq: int, answered: int, control: int, round_trip_ns: int) -> tuple:
    t_ns = 10**12 + seq * 1_000_000  # 1 kHz
    return (seq, t_ns, seq * 1e-3, *STATE, 1.0, 0, 2000, control, answered, round_trip_ns)


def recorder(path: Path) -> Recorder:
    return Recorder(path, plant_columns(STATE_NAMES, STATE_UNITS, FORCE), flush_interval_s=60.0,
                    fsync_interval_s=0.0, max_rows_per_chunk=250)


def test_the_status_counts_misses_and_takes_p99_over_new_controls(tmp_path: Path) -> None:
    path = tmp_path / "plant.rec"
    status = LiveStatus(path)
    assert not status.update() and status.line() == "waiting for the plant's first steps..."
    rng = np.random.default_rng(2)
    round_trips = rng.integers(300_000, 400_000, 1000)
    round_trips[::50] = 900_000  # 2% slow: p99 is among them
    rec = recorder(path)
    control = -1
    for seq in range(1000):
        missed = seq % 250 == 3  # 4 misses: state seq-1 unanswered at this tick
        if seq and not missed:
            control += 1
        answered = seq - 2 if missed else seq - 1
        rec.record(plant_row(seq, answered, control, int(round_trips[control])
                             if control >= 0 else -1))
    rec.close()
    assert status.update()
    assert status.steps == 1000 and status.misses == 4
    assert abs(status.rate_hz - 1000) < 1e-6 and status.sim_time_s == 0.999
    line = status.line()
    assert "t    1.0 s" in line and " 1000 Hz" in line and "misses 4 (0.40%)" in line
    assert line.endswith("round trip p99 900 us")  # over the 996 controls applied
    assert not status.update()  # nothing new


def test_the_printer_redraws_in_place_at_most_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "plant.rec"
    now = [0.0]
    out = io.StringIO()
    printer = StatusPrinter(LiveStatus(path), out, interval_s=0.5, clock=lambda: now[0])
    printer.finish()
    assert out.getvalue() == ""  # nothing shown, nothing to end
    printer.tick()
    with recorder(path) as rec:
        for seq in range(10):
            rec.record(plant_row(seq, seq - 1, seq - 1, 350_000 if seq else -1))
    now[0] = 0.2
    printer.tick()  # too soon: not redrawn
    assert out.getvalue().count("\r") == 1 and "waiting" in out.getvalue()
    now[0] = 0.6
    printer.tick()
    assert out.getvalue().count("\r") == 2 and "misses 0 (0.00%)" in out.getvalue()
    assert "round trip p99 350 us" in out.getvalue()
    printer.finish()
    assert out.getvalue().endswith("us\n")
