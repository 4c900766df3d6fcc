"""The benchmark figures, drawn from the dict that `benchmarks/run.py` writes to results.json.

    python benchmarks/plots.py results/results.json --out figures/

`plot_all(results, out)` writes every figure the results allow and returns their paths:
`lovif_<split>_scatter.png` (prediction against MOS, one panel per metric),
`bapps_2afc.png` (2AFC per subset: our rows solid, published figures hatched beside them,
a dashed 50 % chance line and the human ceiling), `throughput.png` (pairs/s against batch
size, log scales, median with interquartile error bars), `nights_2afc.png` (NIGHTS 2AFC per
split, the published DreamSim figures hatched beside; `benchmarks/plot_nights.py`) and
`agiqa_scatter.png`. One function per figure (`plot_lovif_scatter`, `plot_bapps_2afc`,
`plot_throughput`, `plot_nights_2afc`, `plot_agiqa_scatter`) returns the matplotlib Figure
without saving it.

Any figure that shows a row computed with random weights (a `make-tiny` DSS-SQA or DreamSim,
or `--random-baselines`) says so in its title: "RANDOM WEIGHTS — plumbing check, not a result"
(`benchmarks/plot_style.py`, shared by every figure).

Only matplotlib's Agg canvas is used (no pyplot, no global backend switch). Figures are
8 in wide, saved at 150 dpi (1200 px): legible when a page shows them ~800 px wide.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from matplotlib import ticker
from matplotlib.figure import Figure

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.plot_nights import plot_nights_2afc  # noqa: E402
from benchmarks.plot_speed import plot_throughput  # noqa: E402
from benchmarks.plot_style import (  # noqa: E402, F401  (the names figures and tests use, here as before)
    CHANCE_2AFC,
    DPI,
    RANDOM_TITLE,
    STYLE,
    WIDTH_IN,
    _figure,
    _plain,
    _style,
    _title,
    grouped_bars,
    is_random,
    log_ticks,
    metric_labels,
    published,
    random_metrics,
)

# The keys of run.py's BAPPS results (kept here so that drawing needs no torch import).
BAPPS_SUBSETS = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
OVERALL = "overall (mean of subsets)"
MEAN_GROUP = "mean of six"


# -- LoViF ---------------------------------------------------------------------------------
def plot_lovif_scatter(results: dict, split: str) -> Figure:
    """Prediction against MOS for every metric on one labelled LoViF split."""
    split_results = results["lovif"][split]
    labels = metric_labels(results)
    random = random_metrics(results)
    directions = {m["name"]: m.get("higher_is_better", True) for m in results.get("metrics", [])}
    names = [n for n in labels if n in split_results] + [n for n in split_results if n not in labels]
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    with _style():
        figure = _figure(0.9 + 2.5 * rows)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for axis, name in zip(axes, names, strict=False):
            r = split_results[name]
            axis.scatter(r["labels"], r["predictions"], s=14, alpha=0.75, color="C0", edgecolors="none")
            flag = " [random]" if name in random else ""
            axis.set_title(f"{labels.get(name, name)}{flag}\nSROCC {r['srocc']:.3f} · PLCC {r['plcc']:.3f}")
            axis.set_xlabel("MOS (0–5 scale)")
            axis.set_ylabel(_score_label(name, directions.get(name, True)))
            axis.grid(alpha=0.3)
        for axis in axes[len(names) :]:
            axis.set_visible(False)
        pairs = next(iter(split_results.values()))["pairs"]
        _title(figure, f"LoViF {split}: prediction against MOS ({pairs} pairs)", bool(random & set(names)))
    return figure


def _score_label(name: str, higher_is_better: bool) -> str:
    base = name.split(" (")[0]
    if base == "PSNR":
        return "PSNR (dB, higher = better)"
    if not higher_is_better:
        return f"−{base} distance (higher = better)"
    return f"{base} score (higher = better)"


# -- BAPPS ---------------------------------------------------------------------------------
def plot_bapps_2afc(results: dict) -> Figure:
    """2AFC per BAPPS subset and their mean: ours solid, published figures hatched beside the
    matching row, a dashed 50 % chance line and the human ceiling (line: overall; black
    segments: per subset, where published)."""
    bapps = {name: rows for name, rows in results["bapps"].items() if rows}
    labels = metric_labels(results)
    random = random_metrics(results)
    figures = published(results)
    ours = [n for n in labels if n in bapps] + [n for n in bapps if n not in labels]
    series: list[tuple[str, str, dict, str]] = []  # (kind, legend label, values per group, colour key)
    claimed: set[str] = set()
    for name in ours:
        values = {s: bapps[name][s]["2afc"] for s in BAPPS_SUBSETS if s in bapps[name]}
        if OVERALL in bapps[name]:
            values[MEAN_GROUP] = bapps[name][OVERALL]["2afc"]
        flag = " [random weights]" if name in random else ""
        series.append(("ours", f"{labels.get(name, name)}{flag}", values, name))
        for entry in figures.get("bapps_2afc", []):
            if entry.get("metric") == name:
                series.append(("published", f"{entry['source']}: published", _published_values(entry), name))
                claimed.add(entry["source"])
    for entry in figures.get("bapps_2afc", []):
        if entry["source"] not in claimed:
            key = entry.get("metric") or entry["source"]
            series.append(("published", f"{entry['source']}: published", _published_values(entry), key))
    groups = [*BAPPS_SUBSETS, MEAN_GROUP]
    with _style():
        figure = _figure(5.4)
        axis = figure.subplots()
        grouped_bars(axis, series, groups)
        axis.axhline(CHANCE_2AFC, color="0.3", ls="--", lw=1.2, label=f"chance {CHANCE_2AFC:g} %", zorder=3)
        human = figures.get("bapps_human", {})
        human_figures = human.get("figures", {})
        if "overall" in human_figures:
            axis.axhline(
                human_figures["overall"],
                color="black",
                ls="-.",
                lw=1.2,
                label=f"human ceiling {human_figures['overall']:g} % (LPIPS paper, overall)",
                zorder=3,
            )
        per_subset = [(g, human_figures[s]) for g, s in enumerate(BAPPS_SUBSETS) if s in human_figures]
        if per_subset:
            axis.hlines(
                [v for _, v in per_subset],
                [g - 0.46 for g, _ in per_subset],
                [g + 0.46 for g, _ in per_subset],
                color="black",
                lw=2.2,
                label="human, per subset (LPIPS paper)",
                zorder=4,
            )
        axis.axvline(len(BAPPS_SUBSETS) - 0.5, color="0.6", lw=0.8, ls=":")
        axis.set_xticks(range(len(groups)), [*BAPPS_SUBSETS, "mean of six\n(overall)"])
        axis.set_xlim(-0.55, len(groups) - 0.45)
        axis.set_ylim(0, 100)
        axis.yaxis.set_major_locator(ticker.MultipleLocator(10))
        axis.grid(axis="y", alpha=0.3, zorder=0)
        axis.set_xlabel("BAPPS 2AFC validation subset")
        axis.set_ylabel("2AFC score (% agreement with people)")
        handles, names = axis.get_legend_handles_labels()
        order = sorted(range(len(names)), key=lambda i: names[i].startswith(("chance", "human")))  # bars first
        figure.legend(
            [handles[i] for i in order], [names[i] for i in order], loc="outside lower center", ncols=2, frameon=False
        )
        triplets = (
            sum(bapps[ours[0]][s].get("triplets", 0) for s in BAPPS_SUBSETS if s in bapps[ours[0]]) if ours else 0
        )
        _title(
            figure,
            f"BAPPS 2AFC (val, {triplets} triplets): ours solid, published hatched",
            bool(random & set(ours)),
        )
    return figure


def _published_values(entry: dict) -> dict:
    values = {s: entry["figures"][s] for s in BAPPS_SUBSETS if s in entry["figures"]}
    mean = entry["figures"].get("mean of six", entry["figures"].get("overall"))
    if mean is not None:
        values[MEAN_GROUP] = mean
    return values


# -- AGIQA ---------------------------------------------------------------------------------
def plot_agiqa_scatter(results: dict) -> Figure:
    """MST-CLIPIQA's prediction against each AGIQA-3K label column."""
    result = results["agiqa"]
    columns = [c for c in ("mos_quality", "mos_align") if c in result]
    with _style():
        figure = _figure(3.6)
        axes = figure.subplots(1, max(1, len(columns)), squeeze=False)[0]
        for axis, column in zip(axes, columns, strict=False):
            axis.scatter(result[column]["labels"], result["predictions"], s=14, alpha=0.75, edgecolors="none")
            axis.set_title(f"{column}: SRCC {result[column]['srocc']:.3f} · PLCC {result[column]['plcc']:.3f}")
            axis.set_xlabel(f"{column} (MOS, 0–5 scale)")
            axis.set_ylabel("predicted quality (1–5)")
            axis.grid(alpha=0.3)
        _title(figure, f"AGIQA-3K: {result['metric']} ({result.get('images', '?')} images)", is_random(result))
    return figure


# -- all -----------------------------------------------------------------------------------
def plot_all(results: dict, out: Path) -> list[Path]:
    """Write every figure `results` (run.py's results.json, as a dict) allows into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Figure]] = []
    for split, split_results in results.get("lovif", {}).items():
        if "submission" not in split_results and split_results:
            figures.append((f"lovif_{split}_scatter.png", plot_lovif_scatter(results, split)))
    if any(results.get("bapps", {}).values()):
        figures.append(("bapps_2afc.png", plot_bapps_2afc(results)))
    if results.get("nights", {}).get("scores"):
        figures.append(("nights_2afc.png", plot_nights_2afc(results)))
    if results.get("speed"):
        figures.append(("throughput.png", plot_throughput(results)))
    if results.get("agiqa"):
        figures.append(("agiqa_scatter.png", plot_agiqa_scatter(results)))
    written = []
    for name, figure in figures:
        figure.savefig(out / name, dpi=DPI)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description="Draw the benchmark figures from a results.json.")
    parser.add_argument("results", type=Path, help="results.json written by benchmarks/run.py")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    args = parser.parse_args(argv)
    written = plot_all(json.loads(args.results.read_text(encoding="utf-8")), args.out)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
