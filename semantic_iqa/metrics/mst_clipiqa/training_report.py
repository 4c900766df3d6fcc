"""What a training run leaves in `out/training/`: report.json, val_predictions.csv, val_scatter.png."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import AGIQASet
from .model import MSTCLIPIQA


@dataclass
class TrainingResult:
    """The best epoch's parts and figures on the held-out 20 %, and every epoch's."""

    best_epoch: int  # 1-based
    figures: dict[str, float]  # srocc, plcc on the validation rows (scipy; PLCC raw)
    train_rows: np.ndarray
    val_rows: np.ndarray
    val_predictions: np.ndarray
    head_state: dict[str, torch.Tensor]  # `MSTCLIPIQA.head_tensors()` names, on the CPU
    history: list[dict[str, float]] = field(default_factory=list)
    model: MSTCLIPIQA | None = None  # set by `train_from_folder`: the trained model

    def summary(self) -> dict[str, Any]:
        """JSON-ready: best epoch, validation figures, split sizes, every epoch's loss and figures."""
        return {
            "best_epoch": self.best_epoch,
            "validation": self.figures,
            "train_images": len(self.train_rows),
            "validation_images": len(self.val_rows),
            "history": self.history,
        }


def write_report(folder: Path, result: TrainingResult, data: AGIQASet, provenance: dict[str, Any]) -> None:
    """report.json (figures, history, recipe, provenance), val_predictions.csv and, with matplotlib, a scatter plot."""
    folder.mkdir(parents=True, exist_ok=True)
    report = {**result.summary(), "provenance": provenance}
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    names = [data.names[row] for row in result.val_rows]
    labels = data.mos[result.val_rows]
    with open(folder / "val_predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", data.label_column, "prediction"])
        for name, label, predicted in zip(names, labels, result.val_predictions, strict=True):
            writer.writerow([name, f"{label:g}", f"{predicted:.6f}"])
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return
    figure, axes = pyplot.subplots(figsize=(5, 5))
    axes.scatter(labels, result.val_predictions, s=12, alpha=0.8)
    axes.set(
        xlabel=f"{data.labels} (human, 0-5)",
        ylabel="prediction (higher = better)",
        title=f"validation, epoch {result.best_epoch}: SRCC {result.figures['srocc']:.3f}  "
        f"PLCC {result.figures['plcc']:.3f}",
    )
    figure.tight_layout()
    figure.savefig(folder / "val_scatter.png", dpi=120)
    pyplot.close(figure)
