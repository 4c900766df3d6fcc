"""`score-dir --report report.html`: one self-contained HTML page a person opens after a job.

It holds the score distribution, the worst-scoring items (the lowest, or the highest for a
lower-is-better metric) with their explanation maps (`semantic_iqa.explain`, computed by the
same model), a list per flagged result field (`ResultField.flag`), the failed items, and the
model, version and settings. What each item shows beside its score is the metric's
declaration (`ResultField.in_report`); nothing here names a metric. Every image is embedded
as a data URI and nothing is fetched: the file can be mailed, archived or opened offline.
Drawing needs matplotlib (`pip install "semantic-iqa[viz]"`).
"""

from __future__ import annotations

import base64
import html
import io
import os
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..contract import ResultField
from ..errors import InvalidOptionError, SemanticIQAError
from ..registry import MetricInfo
from .items import image_columns
from .reading import read_result_rows

__all__ = ["is_report", "read_result_rows", "require_matplotlib", "write_report"]

LISTED_ROWS = 200  # flagged / failed items listed in full up to this many
THUMBNAIL_DPI = 80
GENERATOR = "semantic-iqa score-dir --report"  # in every report's <head>: marks the files it may replace

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1.5em; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 0.2em 0.6em; text-align: left; }
tr:nth-child(even) { background: #f4f4f4; } .warning { background: #fde8e8; color: #8b0000; padding: 0.8em;
border: 1px solid #e0a0a0; font-weight: bold; } .item { margin: 1.2em 0; } .item img { max-width: 100%; }
code { font-size: 0.9em; } .muted { color: #666; }
"""


def is_report(path: str | os.PathLike) -> bool:
    """True when `path` is a report this package wrote (its generator tag), so a resumed job may replace it."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return GENERATOR in handle.read(4096)
    except OSError:
        return False


def require_matplotlib() -> None:
    """Raise `InvalidOptionError` (before any scoring) when matplotlib, which draws the report, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidOptionError("--report needs matplotlib: pip install 'semantic-iqa[viz]'") from None


def write_report(
    path: str | os.PathLike,
    results: str | os.PathLike,
    info: MetricInfo,
    model: Any,
    summary: Mapping[str, Any],
    *,
    worst: int = 8,
    method: str = "auto",
    log: bool = True,
) -> Path:
    """Write the HTML report of the result file `results` (scored by `model`, registry entry `info`).

    Args:
        path: the .html file to write (replaced if it exists: the caller checks overwriting).
        results: the job's CSV or Parquet result.
        info: the metric's registry entry (which way is better, its inputs, its result fields).
        model: the loaded metric that scored the job (explanations use it).
        summary: the job summary (`semantic_iqa.jobs.summary`), shown as the settings; its
            options are the scoring options the explanations use.
        worst: how many of the worst-scoring items get an explanation map (0 = none).
        method: explanation method ("auto", "occlusion", "gradients"; see `semantic_iqa.explain`).
        log: print one progress line per explained item to stderr.

    Returns:
        The written path.
    """
    from ..explanation import has_random_weights

    shown = [field for field in info.result_fields if field.in_report and field.type != "floats"]
    flagged = [field for field in info.result_fields if field.flag and field.type == "bool"]
    kinds = {"id": "str", **dict.fromkeys(info.inputs, "str"), "score": "float", "status": "str"}
    kinds.update({field.name: field.type for field in (*shown, *flagged)})
    rows = read_result_rows(results, kinds)
    ok = [row for row in rows if row["status"] == "ok" and row["score"] is not None]
    failed = [row for row in rows if row["status"] != "ok"]
    ok.sort(key=lambda row: row["score"], reverse=not info.higher_is_better)  # worst first
    random_weights = has_random_weights(model)

    sections = [_header(info, summary, len(ok), len(failed), random_weights)]
    sections.append(_distribution(info, [row["score"] for row in ok], random_weights))
    explained = _explained(info, model, ok[:worst], shown, summary, method, log)
    sections.append(_worst_section(info, explained, worst, len(ok)))
    image_names = image_columns(info)
    for field in flagged:
        others = [other.name for other in shown if other is not field]
        sections.append(_listed(field.flag or "", [row for row in ok if row.get(field.name)],
                                ["id", *image_names, "score", *others]))  # fmt: skip
    sections.append(_listed("Failed items", failed, ["id", *image_names, "status"]))
    return _write_page(Path(path), info, sections)


def _write_page(path: Path, info: MetricInfo, sections: list[str]) -> Path:
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='generator' content='{GENERATOR}'>"
        f"<title>{html.escape(info.title)} report</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(page, encoding="utf-8")
    os.replace(staging, path)  # never a half-written report under the real name
    return path


def _explained(
    info: MetricInfo,
    model: Any,
    rows: list[dict[str, Any]],
    shown: list[ResultField],
    summary: Mapping[str, Any],
    method: str,
    log: bool,
) -> list[str]:
    """The HTML of each of `rows` (worst first) with its explanation map, or why it has none."""
    from ..explanation import explain

    image_names = image_columns(info)
    # The job's scoring options (those the metric declares), so the maps explain the scores shown.
    options = {k: v for k, v in (summary.get("options") or {}).items() if v is not None and info.option(k)}
    explained = []
    for number, row in enumerate(rows, start=1):
        started = time.perf_counter()
        texts = {name: row.get(name) for name in info.inputs if name not in image_names}  # e.g. the prompt
        try:
            explanation = explain(
                *[row[name] for name in image_names], metric=info.name, model=model, method=method, **texts, **options
            )
        except SemanticIQAError as exc:  # e.g. an input file removed since scoring: say so, go on
            explained.append(_item_html(row, image_names, shown, None, str(exc)))
            continue
        figure = _png_data_uri(explanation.figure(), THUMBNAIL_DPI)
        explained.append(_item_html(row, image_names, shown, figure, None))
        if log:
            print(
                f"report: explained {number}/{len(rows)} ({row['id']}) in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return explained


def _header(info: MetricInfo, summary: Mapping[str, Any], ok: int, failed: int, random_weights: bool) -> str:
    direction = "higher is better" if info.higher_is_better else "lower is better"
    low, high = info.score_range
    scale = f"{low:g} to {high:g}" if low is not None and high is not None else "unbounded"
    settings = {
        "metric": f"{info.title} ({info.name})",
        "scores": f"{scale}, {direction}",
        "weights": summary.get("weights") or "(default)",
        "revision": summary.get("revision"),
        "options": ", ".join(f"{k}={v}" for k, v in (summary.get("options") or {}).items()) or "(defaults)",
        "semantic-iqa": summary.get("package_version"),
        "engine": summary.get("engine"),
        "result file": summary.get("out"),
        "items": f"{ok} scored, {failed} failed",
        "mean score": _fmt(summary.get("mean_score")),
        "wall time": f"{summary.get('wall_time_s', 0):.1f} s",
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in settings.items() if v
    )
    warning = (
        "<p class='warning'>RANDOM WEIGHTS: this model has random (tiny or test) weights. Its scores and maps "
        "check the plumbing only and mean nothing.</p>"
        if random_weights
        else ""
    )
    return f"<h1>{html.escape(info.title)}: scoring report</h1>{warning}<table>{table}</table>"


def _distribution(info: MetricInfo, scores: list[float], random_weights: bool) -> str:
    from ..explanation.figure import new_figure

    if not scores:
        return "<h2>Score distribution</h2><p>No item was scored.</p>"
    figure = new_figure(7.5, 3.0)
    axis = figure.subplots()
    axis.hist(scores, bins=min(40, max(5, len(scores) // 3)), color="#4477aa", edgecolor="white")
    axis.set_xlabel(f"{info.title} score ({'higher' if info.higher_is_better else 'lower'} is better)")
    axis.set_ylabel("items")
    title = f"{len(scores)} items, median {statistics.median(scores):.3f}"
    axis.set_title(("RANDOM WEIGHTS - " if random_weights else "") + title, fontsize=10)
    return f"<h2>Score distribution</h2><img alt='histogram of scores' src='{_png_data_uri(figure, 100)}'>"


def _worst_section(info: MetricInfo, items: list[str], worst: int, total: int) -> str:
    if worst == 0:
        return ""
    end, better = ("lowest", "higher") if info.higher_is_better else ("highest", "lower")
    # Red (positive) = the region made the score worse, whichever way that is (docs/explain.md).
    worse, improve = ("lowered", "raise") if info.higher_is_better else ("raised", "lower")
    improved = "raised" if info.higher_is_better else "lowered"
    intro = (
        f"<p class='muted'>The {len(items)} {end}-scoring of {total} items ({better} is better), worst first. "
        f"Red in a map: the region {worse} the score (restoring it would {improve} it); blue: it {improved} the "
        "score. Maps are computed through the metric itself (see the explain docs).</p>"
    )
    return f"<h2>{end.capitalize()} scores, and where the score was lost</h2>{intro}" + "".join(items)


def _item_html(
    row: Mapping[str, Any],
    image_names: list[str],
    shown: list[ResultField],
    figure_uri: str | None,
    error: str | None,
) -> str:
    facts = [f"<b>{html.escape(str(row['id']))}</b>", f"score {_fmt(row['score'])}"]
    for field in shown:  # the metric's own figures, as it names them (`ResultField.label`, `.states`)
        value = row.get(field.name)
        if value is not None:
            text = field.states[bool(value)] if field.type == "bool" else _fmt(value)
            facts.append(html.escape(f"{field.label or field.name} {text}"))
    paths = "<br>".join(f"{name}: <code>{html.escape(str(row[name]))}</code>" for name in image_names)
    body = (
        f"<img alt='explanation of {html.escape(str(row['id']))}' src='{figure_uri}'>"
        if figure_uri
        else f"<p class='warning'>no map: {html.escape(error or '')}</p>"
    )
    return f"<div class='item'><p>{' | '.join(facts)}<br><span class='muted'>{paths}</span></p>{body}</div>"


def _listed(title: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p>None.</p>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(name)))}</td>" for name in columns) + "</tr>"
        for row in rows[:LISTED_ROWS]
    )
    more = (
        f"<p class='muted'>... and {len(rows) - LISTED_ROWS} more (see the result file).</p>"
        if len(rows) > LISTED_ROWS
        else ""
    )
    return f"<h2>{html.escape(title)} ({len(rows)})</h2><table><tr>{head}</tr>{body}</table>{more}"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _png_data_uri(figure: Any, dpi: int) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
