"""Any registered metric as a training loss (lower is better, gradients flow into the images).

`QualityLoss(metric, ...)` takes a full-reference entry (`loss(dist, ref)`) or a no-reference
one (`loss(images)`, `prompts=` for entries whose inputs include a prompt). The value is the
metric's own `training_loss` hook: by default the score read off the registry entry (a bounded
higher-is-better score gives `high - score`, >= 0 and 0 at the best score; an unbounded one
`-score`; a lower-is-better score `score - low`, or `score` when unbounded); a metric may
override it to add terms of its own, set by its declared `loss_options`.
`NoReferenceQualityLoss` is the no-reference call convention, `loss(images, prompts)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InvalidOptionError
from ..metric import Metric
from ..registry import MetricInfo
from .frozen import HoldsFrozenMetric, default_metric_of_kind, load_frozen_metric, loss_options, metric_inputs

REDUCTIONS = ("mean", "sum", "none")


class QualityLoss(HoldsFrozenMetric, nn.Module):
    """Differentiable loss from a metric of the registry (lower = better).

    Args:
        metric: registry name of any metric, full-reference or no-reference.
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (e.g. `semantic_iqa.create_metric(...)`).
        reduction: "mean" (default), "sum" or "none" (one value per item).
        activation_checkpointing: recompute the encoders' activations in the backward pass
            instead of storing them (less memory, about one more forward pass of time).
        cache_references: keep reference features by content, for references that come back
            (a fixed training set); references never receive gradients either way. No effect
            for a metric without a reference cache (`Metric.make_reference_cache`).
        clamp: clamp the images into [0, 1] instead of refusing values outside it (see
            `clamp_unit_range`).
        **options: the metric's loss options (`MetricInfo.loss_options`), checked here.

    The metric is frozen: no parameter of it receives a gradient, and it stays in eval mode (and
    out of the enclosing module's `state_dict`) whatever `train()` is called on an enclosing
    module. Gradients flow into the scored images only, never into the references.
    """

    _kind: str | None = None  # "FR" or "NR" in a subclass for one kind only

    def __init__(
        self,
        metric: str,
        weights: str | os.PathLike | None = None,
        *,
        model: Metric | None = None,
        reduction: str = "mean",
        activation_checkpointing: bool = False,
        cache_references: bool = False,
        clamp: bool = False,
        **options: Any,
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise InvalidOptionError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
        info, model = load_frozen_metric(metric, weights, model, kind=self._kind, adapter=type(self).__name__)
        self.loss_options = loss_options(info, options)  # before any image is seen: a typo fails here
        self._hold_metric(model)  # frozen, and out of the enclosing model's parameters and state_dict
        self.info: MetricInfo = info
        self.reduction = reduction
        self.activation_checkpointing = activation_checkpointing
        self.clamp = clamp
        self.reference_cache = model.make_reference_cache() if cache_references else None

    def _after_move(self) -> None:
        cache = getattr(self, "reference_cache", None)
        if cache is not None and hasattr(cache, "clear"):
            cache.clear()  # features computed on the old device or dtype

    def forward(
        self, images: torch.Tensor, ref: torch.Tensor | None = None, *, prompts: Sequence[str] | None = None
    ) -> torch.Tensor:
        """Loss of `images` (gradients flow into them), against `ref` for a full-reference metric.

        Args:
            images: the scored images [B, C, H, W] (or [C, H, W]) float in [0, 1], C in {1, 3}:
                the distorted/restored ones of a full-reference metric.
            ref: the references, same batch size (sizes may differ); full reference only.
            prompts: one text per image, for metrics whose inputs include a prompt.

        Returns:
            The reduced loss (a scalar), or [B] values with reduction="none"; lower is better.
        """
        if self.clamp:
            images = clamp_unit_range(images)
            ref = None if ref is None else clamp_unit_range(ref)
        roles, extras = metric_inputs(self.info, images, ref, prompts)
        loss = self._model.training_loss(
            roles,
            extras,
            reference_cache=self.reference_cache,
            checkpoint_activations=self.activation_checkpointing,
            **self.loss_options,
        )
        return reduce_loss(loss, self.reduction)


class NoReferenceQualityLoss(QualityLoss):
    """Differentiable loss from a no-reference metric of the registry (lower = better).

    Args:
        metric: registry name of a no-reference metric (`None` = the first registered one).
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry.
        reduction: "mean" (default), "sum" or "none" (one value per image).
        clamp: clamp the images into [0, 1] instead of refusing values outside it.

    Called `loss(images)`, or `loss(images, prompts)` for an entry whose inputs include a
    prompt. Otherwise as `QualityLoss`.
    """

    _kind = "NR"

    def __init__(
        self,
        metric: str | None = None,
        weights: str | os.PathLike | None = None,
        *,
        model: Metric | None = None,
        reduction: str = "mean",
        clamp: bool = False,
    ) -> None:
        metric = default_metric_of_kind("NR") if metric is None else metric
        super().__init__(metric, weights, model=model, reduction=reduction, clamp=clamp)

    def forward(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:  # type: ignore[override]
        """Loss of `images` [B, C, H, W] (or [C, H, W]) float in [0, 1]; `prompts`: one per image, where needed."""
        return super().forward(images, prompts=prompts)


def score_to_loss(scores: torch.Tensor, info: MetricInfo) -> torch.Tensor:
    """Turn scores of registry entry `info` into losses, lower = better, 0 at the best bounded score.

    Why the best end of the range and not a plain negation: with a bounded score the loss
    then reads as "distance from perfect" (>= 0); an unbounded end has no such anchor, so the
    score only changes sign (or is kept, lower-better). `Metric.training_loss`'s default is this.
    """
    low, high = info.score_range
    if info.higher_is_better:
        return -scores if high is None else high - scores
    return scores if low is None else scores - low


def clamp_unit_range(images: torch.Tensor) -> torch.Tensor:
    """`images` clamped into [0, 1] in the forward pass, with gradients passed through unchanged.

    A generator's output a little outside [0, 1] (no final sigmoid, or overshoot early in
    training) is then scored as the image it would be displayed as, and the metric's
    gradient still reaches every pixel (a plain clamp would give zero gradient outside the
    range, exactly where the output is wrong). Non-tensors and integer tensors are returned
    as they are, for the input checks to refuse.
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        return images
    return images + (images.clamp(0.0, 1.0) - images).detach()


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """[B] per-item losses -> their mean or sum (a scalar), or themselves for "none".

    Half-precision losses (bfloat16/float16 autocast) come back as float32: the reduction and
    the optimizer's step then see the loss at full precision, as autocast does for its own
    losses. float64 stays float64.
    """
    if loss.dtype in (torch.float16, torch.bfloat16):
        loss = loss.float()
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss
