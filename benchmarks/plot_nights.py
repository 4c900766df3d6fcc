"""The NIGHTS 2AFC figure: ours solid per split, the published DreamSim figures hatched beside, chance dashed."""

from __future__ import annotations

from matplotlib import ticker
from matplotlib.figure import Figure

from benchmarks.plot_style import (
    CHANCE_2AFC,
    _figure,
    _style,
    _title,
    grouped_bars,
    metric_labels,
    published,
    random_metrics,
)


def nights_series(results: dict) -> list[tuple[str, str, dict[str, float], str]]:
    """(kind "ours"/"published", legend label, value per group, colour key), a published figure
    right after the row of ours it is comparable with (same metric and model type)."""
    nights = results["nights"]
    labels = metric_labels(results)
    random = random_metrics(results)
    variants = {m["name"]: m.get("variant") for m in results.get("metrics", [])}
    entries = published(results).get("nights_2afc", [])
    ours = [n for n in labels if n in nights["scores"]] + [n for n in nights["scores"] if n not in labels]
    series, claimed = [], set()
    for name in ours:
        values = {g: nights["scores"][name][g]["2afc"] for g in nights["groups"] if g in nights["scores"][name]}
        flag = " [random weights]" if name in random else ""
        series.append(("ours", f"{labels.get(name, name)}{flag}", values, name))
        for entry in entries:
            if entry.get("metric") == name and entry.get("variant") == variants.get(name):
                series.append(("published", f"{entry['source']}: published", entry["figures"], name))
                claimed.add(entry["source"])
    for entry in entries:
        if entry["source"] not in claimed:
            series.append(("published", f"{entry['source']}: published", entry["figures"], entry["source"]))
    return series


def plot_nights_2afc(results: dict) -> Figure:
    """2AFC per NIGHTS split (and test by ImageNet or not) for every metric, beside the published figures."""
    nights = results["nights"]
    groups = list(nights["groups"])
    series = [s for s in nights_series(results) if any(g in s[2] for g in groups)]
    with _style():
        figure = _figure(5.4)
        axis = figure.subplots()
        grouped_bars(axis, series, groups)
        axis.axhline(CHANCE_2AFC, color="0.3", ls="--", lw=1.2, label=f"chance {CHANCE_2AFC:g} %", zorder=3)
        axis.set_xticks(range(len(groups)), [g.replace(" (", "\n(") for g in groups])
        axis.set_xlim(-0.55, len(groups) - 0.45)
        axis.set_ylim(0, 100)
        axis.yaxis.set_major_locator(ticker.MultipleLocator(10))
        axis.grid(axis="y", alpha=0.3, zorder=0)
        axis.set_xlabel(f"NIGHTS split (triplets with at least 6 votes; {nights['triplets']} scored)")
        axis.set_ylabel("2AFC score (% agreement with people)")
        handles, names = axis.get_legend_handles_labels()
        order = sorted(range(len(names)), key=lambda i: names[i].startswith("chance"))  # bars first
        figure.legend(
            [handles[i] for i in order], [names[i] for i in order], loc="outside lower center", ncols=2, frameon=False
        )
        _title(
            figure,
            "NIGHTS 2AFC: ours solid, published (DreamSim README) hatched",
            bool(random_metrics(results) & set(nights["scores"])),
        )
    return figure
