"""Run history: every finished run in a SQLite database (stdlib sqlite3), and run comparison.

`hil run` appends each run's report with `append_run`; `hil history` lists them newest
first (`list_runs`); `hil compare` puts two reports side by side (`compare`, `format_compare`).
The database (default runs/history.db) keeps one row per run: the figures a listing needs in
columns, and the whole report.json as text, so a comparison needs no run folder.

The schema is versioned: table `meta` holds `schema_version`, and `migrate()` brings an older
database up to `SCHEMA_VERSION` one step at a time, each step in its own transaction
(`BEGIN IMMEDIATE`, so two processes never migrate at once). A database written by a newer
hil, or a SQLite file that is not a run history, is refused with `HistoryError`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from hil.reporting.scoring import current_name

__all__ = [
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "HistoryError",
    "append_doctor",
    "append_run",
    "append_tuning",
    "compare",
    "format_compare",
    "get_run",
    "list_doctor",
    "list_runs",
    "migrate",
]

DEFAULT_PATH = Path("runs") / "history.db"
LATENCY_STATS = ("p50", "p99", "max")


class HistoryError(Exception):
    """The history database cannot be used as it is; the message says why and what to do."""


def _create_v1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL UNIQUE,
            date TEXT NOT NULL,            -- ISO 8601 UTC: the run's start, else when appended
            run_dir TEXT NOT NULL,
            plant TEXT,
            controller TEXT,
            mode TEXT,
            rate_hz REAL,
            duration_s REAL,
            verdict TEXT,
            score REAL,
            round_trip_p50_us REAL,
            round_trip_p99_us REAL,
            round_trip_max_us REAL,
            miss_ratio REAL,
            report TEXT NOT NULL           -- the whole report.json
        )""")
    conn.execute("CREATE INDEX runs_by_date ON runs (date)")


def _add_doctor_v2(conn: sqlite3.Connection) -> None:
    """`hil doctor` results, one row per check, so a lab sees a bench degrade."""
    conn.execute("""
        CREATE TABLE doctor (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            date TEXT NOT NULL,            -- ISO 8601 UTC, when the doctor ran
            host TEXT NOT NULL,
            rate_hz REAL,
            ready INTEGER NOT NULL,        -- 1: no check failed
            check_name TEXT NOT NULL,
            status TEXT NOT NULL,          -- pass | warn | fail
            detail TEXT NOT NULL,
            figures TEXT                   -- the check's figures as JSON, or null
        )""")
    conn.execute("CREATE INDEX doctor_by_date ON doctor (date)")


# _MIGRATIONS[i] takes a database from schema version i to i + 1.
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1, _add_doctor_v2]
SCHEMA_VERSION = len(_MIGRATIONS)


def _version(conn: sqlite3.Connection) -> int:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        if tables - {"sqlite_sequence"}:
            raise HistoryError(f"not a hil run history (it has tables {sorted(tables)} and no "
                               f"meta table); choose another file")
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise HistoryError("the meta table has no schema_version; not a hil run history")
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring `conn` (opened with isolation_level=None) to SCHEMA_VERSION; return it."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn)
            if version > SCHEMA_VERSION:
                raise HistoryError(f"schema version {version} was written by a newer hil (this "
                                   f"one reads up to {SCHEMA_VERSION}); upgrade hil-runtime")
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return version
            if version == 0:
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            _MIGRATIONS[version](conn)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(version + 1),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


@contextmanager
def _open(db: str | Path) -> Iterator[sqlite3.Connection]:
    path = Path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(sqlite3.connect(path, timeout=10.0, isolation_level=None)) as conn:
            conn.row_factory = sqlite3.Row
            migrate(conn)
            yield conn
    except sqlite3.DatabaseError as exc:
        raise HistoryError(f"{path}: {exc}") from exc


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def append_run(db: str | Path, report: Mapping[str, Any], run_dir: str | Path) -> int:
    """Add a finished run (a run id already present is replaced); return its row id."""
    rt = (report.get("latency_us") or {}).get("round_trip") or {}
    date = report.get("started_at") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    values = (
        report["run_id"], date, str(run_dir), (report.get("plant") or {}).get("name"),
        report.get("controller"), report.get("mode"), _number(report.get("rate_hz")),
        _number(report.get("duration_s")), report.get("verdict"), _number(report.get("score")),
        _number(rt.get("p50")), _number(rt.get("p99")), _number(rt.get("max")),
        _number((report.get("deadline") or {}).get("miss_ratio")),
        json.dumps(report, allow_nan=False),
    )
    with _open(db) as conn:
        cur = conn.execute(
            "INSERT OR REPLACE INTO runs (run_id, date, run_dir, plant, controller, mode, "
            "rate_hz, duration_s, verdict, score, round_trip_p50_us, round_trip_p99_us, "
            "round_trip_max_us, miss_ratio, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)", values)
        return int(cur.lastrowid)


def append_tuning(db: str | Path, tuning: Mapping[str, Any], out_dir: str | Path) -> int:
    """Add a finished or interrupted `hil tune` (its tuning.json) as a row of mode "tune".

    The verdict is PASS when the tuned gains beat the defaults on the held-out draws.
    """
    held = tuning.get("held_out") or {}
    report = {"run_id": f"tune-{tuning['run_id']}", "controller": tuning.get("controller"),
              "plant": {"name": "dip"}, "mode": "tune",
              "verdict": "PASS" if held.get("tuned_better") else "FAIL",
              "tuning": {k: v for k, v in tuning.items() if k != "history"}}
    return append_run(db, report, out_dir)


def append_doctor(db: str | Path, result: Mapping[str, Any]) -> int:
    """Add one `hil doctor` result (DoctorReport.to_dict()): a row per check. Returns how
    many rows were added."""
    rows = [(result["at"], result["host"], _number(result.get("rate_hz")), int(result["ready"]),
             c["name"], c["status"], c["detail"],
             json.dumps(c["figures"], allow_nan=False) if c.get("figures") else None)
            for c in result["checks"]]
    with _open(db) as conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO doctor (date, host, rate_hz, ready, check_name, status, "
                         "detail, figures) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    return len(rows)


def list_doctor(db: str | Path, check_name: str | None = None, limit: int = 20
                ) -> list[dict[str, Any]]:
    """The newest `limit` doctor rows (of one check, if named), newest first."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    where, args = ("WHERE check_name = ? ", (check_name, limit)) if check_name else ("", (limit,))
    with _open(db) as conn:
        rows = conn.execute("SELECT date, host, rate_hz, ready, check_name, status, detail, "
                            f"figures FROM doctor {where}ORDER BY date DESC, id DESC LIMIT ?",
                            args).fetchall()
    out = [dict(r) for r in rows]
    for r in out:
        r["ready"] = bool(r["ready"])
        r["figures"] = json.loads(r["figures"]) if r["figures"] else None
    return out


_LISTED = ("run_id", "date", "plant", "controller", "mode", "rate_hz", "duration_s", "verdict",
           "score", "round_trip_p50_us", "round_trip_p99_us", "round_trip_max_us",
           "miss_ratio", "run_dir")


def _readable(db: str | Path) -> bool:
    """Whether a history exists at `db` to be read (reading never creates one); HistoryError
    for a folder given as the history file."""
    path = Path(db)
    if path.is_dir():
        raise HistoryError(f"{path} is a folder: give the history file (record.history_db, "
                           "runs/history.db by default)")
    return path.exists()


def list_runs(db: str | Path, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` runs, newest first, without their reports (none where no history
    is: reading never creates one)."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if not _readable(db):
        return []
    with _open(db) as conn:
        rows = conn.execute(f"SELECT {', '.join(_LISTED)} FROM runs "
                            "ORDER BY date DESC, id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(r) for r in rows]


def get_run(db: str | Path, run_id: str) -> dict[str, Any] | None:
    """The run `run_id` (or the one run whose id starts with it), its report parsed; or None.

    Raises HistoryError if `run_id` is the prefix of several runs' ids.
    """
    select = f"SELECT {', '.join(_LISTED)}, report FROM runs"
    if not _readable(db):
        return None
    with _open(db) as conn:
        rows = conn.execute(f"{select} WHERE run_id = ?", (run_id,)).fetchall()
        if not rows:
            rows = conn.execute(f"{select} WHERE substr(run_id, 1, ?) = ? ORDER BY run_id "
                                "LIMIT 3", (len(run_id), run_id)).fetchall()
    if not rows:
        return None
    if len(rows) > 1:
        ids = ", ".join(r["run_id"] for r in rows)
        raise HistoryError(f"run id {run_id!r} is ambiguous: {ids} start with it; give more")
    run = dict(rows[0])
    run["report"] = json.loads(run["report"])
    return run


def _change(a: Any, b: Any) -> tuple[float | None, float | None]:
    """(b - a, the change in % of |a|) when both are numbers, else (None, None)."""
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return None, None
    return y - x, (100.0 * (y - x) / abs(x) if x else None)


def _row(section: str, name: str, a: Any, b: Any, unit: str = "", **extra: Any
         ) -> dict[str, Any]:
    change, pct = _change(a, b)
    return {"section": section, "name": name, "a": a, "b": b, "change": change,
            "change_pct": pct, "unit": unit, **extra}


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Two reports side by side: verdict and score, each gate, each latency figure, misses,
    each experiment metric (docs/experiments.md), and each input's limits (by name: a run of
    another plant shows its own inputs).

    Each row is `{section, name, a, b, change, change_pct, unit}` (change = b - a when both
    are numbers, else None); gate rows add `a_passed`, `b_passed` and `threshold` (b's).
    A gate or figure only one report has shows None on the other side; a gate of an older
    report under its former name (upright_at_end) is the gate of its name now (at_target).
    A gate whose value is in different units in the two (at_target's furthest state) has no
    change and the unit `a|b`.
    """
    rows = [_row("run", "run_id", a.get("run_id"), b.get("run_id")),
            _row("run", "verdict", a.get("verdict"), b.get("verdict")),
            _row("run", "score", a.get("score"), b.get("score"))]
    gates_a = {current_name(g["name"]): g for g in a.get("gates", [])}
    gates_b = {current_name(g["name"]): g for g in b.get("gates", [])}
    for name in [*gates_a, *(n for n in gates_b if n not in gates_a)]:
        ga, gb = gates_a.get(name, {}), gates_b.get(name, {})
        row = _row("gate", name, ga.get("value"), gb.get("value"),
                   gb.get("unit", ga.get("unit", "")), a_passed=ga.get("passed"),
                   b_passed=gb.get("passed"), threshold=gb.get("threshold", ga.get("threshold")))
        if ga and gb and ga.get("unit", "") != gb.get("unit", ""):
            # e.g. at_target's furthest state in m in one run, in rad in the other
            row.update(change=None, change_pct=None, unit=f"{ga.get('unit', '')}|"
                                                          f"{gb.get('unit', '')}")
        rows.append(row)
    lat_a, lat_b = a.get("latency_us") or {}, b.get("latency_us") or {}
    for fig in [*lat_a, *(f for f in lat_b if f not in lat_a)]:
        for stat in LATENCY_STATS:
            rows.append(_row("latency", f"{fig} {stat}", (lat_a.get(fig) or {}).get(stat),
                             (lat_b.get(fig) or {}).get(stat), "us"))
    dl_a, dl_b = a.get("deadline") or {}, b.get("deadline") or {}
    for key in ("misses", "miss_ratio", "max_consecutive"):
        rows.append(_row("deadline", key, dl_a.get(key), dl_b.get(key)))
    return rows + _metric_rows(a, b) + _input_rows(a, b)


def _metric_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each experiment metric of either run (report.json `experiment.metrics`), side by
    side: the step metrics, IAE/ISE/ITAE, effort of two laws on one exercise."""
    met_a = ((a.get("experiment") or {}).get("metrics")) or {}
    met_b = ((b.get("experiment") or {}).get("metrics")) or {}
    return [_row("metric", name, met_a.get(name), met_b.get(name))
            for name in [*met_a, *(n for n in met_b if n not in met_a)]]


def _input_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per input of either run (by name, as its plant describes it), its low and high
    limits side by side, in its unit (`a|b` when the two runs' units differ)."""
    from hil.recording.traces import described_inputs

    def inputs(report: Mapping[str, Any]) -> dict[str, Any]:
        desc = report.get("plant") or {}
        said = any(k in desc for k in ("input_names", "input_name", "max_force_n"))
        return {tr.name: tr for tr in described_inputs(desc)} if said else {}

    in_a, in_b = inputs(a), inputs(b)
    rows = []
    for name in [*in_a, *(n for n in in_b if n not in in_a)]:
        ta, tb = in_a.get(name), in_b.get(name)
        units = {tr.unit for tr in (ta, tb) if tr is not None}
        unit = units.pop() if len(units) == 1 else f"{ta.unit if ta else ''}|" \
                                                       f"{tb.unit if tb else ''}"
        for end in ("low", "high"):
            row = _row("input", f"{name} {end}", getattr(ta, end, None),
                       getattr(tb, end, None), unit)
            if "|" in unit:
                row.update(change=None, change_pct=None)
            rows.append(row)
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "pass" if v else "FAIL"
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def format_compare(rows: list[dict[str, Any]]) -> str:
    """`compare` rows as a terminal table."""
    lines = [f"{'':<34}{'A':>24}{'B':>24}{'change':>12}{'':>9}"]
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            lines.append(f"-- {section}")
        a, b = _cell(r["a"]), _cell(r["b"])
        if section == "gate":
            a, b = f"{a} {_cell(r['a_passed'])}", f"{b} {_cell(r['b_passed'])}"
        change = "" if r["change"] is None else f"{r['change']:+.4g}"
        pct = "" if r["change_pct"] is None else f"{r['change_pct']:+.3g}%"
        name = f"{r['name']} ({r['unit']})" if r["unit"] else r["name"]
        lines.append(f"{name:<34}{a:>24}{b:>24}{change:>12}{pct:>9}")
    return "\n".join(lines)
