"""Adapters to other libraries: pyiqa (`pyiqa`), torchmetrics (`torchmetrics`), training losses (`loss`).

They import the core, never the reverse. `register_available()` runs at `import
semantic_iqa` so that `pyiqa.create_metric("dss_sqa")` works right after it.
`load_no_reference_metric` and `no_reference_scores` are what the no-reference adapters
share: a registry entry and its frozen model, checked against each other, and its call.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import TYPE_CHECKING

from ..errors import InvalidInputError, InvalidOptionError
from ..registry import MetricInfo, create_metric, metric_info

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

    from ..metric import Metric


def register_available() -> None:
    """Register with every installed library that keeps a registry (today: pyiqa)."""
    if importlib.util.find_spec("pyiqa") is None:
        return
    try:
        from .pyiqa import register

        register()
    except Exception as exc:  # a broken pyiqa install must not break semantic_iqa itself
        warnings.warn(f"semantic-iqa could not register with pyiqa: {exc}", RuntimeWarning, stacklevel=2)


def load_no_reference_metric(
    metric: str, weights: str | os.PathLike | None = None, model: Metric | None = None
) -> tuple[MetricInfo, Metric]:
    """The registry entry `metric` (a no-reference one) and its model, frozen and in eval mode.

    Args:
        metric: registry name of an NR metric, e.g. "mst_clipiqa" or "mst_clipiqa_prompt".
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of that entry (its class and fixed options, e.g. the
            MST-CLIPIQA variant, must be the entry's); loaded on the CPU from `weights` otherwise.

    Returns:
        (entry, model): the entry says which way is better and the score range; the model has
        `requires_grad` off on every parameter (in place, also for a `model` passed in).

    Raises:
        InvalidOptionError: unknown or full-reference `metric`; both `weights` and `model`; a
            `model` that is not what the entry describes.
    """
    info = metric_info(metric)
    if info.kind != "NR":
        raise InvalidOptionError(
            f"{metric!r} ({info.title}) is a full-reference metric; this adapter is for no-reference ones "
            "(use DSSSQAMetric / DSSSQALoss for DSS-SQA)"
        )
    if model is None:
        model = create_metric(metric, weights, device="cpu")
    elif weights is not None:
        raise InvalidOptionError("pass weights= or model=, not both")
    else:
        check_model_matches(info, model)
    return info, model.eval().requires_grad_(False)


def check_model_matches(info: MetricInfo, model: Metric) -> None:
    """Raise `InvalidOptionError` unless `model` is of `info`'s class with `info`'s fixed options.

    Why: both MST-CLIPIQA variants are one class, and the entry decides how a score is read
    (variant A in [1, 5], B unbounded); a variant-B model under the variant-A entry would be
    scored and turned into a loss on the wrong scale without any error.
    """
    expected_class = info.metric_class()
    if not isinstance(model, expected_class):
        raise InvalidOptionError(f"{info.name!r} needs a {expected_class.__name__} model, got {type(model).__name__}")
    for option, value in info.options.items():
        actual = getattr(model, option, value)  # an option the model does not expose cannot be checked
        if actual != value:
            raise InvalidOptionError(
                f"this model has {option}={actual!r} but {info.name!r} means {option}={value!r}; "
                "pass the metric= name that matches the model"
            )


def no_reference_scores(
    info: MetricInfo, model: Metric, images: torch.Tensor, prompts: Sequence[str] | None = None
) -> torch.Tensor:
    """[B] scores of float `images` [B, C, H, W] in [0, 1], with gradients, called as the entry says.

    An entry whose inputs include "prompt" (mst_clipiqa_prompt) is called `model(images,
    prompts)` and the model checks the prompts; any other refuses prompts here, by name,
    rather than let them be dropped or misread.
    """
    if "prompt" in info.inputs:
        return model(images, prompts).score
    if prompts is not None:
        raise InvalidInputError(f"{info.name!r} takes no prompts (only {', '.join(info.inputs)})")
    return model(images).score
