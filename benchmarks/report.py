"""run.py's outputs: report.md (tables), results.json (every figure and the environment), and the plots."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

from benchmarks import agiqa, nights
from benchmarks.published import BAPPS_SUBSETS, OVERALL, PUBLISHED_2AFC, PUBLISHED_LOVIF_TEST
from semantic_iqa.devices import describe_device


def environment(device: torch.device) -> dict:
    packages = {}
    for name in ("semantic-iqa", "torch", "torchvision", "timm", "transformers", "piq", "pyiqa", "numpy", "scipy"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "packages": packages,
        "device": f"{device} ({describe_device(device)})",
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "commit": commit,
    }


def row_labels(results: dict) -> dict[str, str]:
    """Row name -> its label, with the random-weights note where there is one."""
    return {m["name"]: m.get("label", m["name"]) + (f" ({m['note']})" if m["note"] else "") for m in results["metrics"]}


def lovif_lines(results: dict) -> list[str]:
    lines: list[str] = []
    labels = row_labels(results)
    for split, split_results in results.get("lovif", {}).items():
        if "submission" in split_results:
            lines += [f"## LoViF {split}: no labels; submission written to `{split_results['submission']}`", ""]
            continue
        lines += [
            f"## LoViF {split} ({next(iter(split_results.values()))['pairs']} pairs)",
            "",
            "| metric | implementation | correlated as | SROCC | PLCC | PLCC (logistic fit) | Final |",
            "|---|---|---|---|---|---|---|",
        ]
        for metric in results["metrics"]:
            r = split_results.get(metric["name"])
            if r:
                sign = "score" if metric.get("higher_is_better", True) else "−distance"
                lines.append(
                    f"| {labels[metric['name']]} | {metric['implementation']} | {sign} | {r['srocc']:.4f} | "
                    f"{r['plcc']:.4f} | {r['plcc_logistic']:.4f} | {r['final']:.4f} |"
                )
        lines += [
            "",
            "Correlated as −distance: a lower-is-better metric (a distance) enters as its negative, so that a "
            "positive SROCC/PLCC means agreement with people for every row.",
            "",
        ]
    published = "; ".join(
        f"{k}: SROCC {v['srocc']}, PLCC {v['plcc']}, Final {v['final']}" for k, v in PUBLISHED_LOVIF_TEST.items()
    )
    return [*lines, f"Published (test split, not computed here): {published}", ""]


def bapps_lines(results: dict) -> list[str]:
    if not results.get("bapps"):
        return []
    labels = row_labels(results)
    columns = [*BAPPS_SUBSETS, OVERALL, "pooled"]
    lines = [
        "## BAPPS 2AFC (val), 2AFC score %",
        "",
        "| metric | " + " | ".join(columns) + " | hard acc. (mean) |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for metric in results["metrics"]:
        r = results["bapps"].get(metric["name"], {})
        if r:
            cells = [f"{r[c]['2afc']:.1f}" if c in r else "-" for c in columns]
            hard = np.mean([r[s]["hard_accuracy"] for s in BAPPS_SUBSETS if s in r])
            lines.append(f"| {labels[metric['name']]} | " + " | ".join(cells) + f" | {hard:.1f} |")
    lines += [
        "",
        "Published figures (labelled with their source; not computed here):",
        "",
        "| source | " + " | ".join([*BAPPS_SUBSETS, "mean of six / overall"]) + " |",
        "|---" * (len(BAPPS_SUBSETS) + 2) + "|",
    ]
    for source, figures in PUBLISHED_2AFC.items():
        cells = [str(figures.get(s, "-")) for s in BAPPS_SUBSETS]
        lines.append(
            f"| {source} | " + " | ".join(cells) + f" | {figures.get('mean of six', figures.get('overall'))} |"
        )
    return [*lines, ""]


def speed_lines(results: dict) -> list[str]:
    if not results.get("speed"):
        return []
    plain = {m["name"]: m.get("label", m["name"]) for m in results["metrics"]}
    lines = [
        "## Speed",
        "",
        "Random square pairs, the same for every metric; one warm-up call per point, then rounds over all "
        "points, each timing every point with `torch.utils.benchmark.Timer.blocked_autorange`: median over "
        "the rounds, with the interquartile range and the extremes. Peak host memory: the process's peak "
        "after the point's warm-up.",
        "",
        "| metric | size px | batch | pairs/s (median) | pairs/s IQR | pairs/s min-max | s/image | rounds "
        "(calls) | peak host MiB | peak GPU MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["speed"]:
        gpu = f"{r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else "-"
        flag = " (RANDOM WEIGHTS)" if r.get("random_weights") else ""
        lines.append(
            f"| {plain.get(r['metric'], r['metric'])}{flag} | {r['size']} | {r['batch']} | "
            f"{r['pairs_per_s']:.4g} | {r['pairs_per_s_q1']:.4g}-{r['pairs_per_s_q3']:.4g} | "
            f"{r['pairs_per_s_min']:.4g}-{r['pairs_per_s_max']:.4g} | {r['s_per_image']:.4g} | "
            f"{r['samples']} ({r['calls']}) | {r['peak_host_mib']:.0f} | {gpu} |"
        )
    return [*lines, ""]


def write_report(out: Path, results: dict) -> None:
    """report.md, results.json and the plots (when matplotlib is installed) into `out`."""
    lines = ["# Benchmark report", "", f"Environment: `{json.dumps(results['environment'])}`", ""]
    lines += lovif_lines(results)
    lines += bapps_lines(results)
    if results.get("nights"):
        lines += nights.report_lines(results["nights"], results["metrics"], row_labels(results))
    if results.get("agiqa"):
        lines += agiqa.report_lines(results["agiqa"])
    lines += speed_lines(results)
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    try:
        from benchmarks import plots
    except ImportError as exc:  # matplotlib is optional (the bench extra)
        print(f"no plots: {exc}")
        return
    plots.plot_all(results, out)
