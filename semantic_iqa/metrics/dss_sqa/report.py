"""Training results (per fold and pooled) and their report: figures, every out-of-fold prediction, a plot."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import PairSet


@dataclass
class FoldResult:
    """One fold: its held-out pairs, the best epoch's head and figures, and every epoch's Final."""

    held_out: np.ndarray
    best_epoch: int
    figures: dict[str, float]
    predictions: np.ndarray
    head_state: dict[str, torch.Tensor]
    history: list[float] = field(default_factory=list)


@dataclass
class TrainingResult:
    """All folds, and the out-of-fold figures pooled over every pair."""

    folds: list[FoldResult]
    pooled: dict[str, float]
    out_of_fold: np.ndarray  # prediction of every pair by the fold that held it out

    def summary(self) -> dict[str, Any]:
        """Per-fold and pooled figures, plus mean and std over folds of SROCC, PLCC and Final."""
        per_fold = [
            {"fold": k, "best_epoch": f.best_epoch, "pairs": len(f.held_out), **f.figures}
            for k, f in enumerate(self.folds)
        ]
        spread = {
            f"{name}_fold_mean_std": [
                float(np.mean([f.figures[name] for f in self.folds])),
                float(np.std([f.figures[name] for f in self.folds])),
            ]
            for name in ("srocc", "plcc", "final")
        }
        return {"per_fold": per_fold, "pooled": self.pooled, **spread}


def write_report(folder: Path, result: TrainingResult, pairs: PairSet) -> None:
    """report.json, oof_predictions.csv and (with matplotlib) oof_scatter.png."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")
    fold_of = np.empty(len(pairs), dtype=np.int64)
    for fold, fold_result in enumerate(result.folds):
        fold_of[fold_result.held_out] = fold
    with open(folder / "oof_predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "score", "prediction", "fold"])
        for name, score, predicted, fold in zip(pairs.names, pairs.scores, result.out_of_fold, fold_of, strict=True):
            writer.writerow([name, f"{score:g}", f"{predicted:.6f}", int(fold)])
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return
    figure, axes = pyplot.subplots(figsize=(5, 5))
    axes.scatter(pairs.scores, result.out_of_fold, c=fold_of, cmap="tab10", s=12, alpha=0.8)
    axes.plot([0, 5], [0, 5], color="grey", linewidth=0.8)
    axes.set(
        xlabel="human score",
        ylabel="out-of-fold prediction",
        xlim=(-0.2, 5.2),
        ylim=(-0.2, 5.2),
        title=f"SROCC {result.pooled['srocc']:.3f}  PLCC {result.pooled['plcc']:.3f}",
    )
    figure.tight_layout()
    figure.savefig(folder / "oof_scatter.png", dpi=120)
    pyplot.close(figure)
