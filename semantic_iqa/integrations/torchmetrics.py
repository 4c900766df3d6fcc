"""This package's metrics as torchmetrics `Metric`s, for validation loops (Lightning, DDP included).

    metric = DSSSQAMetric(weights="...").to(device)
    metric.update(dist, ref)      # distorted first, as torchmetrics' (preds, target)
    metric.compute()              # mean score over everything seen, synced across processes

    metric = NoReferenceQualityMetric("mst_clipiqa", weights="...").to(device)
    metric.update(images)         # no reference; "mst_clipiqa_prompt" also takes prompts=[...]
    metric.compute()

The states are a sum and a count (and, with `correlation=True`, the scores and human
labels), so results are identical however the data are split across processes. DSS-SQA's
reference features are cached by content by default: the same validation references every
epoch cost their backbone passes once.
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
from ..metric import Metric as SemanticIQAMetric
from ..metrics.dss_sqa.model import DSSSQA
from ..reference_cache import ReferenceCache
from . import load_no_reference_metric, no_reference_scores
from .frozen import HoldsFrozenMetric


class _MeanScoreMetric(HoldsFrozenMetric, Metric):
    """What both metrics share: frozen held model, states, `compute` and torchmetrics' own `plot`."""

    _metric_follows_dtype = False  # set_dtype casts the states; the metric keeps its precision

    def compute(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """Mean score; with `correlation=True` a dict with "score", "srocc" and "plcc" (NaN before any update)."""
        return _mean_and_correlations(self)

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """torchmetrics' plot of `val` (a `compute()` result or a list of them; default: `compute()` now).

        The y axis spans the metric's score range where it is bounded. Needs matplotlib.
        Returns (figure, axis).
        """
        return self._plot(val, ax)


class DSSSQAMetric(_MeanScoreMetric):
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
        self._hold_metric(model)  # frozen, and out of the owning module's parameters and state_dict
        self.gate = gate
        self.correlation = correlation
        self.reference_cache = ReferenceCache(model, max_cached_references) if cache_references else None
        _add_score_states(self, correlation)

    def _after_move(self) -> None:
        if getattr(self, "reference_cache", None) is not None:
            self.reference_cache.clear()  # features computed on the old device or dtype

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


class NoReferenceQualityMetric(_MeanScoreMetric):
    """Mean score of a no-reference metric of the registry, optionally with SROCC/PLCC against labels.

    Args:
        metric: registry name: "mst_clipiqa" (MST-CLIPIQA variant A, quality in [1, 5]) or
            "mst_clipiqa_prompt" (variant B, image + its generation prompt, unbounded). Higher
            is better for both; `higher_is_better` and `plot_lower_bound`/`plot_upper_bound`
            are read from the registry entry (bounds `None` where the score is unbounded).
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (e.g. `create_metric("mst_clipiqa", ...)`).
        correlation: also keep every score and its label (`update(images, labels)`) and
            return SROCC (tie-aware Spearman) and PLCC (Pearson) from `compute`.
        **kwargs: torchmetrics `Metric` options (`sync_on_compute`, `dist_sync_fn`, ...).
    """

    is_differentiable = True
    full_state_update = False
    # Per instance, from the registry entry (set in __init__); None here means "depends on `metric`".
    higher_is_better: bool | None = None
    plot_lower_bound: float | None = None
    plot_upper_bound: float | None = None

    def __init__(
        self,
        metric: str = "mst_clipiqa",
        weights: str | os.PathLike | None = None,
        *,
        model: SemanticIQAMetric | None = None,
        correlation: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        info, model = load_no_reference_metric(metric, weights, model)
        self._hold_metric(model)  # frozen, and out of the owning module's parameters and state_dict
        self.info = info
        # torchmetrics guards these as class constants (its __setattr__ refuses them); here they
        # depend on which registry entry was chosen, so they are set on the instance directly.
        low, high = info.score_range
        object.__setattr__(self, "higher_is_better", info.higher_is_better)
        object.__setattr__(self, "plot_lower_bound", None if low is None else float(low))
        object.__setattr__(self, "plot_upper_bound", None if high is None else float(high))
        self.correlation = correlation
        _add_score_states(self, correlation)

    def update(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, *, prompts: list[str] | None = None
    ) -> None:
        """Add a batch.

        Args:
            images: [B, C, H, W] (or [C, H, W]) float in [0, 1], C in {1, 3}, any size, on the
                metric's device.
            labels: [B] human scores (MOS), required with `correlation=True`.
            prompts: "mst_clipiqa_prompt": the B generation prompts, one per image (required);
                "mst_clipiqa": None.
        """
        score = no_reference_scores(self.info, self._model, images, prompts)
        self.score_sum += score.sum().to(self.score_sum.dtype)
        self.count += score.numel()
        if self.correlation:
            if labels is None or torch.as_tensor(labels).numel() != score.numel():
                raise InvalidInputError("correlation=True needs one label per image: update(images, labels)")
            self.scores.append(score.detach().float())
            self.labels.append(torch.as_tensor(labels, dtype=torch.float32, device=score.device).flatten())


def _mean_and_correlations(metric: DSSSQAMetric | NoReferenceQualityMetric) -> torch.Tensor | dict[str, torch.Tensor]:
    """The mean of the synced scores; with correlation, also SROCC and PLCC against the labels.

    Nothing seen yet gives NaN (torchmetrics warns that `compute` came before `update`): any
    number would read as a real score, and 0 is a valid worst one.
    """
    if metric.count == 0:
        nan = metric.score_sum.new_tensor(float("nan"), dtype=metric.dtype)
        return {"score": nan, "srocc": nan, "plcc": nan} if metric.correlation else nan
    mean = (metric.score_sum / metric.count).to(metric.dtype)  # float32 unless set_dtype() chose another
    if not metric.correlation:
        return mean
    scores = dim_zero_cat(metric.scores).cpu().double().numpy()
    labels = dim_zero_cat(metric.labels).cpu().double().numpy()
    return {
        "score": mean,
        "srocc": torch.tensor(stats.spearmanr(scores, labels).statistic, dtype=metric.dtype),
        "plcc": torch.tensor(stats.pearsonr(scores, labels).statistic, dtype=metric.dtype),
    }


def _add_score_states(metric: Metric, correlation: bool) -> None:
    """A sum and a count (summed across processes); with `correlation`, every score and label (concatenated)."""
    metric.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
    metric.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
    if correlation:
        metric.add_state("scores", [], dist_reduce_fx="cat")
        metric.add_state("labels", [], dist_reduce_fx="cat")
