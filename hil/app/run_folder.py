"""The run folder (`--out`): made if need be, and never the silent grave of an earlier run.

`hil run --out DIR` refuses a folder that holds a run (its reports, recordings or logs) unless
`--overwrite` says to replace it; then that run's files are removed first, so no log of the
old run is appended to and read as the new run's. `hil-plant` and `hil-controller` check only
their own files, so that the two processes of one run (and a controller that replaces a lost
one, with the same `--run-id`) share a folder: each refuses a folder whose `<name>.json` is
another run's, unless given `--overwrite`. A path that is a file, lies under a file, or cannot
be made is refused naming it. Standard library only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# What a run leaves in its folder (hil/reporting/html.py's PLOT_FILES are its plots).
RUN_MARKS = ("report.json", "plant.json", "controller.json", "*.rec", "*.log.jsonl")
RUN_FILES = (*RUN_MARKS, "report.html", "rig.json", "rig.pty", "*.json.tmp",
             "latency_percentiles.png", "timing.png", "trajectories.png", "stability.png")


class RunFolderError(ValueError):
    """The run folder cannot be used as given; the message names the path and the fix."""


def make(out: str, option: str = "--out") -> Path:
    """The folder `out`, made if it does not exist; RunFolderError naming the path when it is
    empty, a file, under a file, or cannot be made or written."""
    if not out.strip():
        raise RunFolderError(f"{option} {out!r}: an empty folder name; give the run's folder")
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(f"{option} {folder}: a file, not a folder; give a folder for "
                             "the run") from None
    except NotADirectoryError:
        raise RunFolderError(f"{option} {folder}: {_file_above(folder)} is a file, so no "
                             "folder can be made under it; give another path") from None
    except (OSError, ValueError) as exc:  # permissions, read-only, /proc, a NUL in the name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunFolderError(f"{option} {folder}: cannot make the folder ({reason}); give "
                             "another path") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunFolderError(f"{option} {folder}: the folder is not writable; give another "
                             "path")
    return folder


def _file_above(path: Path) -> Path:
    """The nearest existing ancestor of `path` that is not a folder (or `path`'s parent)."""
    for above in path.parents:
        if above.exists() and not above.is_dir():
            return above
    return path.parent


def earlier_run(folder: Path, marks: tuple[str, ...] = RUN_MARKS) -> list[Path]:
    """The files of `folder` matching `marks`: what says a run was written there."""
    return sorted(p for mark in marks for p in folder.glob(mark))


def remove_run(folder: Path, patterns: tuple[str, ...] = RUN_FILES) -> list[Path]:
    """Remove the files of `folder` that a run writes (`patterns`); the ones removed. Other
    files (a config beside the run, the user's own) stay."""
    removed = [p for pattern in patterns for p in folder.glob(pattern)
               if p.is_file() or p.is_symlink()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def claim(out: str, overwrite: bool, option: str = "--out") -> Path:
    """`hil run`'s folder: made, and emptied of an earlier run's files only with `overwrite`;
    RunFolderError naming the folder, the run it holds and `--overwrite` otherwise."""
    folder = make(out, option)
    found = earlier_run(folder)
    if found and not overwrite:
        raise RunFolderError(f"{option} {folder} holds an earlier run ({_names(found)}); give "
                             "a new folder, or add --overwrite to replace that run (its files "
                             "are removed first)")
    remove_run(folder)
    return folder


def claim_for_process(out: str, name: str, run_id: str, overwrite: bool) -> Path:
    """A process's folder: made, refused when its `<name>.json` is another run's (unless
    `overwrite`, which removes this process's files of that run first)."""
    folder = make(out)
    report = folder / f"{name}.json"
    if not report.exists() or _run_id(report) == run_id:
        return folder
    if not overwrite:
        raise RunFolderError(f"--out {folder} holds {report.name} of another run "
                             f"({_run_id(report) or 'unknown id'}); give a new folder, or add "
                             "--overwrite to replace that run's files of this process")
    remove_run(folder, (f"{name}.json", f"{name}.rec", f"{name}.log.jsonl"))
    return folder


def _run_id(report: Path) -> str | None:
    try:
        run_id = json.loads(report.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) else None


def _names(paths: list[Path]) -> str:
    names = [p.name for p in paths]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
