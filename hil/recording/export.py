"""`hil export`: a run's plant recording as a table, one row per plant step.

CSV: a header line naming each column with its unit in brackets (`theta1 [rad]`; no
brackets for a pure number such as `seq`), then one line per step; integers as integers,
floats with 17 significant digits (they read back exactly). Each input is a column of its
own, named and unit-ed as the plant's description says (`thrust_left [N],thrust_right [N]`
for a bicopter, `voltage [V]` for the rotary); a recording written before several inputs
shows its one `force_n` column under the input's name (`force [N]`).
NPZ: one array per column under its name, plus `_columns`, `_units` and `_labels` (string
arrays, in column order) and `_inputs` (the input columns, in input order); an old
recording's input is under its recording name `force_n` and under its own name as well
(`voltage` for the rotary).

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
            aliases = {c.label: rec[c.name] for c in rec.columns
                       if c.label and c.label not in rec and not c.label.startswith("_")}
            np.savez(f, **rec, **aliases, _columns=np.array([c.name for c in rec.columns]),
                     _units=np.array([c.unit for c in rec.columns]),
                     _labels=np.array([c.title for c in rec.columns]),
                     _inputs=np.array(rec.inputs, dtype=str))
        return rec
    names = [c.name for c in rec.columns]
    titles = [c.title if c.title == c.name or c.title not in names else c.name
              for c in rec.columns]  # a label never hides another column
    header = ",".join(f"{t} [{c.unit}]" if c.unit else t
                      for t, c in zip(titles, rec.columns, strict=True))
    table = np.empty((rec.rows, len(rec.columns)), dtype=object)
    for j, c in enumerate(rec.columns):
        table[:, j] = rec[c.name]
    formats = ["%d" if c.dtype == "i8" else "%.17g" for c in rec.columns]
    np.savetxt(out, table, fmt=formats, delimiter=",", header=header, comments="")
    return rec
