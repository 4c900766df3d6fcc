"""A metric under benchmark (`BenchMetric`), and the rows of this package's own metrics.

Our metrics come from the registry: the class, and which way is better (`MetricInfo.higher_is_better`),
are read from their entry, never from their names. Pixel-level scoring of file pairs for
tensor metrics (`score_paths`) is here too: the baselines use it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semantic_iqa.metric import Metric
from semantic_iqa.registry import metric_info

RANDOM_NOTE = "RANDOM WEIGHTS: plumbing test only, not a figure"


@dataclass
class BenchMetric:
    """A metric under test: `score(ref, dist)` takes paths and returns one number per pair.

    `name` is the stable key of its rows in results.json (piq rows: plain names; pyiqa rows:
    "<name> (pyiqa)"); `label` names the implementation and its version, for tables and plots.
    """

    name: str
    label: str
    implementation: str
    higher_is_better: bool
    score: Callable[[list[Path], list[Path]], np.ndarray]
    score_tensors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    random_weights: bool = False
    model: Metric | None = None  # our own model (DSS-SQA's: the cached-reference speed row)
    registry_name: str | None = None  # our metrics: the registry entry the row was built from
    variant: str | None = None  # which of a metric's models (DreamSim: "ensemble", "dino_vitb16", ...)

    @property
    def note(self) -> str:
        return RANDOM_NOTE if self.random_weights else ""

    def quality(self, ref: list[Path], dist: list[Path]) -> np.ndarray:
        """Scores oriented so that higher = more similar / better, for correlations and 2AFC."""
        values = self.score(ref, dist)
        return values if self.higher_is_better else -values

    def distance(self, ref: list[Path], dist: list[Path]) -> np.ndarray:
        """Scores oriented as a distance (lower = more similar), as 2AFC compares them."""
        return -self.quality(ref, dist)

    def summary(self) -> dict:
        row = {
            "name": self.name,
            "label": self.label,
            "implementation": self.implementation,
            "higher_is_better": self.higher_is_better,
            "random_weights": self.random_weights,
            "note": self.note,
        }
        if self.registry_name:
            row["registry_name"] = self.registry_name
        if self.variant:
            row["variant"] = self.variant
        return row


# -- our metrics, through the registry -------------------------------------------------------
def registry_metric(
    registry_name: str, row_name: str, weights: str | None, device: torch.device, batch_size: int
) -> BenchMetric:
    """The row of a registered full-reference metric: its class and direction from its registry entry.

    Tensor scoring (speed) goes through the `differentiable_score` hook, without gradients.
    """
    info = metric_info(registry_name)
    model = info.metric_class().from_pretrained(weights, device=device)

    def score(ref: list[Path], dist: list[Path]) -> np.ndarray:
        return model.predict(ref, dist, batch_size=batch_size).score.float().cpu().numpy()

    def score_tensors(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        return model.differentiable_score({"ref": ref, "dist": dist})

    version = importlib.metadata.version("semantic-iqa")
    # Test models (make-tiny) say in their provenance that their weights are random.
    random = "random" in str(getattr(model.config, "provenance", {}).get("note", ""))
    variant = getattr(model.config, "model_type", None)
    title = f"{info.title} {variant}" if variant else info.title
    return BenchMetric(
        row_name,
        f"{title} (semantic-iqa {version})",
        f"semantic-iqa {version} ({weights or 'published weights'})",
        info.higher_is_better,
        score,
        score_tensors,
        random,
        model,
        registry_name,
        variant,
    )


def dss_sqa_metric(weights: str | None, device: torch.device, batch_size: int) -> BenchMetric:
    """DSS-SQA: the registry's row; tensors scored by `model(ref, dist)` (refs and dists in one pass)."""
    metric = registry_metric("dss_sqa", "DSS-SQA", weights, device, batch_size)
    model = metric.model
    metric.score_tensors = lambda ref, dist: model(ref, dist).score
    return metric


def dreamsim_metric(weights: str, device: torch.device, batch_size: int) -> BenchMetric:
    """DreamSim, a semantic baseline (a distance: lower = more similar, as its registry entry says)."""
    return registry_metric("dreamsim", "DreamSim", weights, device, batch_size)


# -- file pairs for tensor metrics -----------------------------------------------------------
def score_paths(
    score_tensors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ref: list[Path],
    dist: list[Path],
    *,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Score pairs of files with a tensor metric: one call per run of equally sized pairs in a batch."""
    values = []
    for start in range(0, len(ref), batch_size):
        pairs = [
            same_size(r, d)
            for r, d in zip(ref[start : start + batch_size], dist[start : start + batch_size], strict=True)
        ]
        first = 0
        while first < len(pairs):
            end = first + 1
            while end < len(pairs) and pairs[end][0].shape == pairs[first][0].shape:
                end += 1
            refs = torch.stack([r for r, _ in pairs[first:end]]).to(device)
            dists = torch.stack([d for _, d in pairs[first:end]]).to(device)
            with torch.no_grad():
                values.append(score_tensors(refs, dists).float().flatten().cpu())
            first = end
    return torch.cat(values).numpy() if values else np.zeros(0)


def path_scorer(
    score_tensors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch_size: int, device: torch.device
) -> Callable[[list[Path], list[Path]], np.ndarray]:
    return partial(score_paths, score_tensors, batch_size=batch_size, device=device)


def same_size(ref_path: Path, dist_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel metrics need equal sizes: the distorted image is resized (bicubic) to the reference's."""
    ref = Image.open(ref_path).convert("RGB")
    dist = Image.open(dist_path).convert("RGB")
    if dist.size != ref.size:
        dist = dist.resize(ref.size, Image.Resampling.BICUBIC)
    to_tensor = lambda image: torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255  # noqa: E731
    return to_tensor(ref), to_tensor(dist)
