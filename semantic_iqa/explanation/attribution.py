"""Attribution of a score to image regions: occlusion on a grid, and integrated gradients.

Both work on any differentiable `score_fn`: float images [B, 3, H, W] in [0, 1] -> [B]
scores (higher = better). Both return a map [H, W] in score points per pixel, signed so that
**positive = this region lowered the score** (restoring it would raise the score), in the
image's own pixel grid.

- `occlusion_map`: for each cell of a grid, the image with that cell taken from
  `replacement` (the reference, or a blurred copy for no-reference metrics) is scored; the
  cell's gain `score(occluded) - score(image)` is spread evenly over its pixels. Cells where
  the image already equals the replacement (within 1e-4) are not scored: their gain is exactly 0.
- `integrated_gradients_map`: attributions along the straight path from `baseline` to
  `image` (Sundararajan et al., 2017), summed over channels and negated. Completeness:
  the map sums to `score(baseline) - score(image)` up to the Riemann error of `steps`.

`occlusion_gains` is occlusion's core, which `resolution` also uses to explain an image
larger than the metric's input without full-size float copies of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
Cell = tuple[slice, slice]  # rows, columns

# A cell whose replacement differs by less than this everywhere is no change (an 8-bit grey
# level is 1/255 = 0.0039); scoring it anyway would only map float rounding noise.
SAME_PIXEL_TOLERANCE = 1e-4


def grid_cells(height: int, width: int, grid: int) -> Iterator[Cell]:
    """The `grid x grid` cells (row slice, column slice) tiling an image; edge cells take the remainder."""
    yield from _cells(height, width, min(grid, height), min(grid, width))


def _cells(height: int, width: int, rows: int, cols: int) -> Iterator[Cell]:
    """`rows x cols` cells tiling a `height x width` image, row by row."""
    row_edges = torch.linspace(0, height, rows + 1).round().long().tolist()
    col_edges = torch.linspace(0, width, cols + 1).round().long().tolist()
    for top, bottom in zip(row_edges[:-1], row_edges[1:], strict=True):
        for left, right in zip(col_edges[:-1], col_edges[1:], strict=True):
            yield slice(top, bottom), slice(left, right)


@torch.no_grad()
def occlusion_map(
    score_fn: ScoreFn,
    image: torch.Tensor,
    replacement: torch.Tensor,
    *,
    grid: int = 8,
    batch_size: int = 8,
    out_size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, float]:
    """Score gained by replacing each grid cell of `image` with `replacement`'s pixels.

    Args:
        score_fn: [B, 3, H, W] -> [B] scores, higher = better.
        image: [3, H, W] float in [0, 1], the image whose score is explained.
        replacement: [3, H, W], what a cell is replaced by (same size as `image`).
        grid: cells per side (fewer where the image has fewer pixels than that).
        batch_size: occluded images scored per call.
        out_size: (height, width) of the map, when `image` is a shrunk copy of a larger image:
            each cell's gain is spread over the same cell of the larger image's grid.

    Returns:
        (map [out_size or H, W] float32 on the CPU, positive = the cell lowered the score; the score of `image`).
    """
    height, width = image.shape[-2:]
    out_size = out_size or (height, width)
    counts = min(grid, height), min(grid, width)

    def occlude(cells: list[Cell]) -> torch.Tensor:
        occluded = image.unsqueeze(0).repeat(len(cells), 1, 1, 1)
        for index, (rows, cols) in enumerate(cells):
            occluded[index, :, rows, cols] = replacement[:, rows, cols]
        return occluded

    def differs(rows: slice, cols: slice) -> bool:
        return bool((image[:, rows, cols] - replacement[:, rows, cols]).abs().max() > SAME_PIXEL_TOLERANCE)

    base_score = float(score_fn(image.unsqueeze(0))[0])
    cells = list(zip(_cells(height, width, *counts), _cells(*out_size, *counts), strict=True))
    return occlusion_gains(score_fn, base_score, cells, occlude, differs, batch_size, out_size), base_score


def occlusion_gains(
    score_fn: ScoreFn,
    base_score: float,
    cells: list[tuple[Cell, Cell]],
    occlude: Callable[[list[Cell]], torch.Tensor],
    differs: Callable[[slice, slice], bool],
    batch_size: int,
    out_size: tuple[int, int],
) -> torch.Tensor:
    """The core of `occlusion_map`: [out_size] map of each cell's gain, spread evenly over its map cell.

    `cells` pairs the cell that `occlude` replaces with the cell of the map that shows its gain;
    cells that `differs` says are unchanged are not scored (gain exactly 0).
    """
    heat = torch.zeros(*out_size)
    changed = [(cell, shown) for cell, shown in cells if differs(*cell)]
    for start in range(0, len(changed), batch_size):
        chunk = changed[start : start + batch_size]
        gains = score_fn(occlude([cell for cell, _ in chunk])).float().cpu() - base_score
        for (_, (rows, cols)), gain in zip(chunk, gains.tolist(), strict=True):
            area = (rows.stop - rows.start) * (cols.stop - cols.start)
            heat[rows, cols] = gain / area
    return heat


def integrated_gradients_map(
    score_fn: ScoreFn,
    image: torch.Tensor,
    baseline: torch.Tensor,
    *,
    steps: int = 16,
    batch_size: int = 4,
) -> torch.Tensor:
    """Integrated gradients of the score from `baseline` to `image`, negated: [H, W] float32 on the CPU.

    Uses the midpoint rule with `steps` points; the map sums to about
    `score(baseline) - score(image)` (more steps, closer). Pixels where `image` equals
    `baseline` get exactly 0.

    Args:
        score_fn: differentiable [B, 3, H, W] -> [B] scores, higher = better.
        image: [3, H, W] float in [0, 1].
        baseline: [3, H, W], the "unchanged" image (for a full-reference metric the reference at `image`'s size).
        steps: points on the path (the cost is `steps` forward and backward passes).
        batch_size: path points per pass.
    """
    image = image.detach()
    baseline = baseline.detach().to(image.device, image.dtype)
    delta = image - baseline
    gradient_sum = torch.zeros_like(image)
    alphas = (torch.arange(steps, dtype=image.dtype, device=image.device) + 0.5) / steps
    for start in range(0, steps, batch_size):
        alpha = alphas[start : start + batch_size].view(-1, 1, 1, 1)
        path = (baseline + alpha * delta).requires_grad_(True)
        with torch.enable_grad():
            scores = score_fn(path)
            (gradients,) = torch.autograd.grad(scores.sum(), path)
        gradient_sum += gradients.sum(dim=0)
    attribution = delta * gradient_sum / steps  # score(image) - score(baseline), per pixel and channel
    return (-attribution.sum(dim=0)).float().cpu()
