"""The sweep's page (sweep.html): the laws ranked by their metrics, and their runs' plots.

For each config x experiment, a table of the laws: runs that PASSed, then the mean and the
median over the seeds of every experiment metric, ranked by PASSes (more first), then the
sum of the mean IAEs of the referenced states, then the mean score (higher first), then the
sum of the mean control efforts (lower first). An overall table ranks the laws by their
mean rank. Below each table, one figure with a panel per law side by side (plots.py).
Figures are PNGs embedded in the page, so it is one self-contained file; each run's row
links to its run folder's files.
"""

from __future__ import annotations

import base64
import html
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.sweep.table import metric_names

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:.2em .5em;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
img{max-width:100%}.fail{color:#b00}"""


@dataclass(frozen=True)
class LawStats:
    law: str
    runs: int
    passes: int
    mean: dict[str, float]
    median: dict[str, float]
    rank: tuple[float, ...]  # lower ranks first


def _numbers(rows: Sequence[Mapping[str, Any]], name: str) -> list[float]:
    return [float(r[name]) for r in rows if isinstance(r.get(name), int | float)
            and not isinstance(r.get(name), bool)]


def law_stats(law: str, rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> LawStats:
    mean = {m: statistics.fmean(v) for m in metrics if (v := _numbers(rows, m))}
    median = {m: statistics.median(v) for m in metrics if (v := _numbers(rows, m))}
    passes = sum(r.get("verdict") == "PASS" for r in rows)
    scores = _numbers(rows, "score")
    rank = (-float(passes), sum(v for m, v in mean.items() if m.endswith(".iae")),
            -(statistics.fmean(scores) if scores else 0.0),
            sum(v for m, v in mean.items() if m.endswith(".effort")))
    return LawStats(law, len(rows), passes, mean, median, rank)


def ranking(rows: Sequence[Mapping[str, Any]]
            ) -> dict[tuple[str, str], list[LawStats]]:
    """Per (config, experiment), the laws best first."""
    groups: dict[tuple[str, str], dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        groups.setdefault((row["config"], row["experiment"]), {}).setdefault(
            row["law"], []).append(row)
    ranked = {}
    for key, by_law in groups.items():
        metrics = metric_names([r for law_rows in by_law.values() for r in law_rows])
        stats = [law_stats(law, law_rows, metrics) for law, law_rows in by_law.items()]
        ranked[key] = sorted(stats, key=lambda s: (s.rank, s.law))
    return ranked


def overall(ranked: Mapping[tuple[str, str], list[LawStats]]) -> list[tuple[str, float, int]]:
    """(law, mean rank, wins) over every config x experiment, best first."""
    places: dict[str, list[int]] = {}
    for stats in ranked.values():
        for place, s in enumerate(stats, start=1):
            places.setdefault(s.law, []).append(place)
    table = [(law, statistics.fmean(p), p.count(1)) for law, p in places.items()]
    return sorted(table, key=lambda entry: (entry[1], -entry[2], entry[0]))


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _group_table(stats: Sequence[LawStats]) -> str:
    metrics = sorted({m for s in stats for m in s.mean})
    head = "".join(f"<th>{html.escape(m)}<br>mean / median</th>" for m in metrics)
    body = []
    for place, s in enumerate(stats, start=1):
        cells = "".join(f"<td>{_f(s.mean.get(m))} / {_f(s.median.get(m))}</td>"
                        for m in metrics)
        passed = "" if s.passes == s.runs else " class=\"fail\""
        body.append(f"<tr><td>{place}</td><td class=\"l\">{html.escape(s.law)}</td>"
                    f"<td{passed}>{s.passes}/{s.runs}</td>{cells}</tr>")
    return (f"<table class=\"ranking\"><tr><th>rank</th><th class=\"l\">law</th><th>PASS"
            f"</th>{head}</tr>{''.join(body)}</table>")


def _runs_table(rows: Sequence[Mapping[str, Any]], page_dir: Path) -> str:
    body = []
    for row in rows:
        folder = Path(str(row["run_dir"]))
        links = " ".join(
            f"<a href=\"{html.escape(_href(folder / name, page_dir))}\">{name}</a>"
            for name in ("report.html", "report.json", "config.yaml")
            if (folder / name).exists())
        verdict = html.escape(str(row.get("verdict")))
        css = "" if row.get("verdict") == "PASS" else " class=\"fail\""
        body.append(f"<tr><td class=\"l\">{html.escape(str(row['config']))}</td>"
                    f"<td class=\"l\">{html.escape(str(row['law']))}</td>"
                    f"<td class=\"l\">{html.escape(str(row['experiment']))}</td>"
                    f"<td>{row['seed']}</td><td{css}>{verdict}</td>"
                    f"<td class=\"l\">{links}</td></tr>")
    return ("<table class=\"runs\"><tr><th class=\"l\">config</th><th class=\"l\">law</th>"
            "<th class=\"l\">experiment</th><th>seed</th><th>verdict</th>"
            f"<th class=\"l\">files</th></tr>{''.join(body)}</table>")


def _href(path: Path, page_dir: Path) -> str:
    try:
        return str(path.relative_to(page_dir.absolute()))
    except ValueError:
        return path.as_uri()


def write_page(path: Path, rows: Sequence[Mapping[str, Any]], title: str) -> Path:
    """Write sweep.html at `path` for the table's `rows`."""
    ranked = ranking(rows)
    parts = [f"<h1>{html.escape(title)}</h1>", "<h2>Overall</h2>",
             "<table class=\"overall\"><tr><th>rank</th><th class=\"l\">law</th>"
             "<th>mean rank</th><th>first places</th></tr>"]
    for place, (law, mean_rank, wins) in enumerate(overall(ranked), start=1):
        parts.append(f"<tr><td>{place}</td><td class=\"l\">{html.escape(law)}</td>"
                     f"<td>{mean_rank:.3g}</td><td>{wins}</td></tr>")
    parts.append("</table>")
    for (config, experiment), stats in ranked.items():
        group = [r for r in rows if (r["config"], r["experiment"]) == (config, experiment)]
        parts += [f"<h2>{html.escape(experiment)} on {html.escape(config)}</h2>",
                  _group_table(stats), _figure_html(group, [s.law for s in stats])]
    parts += ["<h2>Runs</h2>", _runs_table(rows, path.parent)]
    path.write_text(f"<!doctype html><html><head><meta charset=\"utf-8\"><title>"
                    f"{html.escape(title)}</title><style>{CSS}</style></head><body>"
                    f"{''.join(parts)}</body></html>\n")
    return path


def _figure_html(rows: Sequence[Mapping[str, Any]], laws: Sequence[str]) -> str:
    from hil.sweep.plots import group_figure

    png = group_figure(rows, laws)
    if png is None:
        return "<p>No recordings to plot (record.enabled was off, or the runs failed).</p>"
    data = base64.b64encode(png).decode()
    return f"<p><img class=\"plot\" alt=\"trajectories per law\" src=\"data:image/png;" \
           f"base64,{data}\"></p>"
