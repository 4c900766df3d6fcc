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
from ..metrics.dss_sqa.reference_cache import ReferenceCache
from ..registry import MetricInfo
from . import load_no_reference_metric, no_reference_scores

REDUCTIONS = ("mean", "sum", "none")


class DSSSQALoss(nn.Module):
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
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise InvalidOptionError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
        model = model if model is not None else DSSSQA.from_pretrained(weights, device="cpu")
        # Held outside the module tree: the frozen weights (1.5 GB for the reference model)
        # stay out of the enclosing model's state_dict and checkpoints; `_apply` moves them.
        object.__setattr__(self, "_model", model.eval().requires_grad_(False))
        self.reduction = reduction
        self.gate_penalty = gate_penalty
        self.activation_checkpointing = activation_checkpointing
        self.reference_cache = ReferenceCache(model) if cache_references else None

    @property
    def model(self) -> DSSSQA:
        return self._model

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .double() also apply to the held model
        self._model._apply(fn, *args, **kwargs)
        if self.reference_cache is not None:
            self.reference_cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Loss of `dist` (gradients flow into it) against `ref`.

        Args:
            dist: distorted/restored images [B, C, H, W] float in [0, 1], C in {1, 3}.
            ref: reference images, same batch size (sizes may differ).

        Returns:
            The reduced loss (a scalar), or [B] values with reduction="none".
        """
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


class NoReferenceQualityLoss(nn.Module):
    """Differentiable loss from a no-reference quality metric (lower = better).

    Args:
        metric: registry name: "mst_clipiqa" (loss = 5 - score, in [0, 4]) or
            "mst_clipiqa_prompt" (loss = -score, unbounded; needs the prompts).
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (e.g. `create_metric("mst_clipiqa", ...)`).
        reduction: "mean" (default), "sum" or "none" (one value per image).

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
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise InvalidOptionError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
        info, model = load_no_reference_metric(metric, weights, model)
        # Held outside the module tree: the frozen weights stay out of the enclosing model's
        # state_dict and checkpoints, and its `.train()` never reaches them; `_apply` moves them.
        object.__setattr__(self, "_model", model)
        self.info = info
        self.reduction = reduction

    @property
    def model(self) -> Metric:
        return self._model

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .double() also apply to the held model
        self._model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def forward(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        """Loss of `images` (gradients flow into them).

        Args:
            images: [B, C, H, W] (or [C, H, W]) float in [0, 1], C in {1, 3}, any size.
            prompts: "mst_clipiqa_prompt": the B generation prompts, one per image (required);
                "mst_clipiqa": None.

        Returns:
            The reduced loss (a scalar), or [B] values with reduction="none"; lower is better.
        """
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


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """[B] per-item losses -> their mean or sum (a scalar), or themselves for "none"."""
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss
