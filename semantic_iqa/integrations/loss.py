"""DSS-SQA as a training loss for restoration, compression and generative models.

    loss = (5 - score) + gate_penalty * max(0, (high - cos) / (high - low))

`score` is the DSS-SQA ensemble score of the output against its reference, computed with
the gate OFF: the hard gate replaces a vetoed pair's logits by constants, so it gives zero
gradient exactly where the output has drifted furthest from the reference's content. In its
place the loss adds a differentiable penalty on the CLIP cosine `cos` of the pair: zero
above the gate's upper threshold (0.5), rising linearly through the soft band and beyond,
so an output whose meaning changed is always pushed back towards the reference. Lower is
better; the loss is >= 0, and 0 only for a perfect score with an unchanged meaning.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InvalidOptionError
from ..inputs import as_float_batch, check_same_length, load_padded_batch
from ..metrics.dss_sqa.model import DSSSQA, ImageFeatures
from ..metrics.dss_sqa.reference_cache import ReferenceCache

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
        if self.reduction == "mean":
            return loss.mean()
        return loss.sum() if self.reduction == "sum" else loss


def _encode(model: DSSSQA, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = model.encode(images)
    return features.structure, features.semantic
