"""What every benchmark figure shares: size, style, the random-weights title, labels and log ticks.

Any figure that shows a row computed with random weights says so in its title (`title`):
"RANDOM WEIGHTS — plumbing check, not a result". Only matplotlib's Agg canvas is used.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import matplotlib
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RANDOM_TITLE = "RANDOM WEIGHTS — plumbing check, not a result"
WIDTH_IN = 8.0
DPI = 150
CHANCE_2AFC = 50.0  # %: a metric that guesses agrees with half of the judgements
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


def grouped_bars(axis, series: list, groups: list[str]) -> None:
    """One bar per (series, group): ours filled, published ones hatched; `series` = (kind, label, values, key).

    Series of one key (a metric, ours and published) share a colour.
    """
    colours = {key: f"C{i % 10}" for i, key in enumerate(dict.fromkeys(s[3] for s in series))}
    width = 0.84 / max(1, len(series))
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
