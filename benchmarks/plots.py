"""The benchmark figures, drawn from the dict that `benchmarks/run.py` writes to results.json.

    python benchmarks/plots.py results/results.json --out figures/

`plot_all(results, out)` writes every figure the results allow and returns their paths:
`lovif_<split>_scatter.png` (prediction against MOS, one panel per metric),
`bapps_2afc.png` (2AFC per subset: our rows solid, published figures hatched beside them,
a dashed 50 % chance line and the human ceiling), `throughput.png` (pairs/s against batch
size, log scales, median with interquartile error bars) and `agiqa_scatter.png`. One
function per figure (`plot_lovif_scatter`, `plot_bapps_2afc`, `plot_throughput`,
`plot_agiqa_scatter`) returns the matplotlib Figure without saving it.

Any figure that shows a row computed with random weights (a `make-tiny` DSS-SQA, or
`--random-baselines`) says so in its title: "RANDOM WEIGHTS — plumbing check, not a result".

Only matplotlib's Agg canvas is used (no pyplot, no global backend switch). Figures are
8 in wide, saved at 150 dpi (1200 px): legible when a page shows them ~800 px wide.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RANDOM_TITLE = "RANDOM WEIGHTS — plumbing check, not a result"
WIDTH_IN = 8.0
DPI = 150
CHANCE_2AFC = 50.0  # %: a metric that guesses agrees with half of the judgements
# The keys of run.py's BAPPS results (kept here so that drawing needs no torch import).
BAPPS_SUBSETS = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
OVERALL = "overall (mean of subsets)"
MEAN_GROUP = "mean of six"
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


# -- helpers -------------------------------------------------------------------------------
def is_random(entry: dict) -> bool:
    """A row's random-weights flag; results files from before the flag carry it in the note only."""
    if "random_weights" in entry:
        return bool(entry["random_weights"])
    return "RANDOM" in str(entry.get("note", "")).upper()


def random_metrics(results: dict) -> set[str]:
    """Names of the metric rows computed with random weights."""
    return {m["name"] for m in results.get("metrics", []) if is_random(m)}


def metric_labels(results: dict) -> dict[str, str]:
    """Row name -> label naming the implementation and its version, e.g. 'SSIM (piq 0.8.0)'."""
    return {m["name"]: m.get("label", m["name"]) for m in results.get("metrics", [])}


def published(results: dict) -> dict:
    """The published figures carried by results.json; older files lack them: take run.py's."""
    if "published" in results:
        return results["published"]
    from benchmarks import run  # heavier (torch); only for results files written before the field

    return run.published()


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def _figure(height_in: float) -> Figure:
    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _title(figure: Figure, title: str, random: bool) -> None:
    if random:
        figure.suptitle(f"{RANDOM_TITLE}\n{title}", color="firebrick", fontweight="bold")
    else:
        figure.suptitle(title)


def _plain(value: float) -> str:
    """1-2-5 tick values without exponents: 0.05, 0.2, 1, 20, 1,000."""
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "0", "-0") else f"{value:.1e}"


def log_ticks(low: float, high: float, most: int = 8) -> list[float]:
    """Major ticks for a log axis over [low, high]: 1-2-5 steps, thinned to decades (then every
    other decade ...) when there would be more than `most`; plain linear steps for a narrow range."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for steps in ((1, 2, 5), (1,)):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in steps]
        ticks = [t for t in ticks if low <= t <= high]
        if len(ticks) <= most:
            break
    stride = 1
    while len(ticks[::stride]) > most:
        stride += 1
    ticks = ticks[::stride]
    if len(ticks) < 2:  # less than a 1-2-5 step across the range: nice linear values inside it
        ticks = [t for t in ticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)]
        ticks = [float(t) for t in ticks if low <= t <= high and t > 0]
    return ticks


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
    colours = {key: f"C{i % 10}" for i, key in enumerate(dict.fromkeys(s[3] for s in series))}
    groups = [*BAPPS_SUBSETS, MEAN_GROUP]
    width = 0.84 / max(1, len(series))
    with _style():
        figure = _figure(5.4)
        axis = figure.subplots()
        for index, (kind, label, values, key) in enumerate(series):
            xs = [g + (index - (len(series) - 1) / 2) * width for g, group in enumerate(groups) if group in values]
            heights = [values[group] for group in groups if group in values]
            colour = colours[key]
            if kind == "ours":
                axis.bar(xs, heights, width, color=colour, edgecolor=colour, label=label, zorder=2)
            else:
                axis.bar(
                    xs, heights, width, facecolor="white", edgecolor=colour, hatch="////", lw=0.8, label=label, zorder=2
                )
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


# -- speed ---------------------------------------------------------------------------------
def plot_throughput(results: dict) -> Figure:
    """Pairs/s against batch size per metric (log-log), median with interquartile error bars."""
    rows = results["speed"]
    labels = metric_labels(results)
    random = random_metrics(results)
    names = list(dict.fromkeys(r["metric"] for r in rows))
    row_random = {
        r["metric"]: r.get("random_weights", r["metric"] in random or r["metric"].split(",")[0] in random) for r in rows
    }
    lows, highs = [], []
    with _style():
        figure = _figure(5.0)
        axis = figure.subplots()
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        for index, name in enumerate(names):
            points = sorted((r for r in rows if r["metric"] == name), key=lambda r: r["batch"])
            batch = np.array([r["batch"] for r in points], dtype=float)
            median = np.array([r["pairs_per_s"] for r in points])
            low = np.array([r.get("pairs_per_s_q1", r["pairs_per_s"]) for r in points])
            high = np.array([r.get("pairs_per_s_q3", r["pairs_per_s"]) for r in points])
            flag = " [random weights]" if row_random[name] else ""
            axis.errorbar(
                batch,
                median,
                yerr=np.vstack([median - low, high - median]),
                marker="o",
                ms=4,
                lw=1.4,
                capsize=3,
                color=f"C{index % 10}",
                label=f"{labels.get(name, name)}{flag}",
            )
            lows.append(low.min())
            highs.append(high.max())
        low, high = min(lows) / 1.5, max(highs) * 1.5
        axis.set_ylim(low, high)
        axis.yaxis.set_major_locator(ticker.FixedLocator(log_ticks(low, high)))
        axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _plain(v)))
        axis.yaxis.set_minor_locator(ticker.LogLocator(subs="auto"))
        axis.yaxis.set_minor_formatter(ticker.NullFormatter())
        batches = sorted({r["batch"] for r in rows})
        axis.set_xlim(batches[0] / 1.4, batches[-1] * 1.4)
        axis.xaxis.set_major_locator(ticker.FixedLocator(batches))
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.xaxis.set_minor_locator(ticker.NullLocator())
        axis.grid(which="major", alpha=0.3)
        axis.set_xlabel("batch size (pairs per call, log scale)")
        axis.set_ylabel("throughput (pairs/s, log scale)")
        figure.legend(loc="outside lower center", ncols=2, frameon=False)
        environment = results.get("environment", {})
        device = environment.get("device", "")
        device = device if len(device) <= 60 else device[:57] + "..."
        if environment.get("threads") and device.startswith("cpu"):
            device += f", {environment['threads']} thread{'s' if environment['threads'] > 1 else ''}"
        size = rows[0].get("size", 224)
        samples = sorted({r["samples"] for r in rows if "samples" in r})
        counted = f"{samples[0]}" if len(samples) == 1 else f"{samples[0]}–{samples[-1]}" if samples else ""
        spread = (
            f"median of {counted} timing rounds, bars: interquartile range"
            if samples
            else "median (no spread recorded)"
        )
        _title(figure, f"Throughput on {device}, random {size}×{size} px pairs\n{spread}", any(row_random.values()))
    return figure


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
