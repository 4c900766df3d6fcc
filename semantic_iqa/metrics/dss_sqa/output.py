"""What a DSS-SQA model gives back (`DSSSQAOutput`) and the backbone features it passes around."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ...metric_output import MetricOutput


@dataclass
class ImageFeatures:
    """Backbone features of B images: structure [B, Ds] (DINOv3 CLS), semantic [B, Dc] (CLIP pooled)."""

    structure: torch.Tensor
    semantic: torch.Tensor

    def __getitem__(self, index: slice | torch.Tensor | list[int]) -> ImageFeatures:
        return ImageFeatures(self.structure[index], self.semantic[index])


class ReferenceFeatureSource(Protocol):
    """Anything that gives reference features for resize-padded images (e.g. a `ReferenceCache`)."""

    def features(self, images: torch.Tensor) -> ImageFeatures: ...


@dataclass
class DSSSQAOutput(MetricOutput):
    """Scores of B pairs. Higher is better everywhere; scores are in [0, 5].

    Attributes:
        score: [B] ensemble score (mean of the fold scores).
        fold_scores: [B, F] expected class of each fold.
        fold_std: [B] sample standard deviation of the fold scores (0 for one fold):
            disagreement between cross-validated heads, an uncertainty estimate.
        cos_sim: [B] cosine of the reference and distorted CLIP features, in [-1, 1].
        gated: [B] True where the semantic gate changed the pair's logits.
        logits: [B, F, C] class logits after the gate.
    """

    score: torch.Tensor
    fold_scores: torch.Tensor
    fold_std: torch.Tensor
    cos_sim: torch.Tensor
    gated: torch.Tensor
    logits: torch.Tensor

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per pair: score, fold_scores, fold_std, cos_sim, gated (floats/bools)."""
        cpu = {name: getattr(self, name).detach().float().cpu() for name in ("score", "fold_std", "cos_sim")}
        fold_scores = self.fold_scores.detach().float().cpu().tolist()
        gated = self.gated.cpu().tolist()
        return [
            {
                "score": float(cpu["score"][i]),
                "fold_scores": fold_scores[i],
                "fold_std": float(cpu["fold_std"][i]),
                "cos_sim": float(cpu["cos_sim"][i]),
                "gated": bool(gated[i]),
            }
            for i in range(len(self))
        ]
