"""`hil export`: a run's plant recording as a table, one row per plant step.

CSV: a header line naming each column with its unit in brackets (`theta1 [rad]`; no
brackets for a pure number such as `seq`), then one line per step; integers as integers,
floats with 17 significant digits (they read back exactly). NPZ: one array per column under
its name, plus `_columns` and `_units` (string arrays, in column order).

A recording its process did not close (a killed plant) exports all its intact chunks; what
was ignored is reported back to the caller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.recording.recorder import Recording, read_recording

FORMATS = ("csv", "npz", "mcap")  # mcap: hil.recording.mcap_export, the whole run


def export_recording(run_dir: str | Path, fmt: str, output: str | Path) -> Recording:
    """Write `run_dir`/plant.rec to `output` as `fmt`; return the recording that was read.

    Raises ValueError for an unknown format, RecordingError / OSError for the recording.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "mcap":
        from hil.recording.mcap_export import write_mcap

        return write_mcap(run_dir, output)
    rec = read_recording(Path(run_dir) / "plant.rec")
    out = Path(output)
    if fmt == "npz":
        with out.open("wb") as f:
            np.savez(f, **rec, _columns=np.array([c.name for c in rec.columns]),
                     _units=np.array([c.unit for c in rec.columns]))
        return rec
    header = ",".join(f"{c.name} [{c.unit}]" if c.unit else c.name for c in rec.columns)
    table = np.empty((rec.rows, len(rec.columns)), dtype=object)
    for j, c in enumerate(rec.columns):
        table[:, j] = rec[c.name]
    formats = ["%d" if c.dtype == "i8" else "%.17g" for c in rec.columns]
    np.savetxt(out, table, fmt=formats, delimiter=",", header=header, comments="")
    return rec
