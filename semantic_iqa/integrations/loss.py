"""This package's metrics as training losses (lower is better, gradients flow into the images).

`DSSSQALoss` (full reference) is DSS-SQA for restoration, compression and generative models:

    loss = (5 - score) + gate_penalty * max(0, (high - cos) / (high - low))

`score` is the DSS-SQA ensemble score of the output against its reference, computed with
the gate OFF: the hard gate replaces a vetoed pair's logits by constants, so it gives zero
gradient exactly where the output has drifted furthest from the reference's content. In its
place the loss adds a differentiable penalty on the CLIP cosine `cos` of the pair: zero
above the gate's upper threshold (0.5), rising linearly through the soft band and beyond,
so an output whose meaning changed is always pushed back towards the reference. Lower is
better; the loss is >= 0, and 0 only for a perfect score with an unchanged meaning.

`NoReferenceQualityLoss` is a no-reference metric of the registry (MST-CLIPIQA) as a loss,
read off its registry entry: a bounded higher-is-better score gives `high - score` (>= 0, 0
at the best score; mst_clipiqa: `5 - score`), an unbounded one `-score`
(mst_clipiqa_prompt); a lower-is-better score `score - low`, or `score` when unbounded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InvalidOptionError
from ..inputs import as_float_batch, check_same_length, load_padded_batch
from ..metric import Metric
from ..metrics.dss_sqa.model import DSSSQA, ImageFeatures
from ..reference_cache import ReferenceCache
from ..registry import MetricInfo
from . import load_no_reference_metric, no_reference_scores
from .frozen import HoldsFrozenMetric

REDUCTIONS = ("mean", "sum", "none")


class DSSSQALoss(HoldsFrozenMetric, nn.Module):
    """Differentiable DSS-SQA loss of distorted images against references (lower = better).

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
        model: DSSSQA | None = None,
        reduction: str = "mean",
        gate_penalty: float = 5.0,
        activation_checkpointing: bool = False,
        cache_references: bool = False,
        clamp: bool = False,
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise InvalidOptionError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
        model = model if model is not None else DSSSQA.from_pretrained(weights, device="cpu")
        self._hold_metric(model)  # frozen, and out of the enclosing model's parameters and state_dict
        self.reduction = reduction
        self.gate_penalty = gate_penalty
        self.activation_checkpointing = activation_checkpointing
        self.clamp = clamp
        self.reference_cache = ReferenceCache(model) if cache_references else None

    def _after_move(self) -> None:
        if getattr(self, "reference_cache", None) is not None:
            self.reference_cache.clear()  # features computed on the old device or dtype

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Loss of `dist` (gradients flow into it) against `ref`.

        Args:
            dist: distorted/restored images [B, C, H, W] float in [0, 1], C in {1, 3}.
            ref: reference images, same batch size (sizes may differ).

        Returns:
            The reduced loss (a scalar), or [B] values with reduction="none".
        """
        if self.clamp:
            dist, ref = clamp_unit_range(dist), clamp_unit_range(ref)
        dist = as_float_batch(dist, "dist")
        ref = as_float_batch(ref, "ref")
        check_same_length(ref, dist)
        model, size = self._model, self._model.config.preprocess.image_size
        ref_padded = load_padded_batch(ref.detach(), size)
        if self.reference_cache is not None:
            ref_features = self.reference_cache.features(ref_padded)
        else:
            with torch.no_grad():
                ref_features = model.encode(ref_padded)
        dist_padded = load_padded_batch(dist, size)
        if self.activation_checkpointing and torch.is_grad_enabled():
            dist_features = ImageFeatures(*checkpoint(_encode, model, dist_padded, use_reentrant=False))
        else:
            dist_features = model.encode(dist_padded)
        output = model.score_features(ref_features, dist_features, gate="off")
        gate = model.config.gate
        penalty = ((gate.high - output.cos_sim) / (gate.high - gate.low)).clamp(min=0.0)
        loss = (model.config.head.num_classes - 1 - output.score) + self.gate_penalty * penalty
        return reduce_loss(loss, self.reduction)


def _encode(model: DSSSQA, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = model.encode(images)
    return features.structure, features.semantic


class NoReferenceQualityLoss(HoldsFrozenMetric, nn.Module):
    """Differentiable loss from a no-reference quality metric (lower = better).

    Args:
        metric: registry name: "mst_clipiqa" (loss = 5 - score, in [0, 4]) or
            "mst_clipiqa_prompt" (loss = -score, unbounded; needs the prompts).
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (e.g. `create_metric("mst_clipiqa", ...)`).
        reduction: "mean" (default), "sum" or "none" (one value per image).
        clamp: clamp the images into [0, 1] instead of refusing values outside it (see
            `clamp_unit_range`).

    The model is frozen: no parameter of it receives a gradient, and it stays in eval mode
    (and out of the enclosing module's `state_dict`) whatever `train()` is called on an
    enclosing module. Gradients flow into the images only.
    """

    def __init__(
        self,
        metric: str = "mst_clipiqa",
        weights: str | os.PathLike | None = None,
        *,
        model: Metric | None = None,
        reduction: str = "mean",
        clamp: bool = False,
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise InvalidOptionError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
        info, model = load_no_reference_metric(metric, weights, model)
        self._hold_metric(model)  # frozen, and out of the enclosing model's parameters and state_dict
        self.info = info
        self.reduction = reduction
        self.clamp = clamp

    def forward(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        """Loss of `images` (gradients flow into them).

        Args:
            images: [B, C, H, W] (or [C, H, W]) float in [0, 1], C in {1, 3}, any size.
            prompts: "mst_clipiqa_prompt": the B generation prompts, one per image (required);
                "mst_clipiqa": None.

        Returns:
            The reduced loss (a scalar), or [B] values with reduction="none"; lower is better.
        """
        if self.clamp:
            images = clamp_unit_range(images)
        scores = no_reference_scores(self.info, self._model, images, prompts)
        return reduce_loss(score_to_loss(scores, self.info), self.reduction)


def score_to_loss(scores: torch.Tensor, info: MetricInfo) -> torch.Tensor:
    """Turn scores of registry entry `info` into losses, lower = better, 0 at the best bounded score.

    Why the best end of the range and not a plain negation: with a bounded score the loss
    then reads as "distance from perfect" (>= 0), as `DSSSQALoss`'s `5 - score` does; an
    unbounded end has no such anchor, so the score is only negated (or kept, lower-better).
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
