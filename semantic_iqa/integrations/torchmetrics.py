"""DSS-SQA as a torchmetrics `Metric`, for validation loops (Lightning, DDP included).

    metric = DSSSQAMetric(weights="...").to(device)
    metric.update(dist, ref)      # distorted first, as torchmetrics' (preds, target)
    metric.compute()              # mean score over everything seen, synced across processes

The states are a sum and a count (and, with `correlation=True`, the scores and human
labels), so results are identical however the data are split across processes. Reference
features are cached by content by default: the same validation references every epoch cost
their backbone passes once.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from scipy import stats
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..errors import InvalidInputError
from ..inputs import as_float_batch, check_same_length, load_padded_batch
from ..metrics.dss_sqa.model import DSSSQA
from ..metrics.dss_sqa.reference_cache import ReferenceCache


class DSSSQAMetric(Metric):
    """Mean DSS-SQA score (0-5, higher = better), optionally with SROCC/PLCC against labels.

    Args:
        weights: weights folder or Hub repo id (`None` = the published model); or pass `model`.
        model: an already loaded `DSSSQA`.
        gate: "hard" (default), "soft" or "off".
        correlation: also keep every score and its label (`update(dist, ref, labels)`) and
            return SROCC (tie-aware Spearman) and PLCC (Pearson) from `compute`.
        cache_references: cache reference features by content (default True).
        max_cached_references: bound of that cache, in images.
        **kwargs: torchmetrics `Metric` options (`sync_on_compute`, `dist_sync_fn`, ...).
    """

    is_differentiable = True
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 5.0

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        model: DSSSQA | None = None,
        gate: str = "hard",
        correlation: bool = False,
        cache_references: bool = True,
        max_cached_references: int = 4096,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        model = model if model is not None else DSSSQA.from_pretrained(weights, device="cpu")
        # Held outside the module tree so the frozen weights stay out of checkpoints of the
        # module that owns this metric; `_apply` moves them with the metric.
        object.__setattr__(self, "_model", model.eval().requires_grad_(False))
        self.gate = gate
        self.correlation = correlation
        self.reference_cache = ReferenceCache(model, max_cached_references) if cache_references else None
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        if correlation:
            self.add_state("scores", [], dist_reduce_fx="cat")
            self.add_state("labels", [], dist_reduce_fx="cat")

    @property
    def model(self) -> DSSSQA:
        return self._model

    def _apply(self, fn, *args, **kwargs):
        self._model._apply(fn, *args, **kwargs)
        if self.reference_cache is not None:
            self.reference_cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def update(self, dist: torch.Tensor, ref: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Add a batch: `dist` and `ref` are [B, C, H, W] floats in [0, 1]; `labels` [B] (MOS)."""
        dist, ref = as_float_batch(dist, "dist"), as_float_batch(ref, "ref")
        check_same_length(ref, dist)
        size = self._model.config.preprocess.image_size
        output = self._model.score_padded(
            load_padded_batch(ref, size), load_padded_batch(dist, size), self.gate, self.reference_cache
        )
        self.score_sum += output.score.sum().to(self.score_sum.dtype)
        self.count += output.score.numel()
        if self.correlation:
            if labels is None or torch.as_tensor(labels).numel() != output.score.numel():
                raise InvalidInputError("correlation=True needs one label per pair: update(dist, ref, labels)")
            self.scores.append(output.score.detach().float())
            self.labels.append(torch.as_tensor(labels, dtype=torch.float32, device=output.score.device).flatten())

    def compute(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """Mean score; with `correlation=True` a dict with "score", "srocc" and "plcc"."""
        mean = (self.score_sum / self.count.clamp(min=1)).float()
        if not self.correlation:
            return mean
        scores = dim_zero_cat(self.scores).cpu().double().numpy()
        labels = dim_zero_cat(self.labels).cpu().double().numpy()
        return {
            "score": mean,
            "srocc": torch.tensor(stats.spearmanr(scores, labels).statistic, dtype=torch.float32),
            "plcc": torch.tensor(stats.pearsonr(scores, labels).statistic, dtype=torch.float32),
        }
