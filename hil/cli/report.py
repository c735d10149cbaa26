"""`hil report` (rewrite a run's report.html and plots) and `hil export` (its recording)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hil.app.exits import EXIT_OK, EXIT_USAGE
from hil.cli import checks

EXPORT_FORMATS = ("csv", "npz", "mcap")  # hil.recording.export.FORMATS; a test keeps them equal


def add_parser(sub: Any) -> None:
    report = sub.add_parser("report", help="(re)write a run's report.html and plots")
    report.add_argument("run_dir")
    report.set_defaults(handler=report_command)
    export = sub.add_parser("export", help="a run's plant recording as a table, or the whole "
                            "run as MCAP (Foxglove, Lichtblick, PlotJuggler)")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    export.add_argument("--output", help="file to write (default: RUN_DIR/run.mcap for mcap, "
                        "RUN_DIR/plant.csv or plant.npz)")
    export.set_defaults(handler=export_command)


def report_command(args: argparse.Namespace) -> int:
    from hil.app.process import write_json
    from hil.cli.run import read_results
    from hil.config import ConfigError, load_config
    from hil.reporting.html import write_html_report
    from hil.reporting.report import build_report, summary_table

    try:
        out = checks.run_folder(args.run_dir)
    except checks.UsageError as exc:
        checks.say("report", exc)
        return EXIT_USAGE
    path = out / "report.json"
    try:
        if path.exists():
            report = json.loads(path.read_text())
        else:  # `hil run` itself was stopped: merge what the processes left
            config = load_config(out / "config.yaml")
            results = read_results(out, {"plant": None, "controller": None})
            run_id = results["plant"].get("run_id") or out.name
            report = build_report(run_id, config.model_dump(mode="json"), results["plant"],
                                  results["controller"])
            write_json(path, report)
        page = write_html_report(out)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"hil report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary_table(report))
    print(f"html: {page}")
    return EXIT_OK


def export_command(args: argparse.Namespace) -> int:
    from hil.recording.export import export_recording
    from hil.recording.recorder import RecordingError
    from hil.recording.traces import recorded_inputs

    try:
        source = checks.run_folder(args.run_dir, needs=None) / "plant.rec"
    except checks.UsageError as exc:
        checks.say("export", exc)
        return EXIT_USAGE
    if not source.exists():
        print(f"hil export: no {source} (was recording off, or did the plant not start?)",
              file=sys.stderr)
        return EXIT_USAGE
    output = args.output or str(Path(args.run_dir) / (
        "run.mcap" if args.format == "mcap" else f"plant.{args.format}"))
    try:
        rec = export_recording(args.run_dir, args.format, output)
    except OSError as exc:
        if exc.filename is not None and Path(exc.filename) == Path(output):
            checks.say("export", f"cannot write {output}: {exc.strerror}; give --output a file "
                                 "in a folder you can write")
        else:
            checks.say("export", exc)
        return EXIT_USAGE
    except (RecordingError, ValueError) as exc:
        checks.say("export", exc)
        return EXIT_USAGE
    if rec.problem:
        print(f"hil export: {rec.truncated_bytes} bytes at the end of plant.rec ignored "
              f"({rec.problem})", file=sys.stderr)
    elif not rec.complete:
        print("hil export: plant.rec was not closed (its process was killed); all its rows "
              "were exported", file=sys.stderr)
    inputs = ", ".join(f"{tr.name} ({tr.unit})" if tr.unit else tr.name
                       for tr in recorded_inputs(rec))
    print(f"{rec.rows} plant steps, {len(rec.columns)} columns (inputs: {inputs or 'none'}) "
          f"-> {output}")
    return EXIT_OK
