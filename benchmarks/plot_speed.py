"""The throughput figure: pairs/s against batch size per metric (log-log), median with interquartile error bars."""

from __future__ import annotations

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from benchmarks.plot_style import _figure, _plain, _style, _title, log_ticks, metric_labels, random_metrics


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
