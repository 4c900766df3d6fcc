"""Where a metric's score was lost: `explain(ref, dist)` -> a map at the image's size.

    >>> ex = semantic_iqa.explain("ref.png", "dist.png")            # the default metric  # doctest: +SKIP
    >>> ex.heat.shape, ex.score                                      # ((H, W), 3.1)  # doctest: +SKIP
    >>> ex.save("map.png")                                           # map.png + map.npy  # doctest: +SKIP
    >>> semantic_iqa.explain("img.png", metric=NAME)                 # a no-reference metric  # doctest: +SKIP

The map is faithful to the metric itself, not to a stand-in model: it is computed through
the metric's own hooks (`Metric.differentiable_score`, `score_batch`, `make_reference_cache`,
`working_size`); nothing here knows which metric it explains. Two methods:

- "occlusion" (the default on a GPU): each cell of a grid of the distorted image is put
  back to the reference's pixels and the pair is scored again; the cell's map value is the
  score that restoring it gains. Reference features are computed once (the metric's reference
  cache, if it has one) and the occluded images are scored in batches, with the scoring
  options you give, as scoring does. For a no-reference metric, a cell is replaced by a
  blurred (or mean-filled) copy of itself.
- "gradients" (the default on a CPU, full reference only): integrated gradients along the
  straight path from the reference to the distorted image, through the metric's
  differentiable score; an option whose declaration names a value `for_gradients` (a flat,
  hard decision has no gradient) takes that value here.
  The map sums to about `score(ref, ref) - score(ref, dist)`.

Units and sign, for both: score points per pixel, positive where the region made the score
WORSE (lowered it; raised it, for a lower-is-better metric). A pixel that equals the
reference's gets exactly 0, so the identity pair gives an all-zero map. The reference is
resized to the distorted image's size to define the cells and the path when their sizes
differ. An image larger than the metric's input costs no full-size float copies: the work is
done at the size the metric sees (`resolution`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config import BackboneSpec
from ..errors import InvalidInputError, InvalidOptionError
from ..inputs import ImageLike, as_image_list
from ..registry import MetricInfo, default_metric, list_metrics, metric_info
from .resolution import decode, out_of_memory_as_typed

if TYPE_CHECKING:
    from collections.abc import Iterable

    from matplotlib.figure import Figure

    from ..contract import MetricOption, ResultField
    from ..metric import Metric

__all__ = ["Explanation", "METHODS", "NO_REFERENCE_BASELINES", "explain", "has_random_weights"]

METHODS = ("auto", "occlusion", "gradients")
NO_REFERENCE_BASELINES = ("blur", "mean")
GRADIENT_SUFFIX = " for gradients"  # settings["<option> for gradients"]: the value the gradients ran with


@dataclass
class Explanation:
    """Where one image's score was lost, and the scores around it.

    Attributes:
        heat: [H, W] float32 at the distorted image's size, score points per pixel;
            positive = this region made the score worse (restoring it would improve it:
            raise a higher-is-better score, lower a lower-is-better one).
        image: [H, W, 3] uint8, the distorted image (for no-reference metrics, the image).
        reference: [H, W, 3] uint8, the reference at the image's size; `None` without one.
        metric: the registry name and `title` the metric's name for people.
        method: "occlusion" or "gradients"; `settings` the method's options (grid, steps), the
            scoring options it ran with (those not given at the model's default; an option
            with a value for gradients also as "<option> for gradients") and "resolution",
            the size the metric saw the image at ("224x168").
        score: the metric's score of the pair (or image), as `score` gives it (which way is better:
            the entry's `higher_is_better`).
        details: the rest of the item's record: the metric's declared result fields
            (`MetricInfo.result_fields`). Each is also an attribute (`explanation.<field>`);
            a field another registered metric declares reads as `None`.
        random_weights: the model has random (tiny or test) weights: the map means nothing.
    """

    heat: np.ndarray
    image: np.ndarray
    reference: np.ndarray | None
    metric: str
    title: str
    method: str
    score: float
    settings: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    random_weights: bool = False

    def __getattr__(self, name: str) -> Any:
        # Called only for names that are not attributes: a declared result field of the item.
        # Why: callers read `explanation.<field>` as when the fields were attributes of their own.
        details = self.__dict__.get("details", {})  # not `self.details`: absent while unpickling
        if name in details:
            return details[name]
        if not name.startswith("_") and name in _declared_field_names():
            return None  # a figure this metric does not give
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def record(self) -> dict[str, Any]:
        """The item's record, as `score --json` gives it: `score` and the declared result fields."""
        return {"score": self.score, **self.details}

    def caption(self) -> str:
        """One line: metric, score, the figures its entry shows in reports, the scoring options and
        the method (the figure's title)."""
        parts = [f"{self.title} {self.score:.3f}"]
        declared_fields, options = _declaration(self.metric)
        parts += [text for item in declared_fields if (text := self._field_text(item))]
        for option in options:
            if option.name in self.settings:
                text = f"{option.name} {self.settings[option.name]}"
                for_gradients = self.settings.get(option.name + GRADIENT_SUFFIX)
                parts.append(text if for_gradients is None else f"{text} ({for_gradients} for the map)")
        parts.append(f"map: {self.method}")
        text = " | ".join(parts)
        return f"RANDOM WEIGHTS - {text}" if self.random_weights else text

    def _field_text(self, item: ResultField) -> str:
        """A result field as the caption shows it ("" when not shown)."""
        if not item.in_report or self.details.get(item.name) is None:
            return ""
        value, label = self.details[item.name], item.label or item.name
        if item.type == "bool":  # "<label> <state>", as the report writes it
            return f"{label} {item.states[bool(value)]}"
        if item.type == "float":
            return f"{label} {value:.3f}"
        return f"{label} {value}"

    def figure(self) -> Figure:
        """reference | distorted | map over the distorted image (matplotlib `Figure`)."""
        from .figure import explanation_figure

        return explanation_figure(self)

    def save(
        self, out: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable[str | os.PathLike] = ()
    ) -> tuple[Path, Path]:
        """Write the figure to `out` (.png, .jpg, .pdf or .svg) and the raw map beside it as `.npy`.

        `inputs` (e.g. the explained image files) are never written over, even with `overwrite`.

        Raises:
            OutputError: `out` or its `.npy` exists and `overwrite` is False, is one of
                `inputs`, or its folder does not exist.
            InvalidOptionError: an unknown figure suffix.
        """
        from .figure import save_explanation

        return save_explanation(self, Path(out), overwrite=overwrite, inputs=inputs)


def explain(
    *images: ImageLike,
    metric: str | None = None,
    method: str = "auto",
    weights: str | os.PathLike | None = None,
    model: Metric | None = None,
    device: str | torch.device | None = None,
    grid: int = 8,
    steps: int = 16,
    batch_size: int = 8,
    prompt: str | None = None,
    baseline: str = "blur",
    **options: Any,
) -> Explanation:
    """Explain one score: `explain(ref, dist)` (full reference) or `explain(image, metric=...)`.

    Args:
        images: one per image input of the metric's entry (`MetricInfo.inputs`): the reference
            and the distorted image, or the one image; a path, PIL image, uint8 array/tensor or
            float tensor in [0, 1] each.
        metric: registry name (`semantic_iqa.list_metrics()`); `None` = the metric of `model`,
            or the default metric.
        method: "occlusion", "gradients" (full reference only), or "auto": occlusion on a
            GPU, gradients on a CPU; no-reference metrics always use occlusion.
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of `metric` (e.g. `semantic_iqa.load_metric(...)`).
        device: where to load the model ("auto" = CUDA if available); ignored with `model`.
        grid: occlusion cells per side (grid x grid scorings).
        steps: integrated-gradient path points (each a forward and a backward pass).
        batch_size: images per backbone pass.
        prompt: the image's text, for metrics whose inputs include "prompt".
        baseline: no-reference occlusion: "blur" (a Gaussian-blurred copy) or "mean" (each
            cell filled with its mean colour).
        options: the metric's scoring options (`MetricInfo.scoring_options`; `None` = not
            given), for the reported score and occlusion; gradients use each option's
            `for_gradients` value where it declares one.

    Returns:
        An `Explanation`: `.heat` [H, W] (positive = score made worse there), the scores, `.save()`.

    Raises:
        InvalidInputError: wrong number of images for the metric, unreadable images, a prompt
            missing or not taken.
        InvalidOptionError: unknown method/baseline, gradients for a no-reference metric,
            grid/steps/batch_size below 1, a bad option value, a `model` of another metric.
        UnknownOptionError: an option the metric does not have (naming the metric that has it).
    """
    if metric is None:
        metric = model.info.name if model is not None else default_metric()
    info = metric_info(metric)
    _check_settings(info, method, grid, steps, batch_size, baseline)
    options = info.check_options(options)
    roles = [role for role in info.inputs if role != "prompt"]
    if len(images) != len(roles):
        raise InvalidInputError(f"{info.name} explains {len(roles)} image(s) ({', '.join(roles)}), got {len(images)}")
    _check_prompt(info, prompt)
    if model is None:
        from ..api import load_metric

        model = load_metric(info.name, weights, device)
    elif weights is not None:
        raise InvalidOptionError("pass weights= or model=, not both")
    info.check_model(model)
    items = [_one_image(image, role) for image, role in zip(images, roles, strict=True)]
    if method == "auto":
        method = "occlusion" if model.device.type == "cuda" or info.kind == "NR" else "gradients"
    from .methods import ExplainedItem, explain_image, explain_pair  # they build an Explanation: imported once defined

    texts = {"prompt": prompt} if "prompt" in info.inputs else {}
    with out_of_memory_as_typed(), torch.no_grad():
        decoded = [decode(item, role) for item, role in zip(items, roles, strict=True)]
        item = ExplainedItem(info, model, roles, items, decoded, texts)
        if info.kind == "FR":
            explanation = explain_pair(item, options, method, grid, steps, batch_size)
        else:
            explanation = explain_image(item, options, grid, batch_size, baseline)
    explanation.random_weights = has_random_weights(model)
    return explanation


def has_random_weights(model: Metric) -> bool:
    """True for models built by `make-tiny` / the test builders, whose backbones are named "(..., random)"."""
    config = getattr(model, "config", None)
    specs = [getattr(config, f.name) for f in fields(config)] if config is not None else []
    return any(isinstance(spec, BackboneSpec) and spec.name.endswith("random)") for spec in specs)


def _check_settings(info: MetricInfo, method: str, grid: int, steps: int, batch_size: int, baseline: str) -> None:
    if method not in METHODS:
        raise InvalidOptionError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "gradients" and info.kind != "FR":
        raise InvalidOptionError(
            f"{info.name} has no reference to integrate from: gradients explain full-reference metrics only; "
            "use method='occlusion'"
        )
    if baseline not in NO_REFERENCE_BASELINES:
        raise InvalidOptionError(f"unknown baseline {baseline!r}; choose one of {', '.join(NO_REFERENCE_BASELINES)}")
    for name, value in (("grid", grid), ("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")


def _check_prompt(info: MetricInfo, prompt: str | None) -> None:
    if "prompt" in info.inputs and prompt is None:
        raise InvalidInputError(f"{info.name} scores an image against its prompt: pass prompt=")
    if "prompt" not in info.inputs and prompt is not None:
        raise InvalidInputError(f"{info.name} takes no prompt")


def _one_image(image: ImageLike, role: str) -> ImageLike:
    """The one validated image of `image` (a batch or list of several is refused)."""
    items = as_image_list(image, role)
    if len(items) != 1:
        raise InvalidInputError(f"{role}: explain takes one image, got {len(items)}")
    return items[0]


def _declaration(metric: str) -> tuple[tuple[ResultField, ...], tuple[MetricOption, ...]]:
    """The result fields and scoring options of `metric`'s entry; none for a metric not registered."""
    try:
        info = metric_info(metric)
    except InvalidOptionError:  # e.g. an Explanation kept after its run-time metric was unregistered
        return (), ()
    return info.result_fields, info.scoring_options


def _declared_field_names() -> set[str]:
    """Every result field some registered metric declares."""
    return {item.name for info in list_metrics() for item in info.result_fields}
