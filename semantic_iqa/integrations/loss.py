"""Training losses (lower is better, gradients flow into the images): the public import path.

The losses themselves are generic, for any registered metric (`quality_loss.py`):
`QualityLoss(metric, ...)` for a full-reference or no-reference entry, and
`NoReferenceQualityLoss` for the no-reference call `loss(images, prompts)`. This module adds
the one shortcut named after a metric, kept with its signature and behaviour: `DSSSQALoss`,
DSS-SQA for restoration, compression and generative models:

    loss = (5 - score) + gate_penalty * max(0, (high - cos) / (high - low))

(DSS-SQA's `training_loss`: the ensemble score with the gate OFF, whose hard veto would give
zero gradient exactly where the output drifted furthest, plus a differentiable penalty on
the pair's CLIP cosine in its place.)
"""

from __future__ import annotations

import os

import torch

from ..metric import Metric
from .frozen import loss_options
from .quality_loss import (
    REDUCTIONS,
    NoReferenceQualityLoss,
    QualityLoss,
    clamp_unit_range,
    reduce_loss,
    score_to_loss,
)

__all__ = [
    "DSSSQALoss",
    "NoReferenceQualityLoss",
    "QualityLoss",
    "REDUCTIONS",
    "clamp_unit_range",
    "reduce_loss",
    "score_to_loss",
]


class DSSSQALoss(QualityLoss):
    """Differentiable DSS-SQA loss of distorted images against references (lower = better).

    `QualityLoss("dss_sqa", ...)` with DSS-SQA's loss option as a named argument.

    Args:
        weights: weights folder or Hub repo id (`None` = the published model); or pass `model`.
        model: an already loaded `DSSSQA` to use instead of `weights`.
        reduction: "mean" (default), "sum" or "none" (one value per pair).
        gate_penalty: weight of the cosine penalty that replaces the gate (0 turns it off).
        activation_checkpointing: recompute backbone activations in the backward pass
            instead of storing them (less memory, about one more forward pass of time).
        cache_references: keep reference features by content (for references that come back,
            e.g. a fixed training set); references never receive gradients either way.
        clamp: clamp both images into [0, 1] instead of refusing values outside it (see
            `clamp_unit_range`).

    The backbones and heads are frozen: no parameter of the metric receives a gradient, and
    the model stays in eval mode whatever `train()` is called on an enclosing module.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        model: Metric | None = None,
        reduction: str = "mean",
        gate_penalty: float = 5.0,
        activation_checkpointing: bool = False,
        cache_references: bool = False,
        clamp: bool = False,
    ) -> None:
        super().__init__(
            "dss_sqa",
            weights,
            model=model,
            reduction=reduction,
            activation_checkpointing=activation_checkpointing,
            cache_references=cache_references,
            clamp=clamp,
            gate_penalty=gate_penalty,
        )

    @property
    def gate_penalty(self) -> float:
        """Weight of the cosine penalty that replaces the gate."""
        return self.loss_options["gate_penalty"]

    @gate_penalty.setter
    def gate_penalty(self, value: float) -> None:
        self.loss_options = loss_options(self.info, {**self.loss_options, "gate_penalty": value})

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Loss of `dist` [B, C, H, W] float in [0, 1] (gradients flow into it) against `ref` (same batch size).

        Returns the reduced loss (a scalar), or [B] values with reduction="none".
        """
        return super().forward(dist, ref)
