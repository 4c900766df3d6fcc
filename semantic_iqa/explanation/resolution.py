"""Explaining an image larger than the metric's input, in memory bounded by its 8-bit pixels.

A metric shrinks an image before looking at it (to `Metric.working_size`: e.g. the longer
side, or the shorter side before a centre crop, at its input size), and both methods score
the image tens of times. Done on full-size float copies, each scoring held batches of them,
and for gradients their autograd graph: 6.0 GB for a 12 MP pair, 11 GB for 24 MP
(`docs/explain.md`). Here nothing larger than the 8-bit image, the map and a strip of rows is
held at full size, and the maps stay what they were:

- The image is resampled to the working size as `preprocess.resize_bicubic_like_pil` does
  (width first, then height; the width pass treats each row on its own), as the metrics of
  this package resample. `Resampled` keeps the width-resampled rows (full height, the
  metric's width), built strip by strip; the image with some rows changed (an occluded cell)
  costs a width pass of those rows. The metric's own resize of the result changes nothing
  (an axis at its size is not resampled): scoring it IS scoring the image. (A metric that
  resamples otherwise is explained on the image as resampled here.)
- Full-reference occlusion replaces cells of the full-size image, as before (`occlusion_map_at_size`).
- Integrated gradients follow the same full-size path as before, each point held as its
  width-resampled rows; the gradient goes back through the width pass strip by strip
  (`integrated_gradients_at_size`): a per-pixel map at the image's size, exact zeros included.
- No-reference occlusion works on the resampled image, whose cells stand for the same cells
  of the full image: a blur a quarter of a cell wide at full size would cost more than the
  whole explanation.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from ..errors import ResourceLimitError, SemanticIQAError
from ..inputs import ImageLike, to_rgb_pil
from ..preprocess import resize_bicubic_like_pil
from .attribution import SAME_PIXEL_TOLERANCE, Cell, grid_cells, occlusion_gains

STRIP_VALUES = 4_000_000  # floats held per strip of rows (16 MB): 222 rows of a 6,000-pixel-wide photo
Pixels = Image.Image | torch.Tensor  # an upright RGB PIL image, or a float [C, H, W] tensor in [0, 1] (C = 1 or 3)
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def decode(item: ImageLike, role: str) -> Pixels:
    """One validated image -> an upright RGB PIL image (8 bits a channel), or the float tensor as given.

    Raises:
        ResourceLimitError: more pixels than `PIL.Image.MAX_IMAGE_PIXELS` (`check_pixel_count`);
            a file is refused before it is decoded.
    """
    if isinstance(item, torch.Tensor) and item.is_floating_point():
        pixels: Pixels = item.detach()
    else:
        with warnings.catch_warnings():  # PIL only warns for a file over its limit (and refuses one over twice it)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                pixels = to_rgb_pil(item)
            except Image.DecompressionBombWarning as exc:
                raise ResourceLimitError(
                    f"{role} {item}: {str(exc).rstrip('.')} (PIL.Image.MAX_IMAGE_PIXELS); "
                    "shrink the image first, or raise that limit"
                ) from None
    check_pixel_count(*size_of(pixels), role)
    return pixels


def check_pixel_count(width: int, height: int, role: str) -> None:
    """Refuse an image over PIL's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`), whatever its kind.

    PIL itself only warns for files between the limit and twice it; arrays and tensors it never sees.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ResourceLimitError(
            f"{role}: {width}x{height} = {width * height:,} pixels, more than explain takes "
            f"({limit:,}: PIL.Image.MAX_IMAGE_PIXELS); shrink the image first, or raise that limit"
        )


def size_of(pixels: Pixels) -> tuple[int, int]:
    """(width, height)."""
    if isinstance(pixels, Image.Image):
        return pixels.size
    return int(pixels.shape[-1]), int(pixels.shape[-2])


class Resampled:
    """`pixels` at `width x height` as the metric's torch path resamples it, keeping the width pass.

    Attributes:
        pixels: the full-size image.
        rows: [3, full height, width] float32, every row resampled to the new width.
    """

    def __init__(self, pixels: Pixels, width: int, height: int) -> None:
        self.pixels, self.width, self.height = pixels, width, height
        full_width, full_height = size_of(pixels)
        strips = _strips(full_height, full_width)  # one strip as floats at a time
        rows = [_width_pass(_float_block(pixels, slice(*strip)).unsqueeze(0), width)[0] for strip in strips]
        self.rows = torch.cat(rows, dim=1) if len(rows) > 1 else rows[0]

    def image(self) -> torch.Tensor:
        """[3, height, width] float32 in [0, 1]."""
        return _height_pass(self.rows.unsqueeze(0), self.width, self.height)[0]

    def occluded(self, replacement: Pixels, cells: list[Cell]) -> torch.Tensor:
        """[len(cells), 3, height, width]: the image with each cell (full-size rows, columns) from `replacement`."""
        batch = self.rows.unsqueeze(0).repeat(len(cells), 1, 1, 1)
        for index, (rows, cols) in enumerate(cells):
            band = _float_block(self.pixels, rows)
            band[:, :, cols] = _float_block(replacement, rows, cols)
            batch[index, :, rows] = _width_pass(band.unsqueeze(0), self.width)[0]
        return _height_pass(batch, self.width, self.height)


def resample(pixels: Pixels, width: int, height: int) -> torch.Tensor:
    """[3, height, width] float32 in [0, 1] on the CPU: `pixels` resized as the metric's torch path resizes it."""
    return Resampled(pixels, width, height).image()


def at_size(pixels: Pixels, width: int, height: int) -> Pixels:
    """`pixels` at `width x height` (the reference at the distorted image's size): PIL bicubic, or torch for tensors."""
    if size_of(pixels) == (width, height):
        return pixels
    if isinstance(pixels, Image.Image):
        return pixels.resize((width, height), Image.Resampling.BICUBIC)
    return resample(pixels, width, height)


@torch.no_grad()
def occlusion_map_at_size(
    score_fn: ScoreFn, image: Resampled, replacement: Pixels, *, grid: int, batch_size: int
) -> tuple[torch.Tensor, float]:
    """`attribution.occlusion_map` on the full-size image's cells, scored at the metric's size: (map [H, W], score)."""
    width, height = size_of(image.pixels)

    def differs(rows: slice, cols: slice) -> bool:
        change = _float_block(image.pixels, rows, cols) - _float_block(replacement, rows, cols)
        return bool(change.abs().max() > SAME_PIXEL_TOLERANCE)

    base_score = float(score_fn(image.image().unsqueeze(0))[0])
    cells = [(cell, cell) for cell in grid_cells(height, width, grid)]

    def occlude(chunk: list[Cell]) -> torch.Tensor:
        return image.occluded(replacement, chunk)

    return occlusion_gains(score_fn, base_score, cells, occlude, differs, batch_size, (height, width)), base_score


def integrated_gradients_at_size(
    score_fn: ScoreFn,
    image: Pixels,
    baseline: Pixels,
    width: int,
    height: int,
    *,
    steps: int,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """`attribution.integrated_gradients_map` of the metric at the image's size: [H, W] float32 on the CPU.

    The function integrated is `score_fn` after the metric's resampling to `width x height`,
    along the straight full-size path from `baseline` (same size as `image`) to `image`: the
    map the metric would give on full-size copies, but each path point only exists as its
    width-resampled rows. Per batch of path points: (1) their rows, strip by strip; (2) the
    score's gradient with respect to the rows, through the height pass and the metric; (3) that
    gradient back through the width pass, strip by strip, times the full-size difference.
    """
    full_width, full_height = size_of(image)
    heat = torch.zeros(full_height, full_width)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    for start in range(0, steps, batch_size):
        alpha = alphas[start : start + batch_size].view(-1, 1, 1, 1)
        strips = list(_strips(full_height, len(alpha) * full_width))
        rows = torch.empty(len(alpha), 3, full_height, width)
        with torch.no_grad():
            for top, bottom in strips:
                rows[:, :, top:bottom] = _width_pass(_path(image, baseline, alpha, top, bottom)[0], width)
        rows.requires_grad_(True)
        with torch.enable_grad():
            scores = score_fn(_height_pass(rows, width, height).to(device))
            (row_gradient,) = torch.autograd.grad(scores.sum(), rows)
        for top, bottom in strips:
            points, difference = _path(image, baseline, alpha, top, bottom)
            points.requires_grad_(True)
            with torch.enable_grad():
                (gradient,) = torch.autograd.grad(
                    _width_pass(points, width), points, grad_outputs=row_gradient[:, :, top:bottom]
                )
            heat[top:bottom] -= (difference * gradient.sum(dim=0)).sum(dim=0)
        del rows, row_gradient  # before the next batch's
    return (heat / steps).numpy()


def _path(
    image: Pixels, baseline: Pixels, alpha: torch.Tensor, top: int, bottom: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `top:bottom` of the path points `baseline + alpha * (image - baseline)` [B, 3, rows, W], and the change."""
    start = _float_block(baseline, slice(top, bottom))
    difference = _float_block(image, slice(top, bottom)) - start
    return start + alpha * difference, difference


def _width_pass(batch: torch.Tensor, width: int) -> torch.Tensor:
    """[B, 3, rows, W] -> [B, 3, rows, width]: the metric's first pass, each row on its own."""
    return resize_bicubic_like_pil(batch, width, batch.shape[-2])


def _height_pass(batch: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[B, 3, H, width] -> [B, 3, height, width]: the metric's second pass (none when `height` is H)."""
    return resize_bicubic_like_pil(batch, width, height)


def to_uint8(pixels: Pixels) -> np.ndarray:
    """[H, W, 3] uint8 of `pixels`, for display (tensors converted strip by strip)."""
    if isinstance(pixels, Image.Image):
        return np.array(pixels, dtype=np.uint8)
    width, height = size_of(pixels)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top, bottom in _strips(height, width):
        block = _float_block(pixels, slice(top, bottom))
        out[top:bottom] = (block.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return out


def _strips(height: int, row_values: int) -> Iterator[tuple[int, int]]:
    """(top, bottom) of strips of rows holding about `STRIP_VALUES` floats, `row_values` (x 3 channels) a row."""
    rows = max(1, STRIP_VALUES // (3 * row_values))
    for top in range(0, height, rows):
        yield top, min(top + rows, height)


def _float_block(pixels: Pixels, rows: slice, cols: slice | None = None) -> torch.Tensor:
    """[3, rows, cols] float32 on the CPU, a new tensor: uint8 / 255 for PIL images (as `pil_to_tensor`)."""
    if isinstance(pixels, Image.Image):
        left, right = (cols.start, cols.stop) if cols is not None else (0, pixels.width)
        array = np.asarray(pixels.crop((left, rows.start, right, rows.stop)), dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)
    block = pixels[..., rows, cols if cols is not None else slice(None)].detach()
    out = torch.empty(3, *block.shape[-2:])  # always a copy: callers write into it, never into the caller's tensor
    return out.copy_(block.expand(3, *block.shape[-2:]))


@contextlib.contextmanager
def out_of_memory_as_typed() -> Iterator[None]:
    """Out of memory (numpy's MemoryError, torch's "can't allocate memory", CUDA's) -> `ResourceLimitError`."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, SemanticIQAError) or not _is_out_of_memory(exc):
            raise
        asked = re.search(r"allocate (\d+) bytes", str(exc))  # torch's CPU allocator says how much
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = f"{int(asked[1]) / 2**20:.0f} MiB more could not be had" if asked else first_line
        raise ResourceLimitError(
            f"explain ran out of memory ({reason[:120]}); pass a smaller batch_size (--batch-size), "
            "use smaller images, or free memory"
        ) from None


def _is_out_of_memory(exc: BaseException) -> bool:
    out_of_memory = getattr(torch, "OutOfMemoryError", None)
    if isinstance(exc, MemoryError) or (out_of_memory is not None and isinstance(exc, out_of_memory)):
        return True
    text = str(exc).lower()
    return "can't allocate memory" in text or "out of memory" in text
