"""What a training run leaves in `out/training/`: report.json, val_predictions.csv, val_scatter.png."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import AGIQASet
    from .train import TrainingResult


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
