"""BAPPS 2AFC (val): the official 2AFC score per subset, the mean of the six subsets, the pooled mean and
hard accuracy; every metric enters as a distance (a score that is higher-is-better as its negative)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.bench_metric import BenchMetric
from benchmarks.published import BAPPS_SUBSETS, OVERALL
from semantic_iqa.evaluation import two_afc, two_afc_hard_accuracy


# -- BAPPS ---------------------------------------------------------------------------------
def run_bapps(root: Path, metrics: list[BenchMetric]) -> dict:
    base = root / "2afc" / "val" if (root / "2afc" / "val").is_dir() else root
    results: dict[str, dict] = {m.name: {} for m in metrics}
    pooled: dict[str, list[np.ndarray]] = {m.name: [] for m in metrics}
    for subset in BAPPS_SUBSETS:
        folder = base / subset
        if not folder.is_dir():
            print(f"BAPPS: subset {subset} not found under {base}, skipped")
            continue
        names = sorted(p.stem for p in (folder / "judge").glob("*.npy"))
        judge = np.asarray([float(np.load(folder / "judge" / f"{n}.npy").ravel()[0]) for n in names])
        ref = [folder / "ref" / f"{n}.png" for n in names]
        for metric in metrics:
            # A distance as it is; a higher-is-better score as its negative (the row's direction).
            d0 = metric.distance(ref, [folder / "p0" / f"{n}.png" for n in names])
            d1 = metric.distance(ref, [folder / "p1" / f"{n}.png" for n in names])
            per_triplet = two_afc(d0, d1, judge)
            pooled[metric.name].append(per_triplet)
            results[metric.name][subset] = {
                "2afc": 100 * float(per_triplet.mean()),
                "triplets": len(names),
                "hard_accuracy": 100 * two_afc_hard_accuracy(d0, d1, judge),
            }
    for metric in metrics:
        subsets = results[metric.name]
        if subsets:
            subsets[OVERALL] = {"2afc": float(np.mean([s["2afc"] for s in subsets.values()]))}
            subsets["pooled"] = {"2afc": 100 * float(np.concatenate(pooled[metric.name]).mean())}
    return results
