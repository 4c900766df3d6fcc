"""Where a metric's score was lost: `explain(ref, dist)` -> a map at the image's size.

    >>> ex = semantic_iqa.explain("ref.png", "dist.png")            # DSS-SQA  # doctest: +SKIP
    >>> ex.heat.shape, ex.score                                      # ((H, W), 3.1)  # doctest: +SKIP
    >>> ex.save("map.png")                                           # map.png + map.npy  # doctest: +SKIP
    >>> semantic_iqa.explain("img.png", metric="mst_clipiqa")        # no reference  # doctest: +SKIP

The map is faithful to the metric itself, not to a stand-in model: it is computed by
scoring through the metric's own backbones, heads and gate. Two methods:

- "occlusion" (the default on a GPU): each cell of a grid of the distorted image is put
  back to the reference's pixels and the pair is scored again; the cell's map value is the
  score that restoring it gains. Reference features are computed once and the occluded
  images are scored in batches. It uses the gate mode you ask for, as scoring does. For a
  no-reference metric, a cell is replaced by a blurred (or mean-filled) copy of itself.
- "gradients" (the default on a CPU, DSS-SQA only): integrated gradients along the
  straight path from the reference to the distorted image, through the differentiable
  path the loss uses, hence with the gate OFF (the hard gate is flat and has no gradient).
  The map sums to about `score(ref, ref) - score(ref, dist)`.

Units and sign, for both: score points per pixel, positive where the region LOWERED the
score. A pixel that equals the reference's gets exactly 0, so the identity pair gives an
all-zero map. The reference is resized to the distorted image's size to define the cells
and the path when their sizes differ. An image larger than the metric's input costs no
full-size float copies: the work is done at the size the metric sees (`resolution`).
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
from ..registry import MetricInfo, metric_info
from .resolution import decode, out_of_memory_as_typed

if TYPE_CHECKING:
    from collections.abc import Iterable

    from matplotlib.figure import Figure

    from ..metric import Metric

__all__ = ["Explanation", "METHODS", "NO_REFERENCE_BASELINES", "explain", "has_random_weights"]

METHODS = ("auto", "occlusion", "gradients")
NO_REFERENCE_BASELINES = ("blur", "mean")


@dataclass
class Explanation:
    """Where one image's score was lost, and the scores around it.

    Attributes:
        heat: [H, W] float32 at the distorted image's size, score points per pixel;
            positive = this region lowered the score (restoring it would raise it).
        image: [H, W, 3] uint8, the distorted image (for no-reference metrics, the image).
        reference: [H, W, 3] uint8, the reference at the image's size; `None` without one.
        metric: registry name ("dss_sqa", "mst_clipiqa", ...) and `title` its name for people.
        method: "occlusion" or "gradients"; `settings` the method's options (grid, steps, gate...)
            and "resolution", the size the metric saw the image at ("224x168").
        score: the metric's score of the pair (or image) on the same path; higher = better.
        fold_std: DSS-SQA's fold spread (None for other metrics).
        cos_sim: DSS-SQA's CLIP cosine of the pair (None for other metrics).
        gated: whether DSS-SQA's gate changed the pair's score (None for other metrics).
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
    fold_std: float | None = None
    cos_sim: float | None = None
    gated: bool | None = None
    random_weights: bool = False

    def caption(self) -> str:
        """One line: metric, score, fold spread, gate state and method (the figure's title)."""
        parts = [f"{self.title} {self.score:.3f}"]
        if self.fold_std is not None:
            parts.append(f"fold spread ±{self.fold_std:.3f}")
        if self.gated is not None:
            gate = self.settings.get("gate", "")
            state = "" if gate == "off" else (": VETOED" if self.gated else ": passed")
            parts.append(f"gate {gate}{state} (cos {self.cos_sim:.2f})")
        parts.append(f"map: {self.method}")
        text = " | ".join(parts)
        return f"RANDOM WEIGHTS - {text}" if self.random_weights else text

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
    metric: str = "dss_sqa",
    method: str = "auto",
    weights: str | os.PathLike | None = None,
    model: Metric | None = None,
    device: str | torch.device | None = None,
    gate: str | None = None,
    grid: int = 8,
    steps: int = 16,
    batch_size: int = 8,
    prompt: str | None = None,
    baseline: str = "blur",
) -> Explanation:
    """Explain one score: `explain(ref, dist)` (full reference) or `explain(image, metric=...)`.

    Args:
        images: the reference and the distorted image (DSS-SQA), or the one image (no-reference
            metrics): a path, PIL image, uint8 array/tensor or float tensor in [0, 1] each.
        metric: registry name (`semantic_iqa.list_metrics()`).
        method: "occlusion", "gradients" (full reference only), or "auto": occlusion on a
            GPU, gradients on a CPU; no-reference metrics always use occlusion.
        weights: weights folder or Hub repo id (`None` = the metric's default); or pass `model`.
        model: an already loaded model of `metric` (e.g. `semantic_iqa.load_metric(...)`).
        device: where to load the model ("auto" = CUDA if available); ignored with `model`.
        gate: DSS-SQA gate for occlusion and the reported score ("hard", "soft", "off";
            `None` = the model's default). Gradients always run with the gate off.
        grid: occlusion cells per side (grid x grid scorings).
        steps: integrated-gradient path points (each a forward and a backward pass).
        batch_size: images per backbone pass.
        prompt: the generation prompt, for prompt-anchored metrics (mst_clipiqa_prompt).
        baseline: no-reference occlusion: "blur" (a Gaussian-blurred copy) or "mean" (each
            cell filled with its mean colour).

    Returns:
        An `Explanation`: `.heat` [H, W] (positive = score lost there), the scores, `.save()`.

    Raises:
        InvalidInputError: wrong number of images for the metric, unreadable images.
        InvalidOptionError: unknown method/baseline, gradients for a no-reference metric,
            grid/steps/batch_size below 1, a `model` of another metric.
    """
    info = metric_info(metric)
    _check_options(info, method, grid, steps, batch_size, baseline)
    roles = [role for role in info.inputs if role != "prompt"]
    if len(images) != len(roles):
        raise InvalidInputError(f"{info.name} explains {len(roles)} image(s) ({', '.join(roles)}), got {len(images)}")
    if model is None:
        from ..api import load_metric

        model = load_metric(info.name, weights, device)
    elif weights is not None:
        raise InvalidOptionError("pass weights= or model=, not both")
    info.check_model(model)
    items = [_one_image(image, role) for image, role in zip(images, roles, strict=True)]
    if method == "auto":
        method = "occlusion" if model.device.type == "cuda" or info.kind == "NR" else "gradients"
    from .methods import explain_image, explain_pair  # they build an Explanation: imported once it is defined

    with out_of_memory_as_typed(), torch.no_grad():
        decoded = [decode(item, role) for item, role in zip(items, roles, strict=True)]
        if info.kind == "FR":
            explanation = explain_pair(
                info, model, items, decoded[0], decoded[1], method, gate, grid, steps, batch_size
            )
        else:
            explanation = explain_image(info, model, decoded[0], prompt, grid, batch_size, baseline)
    explanation.random_weights = has_random_weights(model)
    return explanation


def has_random_weights(model: Metric) -> bool:
    """True for models built by `make-tiny` / the test builders, whose backbones are named "(..., random)"."""
    config = getattr(model, "config", None)
    specs = [getattr(config, f.name) for f in fields(config)] if config is not None else []
    return any(isinstance(spec, BackboneSpec) and spec.name.endswith("random)") for spec in specs)


def _check_options(info: MetricInfo, method: str, grid: int, steps: int, batch_size: int, baseline: str) -> None:
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


def _one_image(image: ImageLike, role: str) -> ImageLike:
    """The one validated image of `image` (a batch or list of several is refused)."""
    items = as_image_list(image, role)
    if len(items) != 1:
        raise InvalidInputError(f"{role}: explain takes one image, got {len(items)}")
    return items[0]
