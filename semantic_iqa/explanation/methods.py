"""The two kinds of explanation: a full-reference pair and a no-reference image, through the metric's hooks.

`semantic_iqa.explanation.explain` checks the options and decodes the images; these run the
methods (`attribution`) at the size the metric sees (`Metric.working_size`, `resolution`) and
build the `Explanation`. Only the metric contract is used (`semantic_iqa.metric.Metric`):

- the reported score and figures: `score_batch` on the images as `image_transform` decodes
  them, so they are the ones `score` and `score-dir` give (`to_records()[0]`);
- the varied images: `differentiable_score`, with the reference as `image_transform` decodes
  it (which the metric's own resampling leaves as it is) and its features encoded once when
  the metric has a reference cache (`make_reference_cache`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..contract import check_record
from ..inputs import ImageLike
from ..registry import MetricInfo
from . import GRADIENT_SUFFIX, Explanation
from .attribution import grid_cells, occlusion_map
from .resolution import (
    Pixels,
    Resampled,
    at_size,
    integrated_gradients_at_size,
    occlusion_map_at_size,
    resample,
    size_of,
    to_uint8,
)

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ExplainedItem:
    """What is explained: the metric, its model, and the one item.

    Attributes:
        roles: the image inputs' names, in order (`MetricInfo.inputs` without "prompt").
        items: the validated images as given; decoded: the same, decoded (`resolution.decode`).
        texts: text inputs by role (e.g. "prompt"), one value for the item.
    """

    info: MetricInfo
    model: Any
    roles: list[str]
    items: list[ImageLike]
    decoded: list[Pixels]
    texts: dict[str, Any]

    def extras(self, count: int) -> dict[str, list[Any]]:
        """The text inputs for a batch of `count` copies of the item."""
        return {role: [value] * count for role, value in self.texts.items()}

    def transformed(self) -> dict[str, torch.Tensor]:
        """Role -> [1, 3, S, S] on the model's device: the images as the metric's `image_transform` decodes them."""
        transform = self.model.image_transform()
        pairs = zip(self.roles, self.items, strict=True)
        return {role: transform(item).unsqueeze(0).to(self.model.device) for role, item in pairs}

    def record(
        self, images: dict[str, torch.Tensor], options: dict[str, Any], reference_cache: Any = None
    ) -> dict[str, Any]:
        """The item's record from `score_batch` of `images` (`transformed`), checked against the declared fields."""
        output = self.model.score_batch(images, self.extras(1), reference_cache=reference_cache, **options)
        record = output.to_records()[0]
        check_record(self.info.name, self.info.result_fields, record)
        return record

    def settings(self, options: dict[str, Any], method: str) -> dict[str, Any]:
        """The scoring options the explanation ran with: as given, else the model's default."""
        config = getattr(self.model, "config", None)
        defaults = config.to_dict() if hasattr(config, "to_dict") else {}
        settings = {}
        for option in self.info.scoring_options:
            value = options.get(option.name)
            value = option.default_in(defaults) if value is None else value
            if value is not None:
                settings[option.name] = value
            if method == "gradients" and option.for_gradients is not None:
                settings[option.name + GRADIENT_SUFFIX] = option.for_gradients
        return settings

    def explanation(self, record: dict[str, Any], **parts: Any) -> Explanation:
        """The `Explanation` of `record` (its score and figures) and `parts` (heat, image, ...)."""
        details = dict(record)
        score = float(details.pop("score"))
        return Explanation(metric=self.info.name, title=self.info.title, score=score, details=details, **parts)


def for_gradients(info: MetricInfo, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with each option that declares a value for gradients (`for_gradients`) at that value."""
    changed = {option.name: option.for_gradients for option in info.scoring_options if option.for_gradients is not None}
    return {**options, **changed}


def explain_pair(
    item: ExplainedItem, options: dict[str, Any], method: str, grid: int, steps: int, batch_size: int
) -> Explanation:
    """Full reference: the reference's features once, the distorted image varied.

    The reference and the reported score go through the metric's own decoding (PIL for files,
    so the score is the one `score` and `score-dir` give); the varied images through its
    differentiable path. Both methods vary the distorted image at the size the metric sees it
    (`resolution`), the reference resampled to the distorted image's size.
    """
    model, (ref_role, image_role) = item.model, item.roles
    ref, dist = item.decoded
    cache = model.make_reference_cache(1)  # one reference: its features are computed once
    as_decoded = item.transformed()
    record, reference = item.record(as_decoded, options, cache), as_decoded[ref_role]
    full_width, full_height = size_of(dist)
    width, height = model.working_size(full_width, full_height)
    ref_at_dist = at_size(ref, full_width, full_height)

    def score_with(pair_options: dict[str, Any]) -> ScoreFn:
        def score_fn(images: torch.Tensor) -> torch.Tensor:
            pair = {ref_role: reference.expand(len(images), -1, -1, -1), image_role: images.to(model.device)}
            score = model.differentiable_score(pair, item.extras(len(images)), reference_cache=cache, **pair_options)
            return _as_goodness(item.info, score)

        return score_fn

    if method == "occlusion":
        dist_small = Resampled(dist, width, height)
        heat, _ = occlusion_map_at_size(score_with(options), dist_small, ref_at_dist, grid=grid, batch_size=batch_size)
        heat, settings = heat.numpy(), {"grid": grid}
    else:
        heat = integrated_gradients_at_size(
            score_with(for_gradients(item.info, options)),
            dist,
            ref_at_dist,
            width,
            height,
            steps=steps,
            batch_size=batch_size,
            device=model.device,
        )
        settings = {"steps": steps}
    settings.update(item.settings(options, method), resolution=f"{width}x{height}")
    return item.explanation(
        record, heat=heat, image=to_uint8(dist), reference=to_uint8(ref_at_dist), method=method, settings=settings
    )


def explain_image(
    item: ExplainedItem, options: dict[str, Any], grid: int, batch_size: int, baseline: str
) -> Explanation:
    """No reference: each cell replaced by a blurred or mean-filled copy of itself."""
    model, (role,) = item.model, item.roles
    image = item.decoded[0]
    record = item.record(item.transformed(), options)

    def score_fn(images: torch.Tensor) -> torch.Tensor:
        score = model.differentiable_score({role: images.to(model.device)}, item.extras(len(images)), **options)
        return _as_goodness(item.info, score)

    # Cells and their blur at the size the metric sees (e.g. shorter side at its input size).
    full_width, full_height = size_of(image)
    width, height = model.working_size(full_width, full_height)
    small = resample(image, width, height)
    replacement = _blurred(small, grid) if baseline == "blur" else _cell_means(small, grid)
    heat, _ = occlusion_map(
        score_fn, small, replacement, grid=grid, batch_size=batch_size, out_size=(full_height, full_width)
    )
    settings = {"grid": grid, "baseline": baseline, **item.settings(options, "occlusion")}
    settings["resolution"] = f"{width}x{height}"
    return item.explanation(
        record, heat=heat.numpy(), image=to_uint8(image), reference=None, method="occlusion", settings=settings
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


def _as_goodness(info: MetricInfo, score: torch.Tensor) -> torch.Tensor:
    """`score` turned so that higher is better: the maps then show quality lost as positive
    whichever way the metric's score is better (a distance that grew is a loss too)."""
    return score if info.higher_is_better else -score
