"""LoViF (semantic quality): per labelled split, SROCC, PLCC (raw and after a logistic fit) and Final per
metric; a challenge submission from the first metric (DSS-SQA) for a split without labels."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import torch

from benchmarks.bench_metric import BenchMetric
from semantic_iqa.evaluation import agreement, logistic_plcc
from semantic_iqa.metrics.dss_sqa.data import DIST_FOLDERS, IMAGE_SUFFIXES, REF_FOLDERS, read_pairs


# -- LoViF ---------------------------------------------------------------------------------
def lovif_splits(root: Path) -> dict[str, Path]:
    splits = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and _has_pairs(p)}
    return splits or ({root.name: root} if _has_pairs(root) else {})


def _has_pairs(folder: Path) -> bool:
    return any((folder / n).is_dir() for n in REF_FOLDERS) and any((folder / n).is_dir() for n in DIST_FOLDERS)


def run_lovif(root: Path, metrics: list[BenchMetric], out: Path, device: torch.device) -> dict:
    results = {}
    for split, folder in lovif_splits(root).items():
        tables = [p for p in folder.iterdir() if p.suffix.lower() in (".xlsx", ".csv")]
        if not tables:
            results[split] = {"submission": write_submission(folder, metrics[0], out / f"submission_{split}", device)}
            continue
        pairs = read_pairs(folder)
        split_results = {}
        for metric in metrics:
            start = time.perf_counter()
            quality = metric.quality(pairs.ref_paths, pairs.dist_paths)
            seconds = time.perf_counter() - start
            figures = agreement(quality, pairs.scores)
            figures["plcc_logistic"] = logistic_plcc(quality, pairs.scores)
            split_results[metric.name] = {
                **figures,
                "pairs": len(pairs),
                "seconds": seconds,
                "predictions": quality.tolist(),
                "labels": pairs.scores.tolist(),
            }
        results[split] = split_results
    return results


def write_submission(folder: Path, metric: BenchMetric, out: Path, device: torch.device) -> str:
    """Challenge submission for a split without labels: picture_name,Score and readme.txt."""
    ref_dir = next(folder / n for n in REF_FOLDERS if (folder / n).is_dir())
    dist_dir = next(folder / n for n in DIST_FOLDERS if (folder / n).is_dir())
    names = sorted(p.name for p in dist_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    start = time.perf_counter()
    scores = metric.score([ref_dir / n for n in names], [dist_dir / n for n in names])
    per_image = (time.perf_counter() - start) / max(1, len(names))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["picture_name", "Score"])
        writer.writerows([n, f"{s:.6f}"] for n, s in zip(names, scores, strict=True))
    (out / "readme.txt").write_text(
        f"runtime per image [s] : {per_image:.4f}\n"
        f"CPU[1] / GPU[0] : {0 if device.type == 'cuda' else 1}\n"
        "Extra Data [1] / No Extra Data [0] : 0\n"
        f"Other description : DSS-SQA ({metric.implementation}): DINOv3 ViT-B/16 + CLIP ViT-L/14-336 features, "
        "five cross-validated heads, semantic gate.\n"
    )
    return str(out)
