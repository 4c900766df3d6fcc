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
and the path when their sizes differ.
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
from ..inputs import ImageLike, as_image_list, load_padded, load_padded_batch, to_rgb_pil
from ..preprocess import pil_to_tensor, resize_bicubic_like_pil
from ..registry import MetricInfo, metric_info
from .attribution import grid_cells, integrated_gradients_map, occlusion_map

if TYPE_CHECKING:
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
        method: "occlusion" or "gradients"; `settings` the method's options (grid, steps, gate...).
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

    def save(self, out: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path]:
        """Write the figure to `out` (.png, .jpg, .pdf or .svg) and the raw map beside it as `.npy`.

        Raises:
            InvalidOptionError: `out` or its `.npy` exists and `overwrite` is False; an
                unknown figure suffix.
        """
        from .figure import save_explanation

        return save_explanation(self, Path(out), overwrite=overwrite)


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
    decoded = [_decode(item) for item in items]
    if method == "auto":
        method = "occlusion" if model.device.type == "cuda" or info.kind == "NR" else "gradients"
    with torch.no_grad():
        if info.kind == "FR":
            explanation = _explain_pair(
                info, model, items, decoded[0], decoded[1], method, gate, grid, steps, batch_size
            )
        else:
            explanation = _explain_image(info, model, decoded[0], prompt, grid, batch_size, baseline)
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


def _decode(item: ImageLike) -> torch.Tensor:
    """One image -> [3, H, W] float32 in [0, 1] on the CPU, at its own size (EXIF orientation applied)."""
    if isinstance(item, torch.Tensor) and item.is_floating_point():
        return item.detach().float().cpu().expand(3, *item.shape[-2:]).clone()
    return pil_to_tensor(to_rgb_pil(item))


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _explain_pair(
    info: MetricInfo,
    model: Any,
    items: list[ImageLike],
    ref: torch.Tensor,
    dist: torch.Tensor,
    method: str,
    gate: str | None,
    grid: int,
    steps: int,
    batch_size: int,
) -> Explanation:
    """DSS-SQA: reference features once, the distorted image varied.

    The reference and the reported score go through the metric's own decoding (`load_padded`:
    PIL for files, so the score is the one `score` and `score-dir` give); the varied images
    through its differentiable torch path, within about 1/255 of PIL's.
    """
    size = model.config.preprocess.image_size
    gate = model.config.gate.mode if gate is None else gate
    ref_features = model.encode(load_padded(items[0], size).unsqueeze(0))
    height, width = dist.shape[-2:]
    ref_at_dist = ref if ref.shape == dist.shape else resize_bicubic_like_pil(ref.unsqueeze(0), width, height)[0]

    def score_with(pair_gate: str):
        def score_fn(images: torch.Tensor) -> torch.Tensor:
            features = model.encode(load_padded_batch(images.to(model.device), size))
            return model.score_features(ref_features[[0] * len(images)], features, pair_gate).score

        return score_fn

    output = model.score_features(ref_features, model.encode(load_padded(items[1], size).unsqueeze(0)), gate)
    if method == "occlusion":
        heat, _ = occlusion_map(score_with(gate), dist, ref_at_dist, grid=grid, batch_size=batch_size)
        settings = {"grid": grid, "gate": gate}
    else:
        heat = integrated_gradients_map(
            score_with("off"), dist.to(model.device), ref_at_dist, steps=steps, batch_size=batch_size
        )
        settings = {"steps": steps, "gate": gate, "gradient gate": "off"}
    return Explanation(
        heat=heat.numpy(),
        image=_to_uint8(dist),
        reference=_to_uint8(ref_at_dist),
        metric=info.name,
        title=info.title,
        method=method,
        score=float(output.score[0]),
        settings=settings,
        fold_std=float(output.fold_std[0]),
        cos_sim=float(output.cos_sim[0]),
        gated=bool(output.gated[0]),
    )


def _explain_image(
    info: MetricInfo,
    model: Any,
    image: torch.Tensor,
    prompt: str | None,
    grid: int,
    batch_size: int,
    baseline: str,
) -> Explanation:
    """No reference: each cell replaced by a blurred or mean-filled copy of itself."""
    takes_prompt = "prompt" in info.inputs
    if takes_prompt and prompt is None:
        raise InvalidInputError(f"{info.name} scores an image against its generation prompt: pass prompt=")
    if not takes_prompt and prompt is not None:
        raise InvalidInputError(f"{info.name} takes no prompt")

    def score_fn(images: torch.Tensor) -> torch.Tensor:
        images = images.to(model.device)
        return model(images, [prompt] * len(images)).score if takes_prompt else model(images).score

    replacement = _blurred(image, grid) if baseline == "blur" else _cell_means(image, grid)
    heat, score = occlusion_map(score_fn, image, replacement, grid=grid, batch_size=batch_size)
    return Explanation(
        heat=heat.numpy(),
        image=_to_uint8(image),
        reference=None,
        metric=info.name,
        title=info.title,
        method="occlusion",
        score=score,
        settings={"grid": grid, "baseline": baseline},
    )


def _blurred(image: torch.Tensor, grid: int) -> torch.Tensor:
    """A Gaussian blur whose sigma is a quarter of a cell, so a cell's detail is gone but not its colours."""
    from torchvision.transforms.functional import gaussian_blur

    height, width = image.shape[-2:]
    sigma = max(max(height, width) / grid / 4, 0.5)
    kernel = min(2 * round(2 * sigma) + 1, 2 * (min(height, width) // 2) - 1)  # odd, and reflect padding fits
    if kernel < 3:
        return image.clone()
    return gaussian_blur(image.unsqueeze(0), [kernel, kernel], [sigma, sigma])[0]


def _cell_means(image: torch.Tensor, grid: int) -> torch.Tensor:
    filled = image.clone()
    for rows, cols in grid_cells(*image.shape[-2:], grid):
        filled[:, rows, cols] = image[:, rows, cols].mean(dim=(1, 2), keepdim=True)
    return filled
