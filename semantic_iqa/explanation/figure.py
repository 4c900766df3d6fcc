"""Drawing an `Explanation`: reference | distorted | map over the distorted image (matplotlib).

matplotlib is an optional extra (`pip install "semantic-iqa[viz]"`): the maps themselves
need only torch; drawing them needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidOptionError
from ..outputs import check_output_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..outputs import Inputs
    from . import Explanation

FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
COLOUR_PERCENTILE = 99.5
# Pixels a panel's image keeps on its longer side: 2.5 times what a 3.6-inch panel shows at
# 110 dpi. matplotlib would shrink a 12 MP image itself, through float RGBA copies of it all
# (0.6 GB measured), and a PDF or SVG would embed every pixel.
DISPLAY_MAX_SIDE = 1024


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib `Figure` of `width` x `height` inches, or `InvalidOptionError` naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InvalidOptionError("drawing explanation maps needs matplotlib: pip install 'semantic-iqa[viz]'") from None
    # A bare Figure (no pyplot): no GUI backend, no global figure list to leak into.
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def explanation_figure(explanation: Explanation, panel_inches: float = 3.6) -> Figure:
    """The figure: one panel per image and the map overlaid on the distorted image, with a colour bar.

    Red = the region made the score worse (lowered it; raised it for a lower-is-better metric), blue =
    better; the scale is symmetric about 0, labelled in score points per pixel, and saturates at the
    99.5th percentile of |map|.
    """
    panels = [("reference", explanation.reference)] if explanation.reference is not None else []
    panels.append(("distorted" if explanation.reference is not None else "image", explanation.image))
    height, width = explanation.heat.shape
    aspect = height / width
    figure = new_figure(panel_inches * (len(panels) + 1) + 0.9, panel_inches * aspect + 0.8)
    axes = figure.subplots(1, len(panels) + 1)
    for axis, (label, image) in zip(axes[:-1], panels, strict=True):
        axis.imshow(for_display(image))
        axis.set_title(label, fontsize=10)
    overlay = axes[-1]
    grey = for_display(explanation.image).mean(axis=2)
    overlay.imshow(grey, cmap="gray", vmin=0, vmax=255)
    # A few extreme pixels (edges, for gradients) would wash everything else out: the scale
    # saturates at the 99.5th percentile of |map|. An all-zero map stays white, not noise.
    limit = (
        float(np.percentile(np.abs(explanation.heat), COLOUR_PERCENTILE))
        or float(np.abs(explanation.heat).max())
        or 1.0
    )
    shown = overlay.imshow(for_display(explanation.heat), cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.65)
    overlay.set_title("where the score was lost", fontsize=10)
    colour_bar = figure.colorbar(shown, ax=overlay, shrink=0.85)
    colour_bar.set_label("score lost per pixel (red) / gained (blue)", fontsize=8)
    colour_bar.ax.tick_params(labelsize=7)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(explanation.caption(), fontsize=9, color="firebrick" if explanation.random_weights else "black")
    return figure


def for_display(array: np.ndarray) -> np.ndarray:
    """`array` ([H, W, 3] uint8 or the [H, W] map) at most `DISPLAY_MAX_SIDE` on its longer side.

    A box filter: each pixel shown is the mean of those it covers, so the map keeps its units.
    """
    from PIL import Image

    height, width = array.shape[:2]
    scale = DISPLAY_MAX_SIDE / max(height, width)
    if scale >= 1:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    source = Image.fromarray(array.astype(np.float32) if array.ndim == 2 else array)  # a map: mode "F"
    return np.asarray(source.resize(size, Image.Resampling.BOX))


def check_explanation_outputs(out: Path, *, overwrite: bool = False, inputs: Inputs | None = None) -> Path:
    """Refuse a figure path (and its `.npy` beside it) that cannot or must not be written; returns the `.npy` path.

    An existing file is replaced only with `overwrite`; an input (`inputs`: the explained
    images, the weights folder) never (`semantic_iqa.outputs.check_output_file`).
    """
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise InvalidOptionError(f"--out {out}: the figure is written as one of {', '.join(FIGURE_SUFFIXES)}")
    array_path = out.with_suffix(".npy")
    check_output_file(out, overwrite=overwrite, inputs=inputs, option="--out")
    check_output_file(array_path, overwrite=overwrite, inputs=inputs, option="--out's map")
    return array_path


def save_explanation(
    explanation: Explanation, out: Path, *, overwrite: bool = False, inputs: Inputs | None = None
) -> tuple[Path, Path]:
    """Write the figure to `out` and `heat` to `out` with `.npy` (see `check_explanation_outputs`)."""
    array_path = check_explanation_outputs(out, overwrite=overwrite, inputs=inputs)
    figure = explanation_figure(explanation)
    figure.savefig(out, dpi=110)
    np.save(array_path, explanation.heat.astype(np.float32))
    return out, array_path
