"""The two kinds of explanation: a full-reference pair (DSS-SQA) and a no-reference image (MST-CLIPIQA).

`semantic_iqa.explanation.explain` checks the options and decodes the images; these run the
methods (`attribution`) at the size the metric sees (`resolution`) and build the `Explanation`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidInputError
from ..inputs import ImageLike, load_padded, load_padded_batch
from ..registry import MetricInfo
from . import Explanation
from .attribution import grid_cells, occlusion_map
from .resolution import (
    Pixels,
    Resampled,
    at_size,
    dss_working_size,
    integrated_gradients_at_size,
    mst_working_size,
    occlusion_map_at_size,
    resample,
    size_of,
    to_uint8,
)


def explain_pair(
    info: MetricInfo,
    model: Any,
    items: list[ImageLike],
    ref: Pixels,
    dist: Pixels,
    method: str,
    gate: str | None,
    grid: int,
    steps: int,
    batch_size: int,
) -> Explanation:
    """DSS-SQA: reference features once, the distorted image varied.

    The reference and the reported score go through the metric's own decoding (`load_padded`:
    PIL for files, so the score is the one `score` and `score-dir` give); the varied images
    through its differentiable torch path, within about 1/255 of PIL's. Both methods vary the
    distorted image at the size the metric sees it (`resolution`), the reference resampled to it.
    """
    size = model.config.preprocess.image_size
    gate = model.config.gate.mode if gate is None else gate
    ref_features = model.encode(load_padded(items[0], size).unsqueeze(0))
    full_width, full_height = size_of(dist)
    width, height = dss_working_size(full_width, full_height, size)
    ref_at_dist = at_size(ref, full_width, full_height)
    dist_small = Resampled(dist, width, height)

    def score_with(pair_gate: str):
        def score_fn(images: torch.Tensor) -> torch.Tensor:
            features = model.encode(load_padded_batch(images.to(model.device), size))
            return model.score_features(ref_features[[0] * len(images)], features, pair_gate).score

        return score_fn

    output = model.score_features(ref_features, model.encode(load_padded(items[1], size).unsqueeze(0)), gate)
    if method == "occlusion":
        heat, _ = occlusion_map_at_size(score_with(gate), dist_small, ref_at_dist, grid=grid, batch_size=batch_size)
        heat, settings = heat.numpy(), {"grid": grid, "gate": gate}
    else:
        heat = integrated_gradients_at_size(
            score_with("off"), dist, ref_at_dist, width, height, steps=steps, batch_size=batch_size, device=model.device
        )
        settings = {"steps": steps, "gate": gate, "gradient gate": "off"}
    settings["resolution"] = f"{width}x{height}"
    return Explanation(
        heat=heat,
        image=to_uint8(dist),
        reference=to_uint8(ref_at_dist),
        metric=info.name,
        title=info.title,
        method=method,
        score=float(output.score[0]),
        settings=settings,
        fold_std=float(output.fold_std[0]),
        cos_sim=float(output.cos_sim[0]),
        gated=bool(output.gated[0]),
    )


def explain_image(
    info: MetricInfo,
    model: Any,
    image: Pixels,
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

    # Cells and their blur at the size the metric sees (shorter side at its image_size, then cropped).
    full_width, full_height = size_of(image)
    image_size = getattr(getattr(model, "config", None), "image_size", None)
    width, height = mst_working_size(full_width, full_height, image_size) if image_size else (full_width, full_height)
    small = resample(image, width, height)
    replacement = _blurred(small, grid) if baseline == "blur" else _cell_means(small, grid)
    heat, score = occlusion_map(
        score_fn, small, replacement, grid=grid, batch_size=batch_size, out_size=(full_height, full_width)
    )
    return Explanation(
        heat=heat.numpy(),
        image=to_uint8(image),
        reference=None,
        metric=info.name,
        title=info.title,
        method="occlusion",
        score=score,
        settings={"grid": grid, "baseline": baseline, "resolution": f"{width}x{height}"},
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
