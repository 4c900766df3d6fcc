"""torchmetrics `Metric`s for validation loops (Lightning, DDP included): the public import path.

The metrics themselves are generic, for any registered metric (`quality_metric.py`):
`FullReferenceQualityMetric(metric, ...)` (`update(dist, ref)`) and
`NoReferenceQualityMetric(metric, ...)` (`update(images)`). This module adds the one shortcut
named after a metric, kept with its signature and behaviour: `DSSSQAMetric`.

    metric = DSSSQAMetric(weights="...").to(device)
    metric.update(dist, ref)      # distorted first, as torchmetrics' (preds, target)
    metric.compute()              # mean score over everything seen, synced across processes
"""

from __future__ import annotations

import os
from typing import Any

from ..metric import Metric
from .quality_metric import FullReferenceQualityMetric, NoReferenceQualityMetric

__all__ = ["DSSSQAMetric", "FullReferenceQualityMetric", "NoReferenceQualityMetric"]


class DSSSQAMetric(FullReferenceQualityMetric):
    """Mean DSS-SQA score (0-5, higher = better), optionally with SROCC/PLCC against labels.

    `FullReferenceQualityMetric("dss_sqa", ...)` with the hard gate by default.

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

    # Class constants, as torchmetrics' own metrics have them (the instance's come from the registry).
    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 5.0

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        model: Metric | None = None,
        gate: str = "hard",
        correlation: bool = False,
        cache_references: bool = True,
        max_cached_references: int = 4096,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "dss_sqa",
            weights,
            model=model,
            correlation=correlation,
            cache_references=cache_references,
            max_cached_references=max_cached_references,
            gate=gate,
            **kwargs,
        )

    @property
    def gate(self) -> str | None:
        """The gate mode the scores are computed with."""
        return self.options.get("gate")  # None: the weights' own
