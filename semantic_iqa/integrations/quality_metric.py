"""Any registered metric as a torchmetrics `Metric`, for validation loops (Lightning, DDP included).

    metric = FullReferenceQualityMetric("<fr metric>", weights="...").to(device)
    metric.update(dist, ref)      # distorted first, as torchmetrics' (preds, target)
    metric.compute()              # mean score over everything seen, synced across processes

    metric = NoReferenceQualityMetric("<nr metric>", weights="...").to(device)
    metric.update(images)         # prompts=[...] for an entry whose inputs include a prompt

Everything metric-specific is read off the registry entry: which way is better, the plot's
bounds (the score range), the scoring options (checked when the metric is built). The states
are a sum and a count (and, with `correlation=True`, the scores and human labels), so results
are identical however the data are split across processes. A metric with a reference cache
(`Metric.make_reference_cache`) keeps reference features by content by default: the same
validation references every epoch cost their encoder passes once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from scipy import stats
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..errors import InvalidInputError, UnknownOptionError
from ..metric import Metric as SemanticIQAMetric
from ..registry import MetricInfo, list_metrics, metric_info
from .frozen import HoldsFrozenMetric, default_metric_of_kind, load_frozen_metric, metric_inputs, scoring_options


class _MeanScoreMetric(HoldsFrozenMetric, Metric):
    """What both metrics share: the registry entry, the frozen held model, states, `compute` and `plot`."""

    _metric_follows_dtype = False  # set_dtype casts the states; the metric keeps its precision
    _kind: str = "FR"
    is_differentiable = True
    full_state_update = False
    # Per instance, from the registry entry (set in __init__); None here means "depends on `metric`".
    higher_is_better: bool | None = None
    plot_lower_bound: float | None = None
    plot_upper_bound: float | None = None

    def __init__(
        self,
        metric: str,
        weights: str | os.PathLike | None,
        model: SemanticIQAMetric | None,
        correlation: bool,
        cache_references: bool,
        max_cached_references: int,
        kwargs: dict[str, Any],
    ) -> None:
        info = metric_info(metric)
        options, kwargs = _split_options(info, kwargs)  # checked before any weights are read
        try:
            super().__init__(**kwargs)
        except ValueError as exc:  # torchmetrics refuses keywords it does not know; say whose they are
            known = ", ".join(option.name for option in info.scoring_options) or "none"
            raise UnknownOptionError(f"{exc} (options of {info.name}: {known}; or torchmetrics' own)") from None
        info, model = load_frozen_metric(metric, weights, model, kind=self._kind, adapter=type(self).__name__)
        self._hold_metric(model)  # frozen, and out of the owning module's parameters and state_dict
        self.info: MetricInfo = info
        self.options = options
        # torchmetrics guards these as class constants (its __setattr__ refuses them); here they
        # depend on which registry entry was chosen, so they are set on the instance directly.
        low, high = info.score_range
        object.__setattr__(self, "higher_is_better", info.higher_is_better)
        object.__setattr__(self, "plot_lower_bound", None if low is None else float(low))
        object.__setattr__(self, "plot_upper_bound", None if high is None else float(high))
        self.correlation = correlation
        self.reference_cache = model.make_reference_cache(max_cached_references) if cache_references else None
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        if correlation:
            self.add_state("scores", [], dist_reduce_fx="cat")
            self.add_state("labels", [], dist_reduce_fx="cat")

    def _after_move(self) -> None:
        cache = getattr(self, "reference_cache", None)
        if cache is not None and hasattr(cache, "clear"):
            cache.clear()  # features computed on the old device or dtype

    def _add(
        self,
        images: torch.Tensor,
        ref: torch.Tensor | None,
        labels: torch.Tensor | None,
        prompts: Sequence[str] | None,
        call: str,
    ) -> None:
        """Score a batch (no gradients unless torchmetrics enables them) and add it to the states."""
        roles, extras = metric_inputs(self.info, images, ref, prompts)
        score = self._model.differentiable_score(roles, extras, reference_cache=self.reference_cache, **self.options)
        self.score_sum += score.sum().to(self.score_sum.dtype)
        self.count += score.numel()
        if self.correlation:
            if labels is None or torch.as_tensor(labels).numel() != score.numel():
                raise InvalidInputError(f"correlation=True needs one label per {self.info.unit}: {call}")
            self.scores.append(score.detach().float())
            self.labels.append(torch.as_tensor(labels, dtype=torch.float32, device=score.device).flatten())

    def compute(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """Mean score; with `correlation=True` a dict with "score", "srocc" and "plcc" (NaN before any update).

        Nothing seen yet gives NaN (torchmetrics warns that `compute` came before `update`): any
        number would read as a real score, and 0 may be a valid worst one.
        """
        if self.count == 0:
            nan = self.score_sum.new_tensor(float("nan"), dtype=self.dtype)
            return {"score": nan, "srocc": nan, "plcc": nan} if self.correlation else nan
        mean = (self.score_sum / self.count).to(self.dtype)  # float32 unless set_dtype() chose another
        if not self.correlation:
            return mean
        scores = dim_zero_cat(self.scores).cpu().double().numpy()
        labels = dim_zero_cat(self.labels).cpu().double().numpy()
        return {
            "score": mean,
            "srocc": torch.tensor(stats.spearmanr(scores, labels).statistic, dtype=self.dtype),
            "plcc": torch.tensor(stats.pearsonr(scores, labels).statistic, dtype=self.dtype),
        }

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """torchmetrics' plot of `val` (a `compute()` result or a list of them; default: `compute()` now).

        The y axis spans the metric's score range where it is bounded. Needs matplotlib.
        Returns (figure, axis).
        """
        return self._plot(val, ax)


class FullReferenceQualityMetric(_MeanScoreMetric):
    """Mean score of a full-reference metric of the registry, optionally with SROCC/PLCC against labels.

    Args:
        metric: registry name of a full-reference metric (`None` = the first registered one).
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (e.g. `semantic_iqa.create_metric(...)`).
        correlation: also keep every score and its label (`update(dist, ref, labels)`) and
            return SROCC (tie-aware Spearman) and PLCC (Pearson) from `compute`.
        cache_references: keep reference features by content (default True), where the metric
            has a reference cache.
        max_cached_references: bound of that cache, in images.
        **kwargs: the metric's scoring options (its registry entry's `scoring_options`), and
            torchmetrics `Metric` options (`sync_on_compute`, `dist_sync_fn`, ...).

    `higher_is_better` and `plot_lower_bound`/`plot_upper_bound` come from the registry entry
    (bounds `None` where the score is unbounded).
    """

    _kind = "FR"

    def __init__(
        self,
        metric: str | None = None,
        weights: str | os.PathLike | None = None,
        *,
        model: SemanticIQAMetric | None = None,
        correlation: bool = False,
        cache_references: bool = True,
        max_cached_references: int = 4096,
        **kwargs: Any,
    ) -> None:
        metric = default_metric_of_kind("FR") if metric is None else metric
        super().__init__(metric, weights, model, correlation, cache_references, max_cached_references, kwargs)

    def update(
        self,
        dist: torch.Tensor,
        ref: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        prompts: Sequence[str] | None = None,
    ) -> None:
        """Add a batch: `dist` and `ref` are [B, C, H, W] floats in [0, 1]; `labels` [B] (MOS).

        `prompts`: one text per pair, for an entry whose inputs include a prompt.
        """
        self._add(dist, ref, labels, prompts, "update(dist, ref, labels)")


class NoReferenceQualityMetric(_MeanScoreMetric):
    """Mean score of a no-reference metric of the registry, optionally with SROCC/PLCC against labels.

    Args:
        metric: registry name of a no-reference metric (`None` = the first registered one).
            `higher_is_better` and `plot_lower_bound`/`plot_upper_bound` are read from its
            registry entry (bounds `None` where the score is unbounded).
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (its class and fixed options must be
            the entry's).
        correlation: also keep every score and its label (`update(images, labels)`) and
            return SROCC (tie-aware Spearman) and PLCC (Pearson) from `compute`.
        **kwargs: the metric's scoring options, and torchmetrics `Metric` options.
    """

    _kind = "NR"

    def __init__(
        self,
        metric: str | None = None,
        weights: str | os.PathLike | None = None,
        *,
        model: SemanticIQAMetric | None = None,
        correlation: bool = False,
        **kwargs: Any,
    ) -> None:
        metric = default_metric_of_kind("NR") if metric is None else metric
        super().__init__(metric, weights, model, correlation, True, 4096, kwargs)

    def update(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, *, prompts: Sequence[str] | None = None
    ) -> None:
        """Add a batch.

        Args:
            images: [B, C, H, W] (or [C, H, W]) float in [0, 1], C in {1, 3}, any size, on the
                metric's device.
            labels: [B] human scores (MOS), required with `correlation=True`.
            prompts: one text per image, required by an entry whose inputs include a prompt
                and refused by any other.
        """
        self._add(images, None, labels, prompts, "update(images, labels)")


def _split_options(info: MetricInfo, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the entry's scoring options, checked; the rest, for torchmetrics).

    An option of another metric is refused here by name, rather than handed to torchmetrics
    as an unknown keyword.
    """
    everyone = {option.name for entry in list_metrics() for option in entry.scoring_options}
    ours = {name: value for name, value in kwargs.items() if name in everyone}
    rest = {name: value for name, value in kwargs.items() if name not in everyone}
    return scoring_options(info, ours), rest
