"""Drawing an `Explanation`: reference | distorted | map over the distorted image (matplotlib).

matplotlib is an optional extra (`pip install "semantic-iqa[viz]"`): the maps themselves
need only torch; drawing them needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidOptionError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from . import Explanation

FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
COLOUR_PERCENTILE = 99.5


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

    Red = the region lowered the score, blue = it raised it; the scale is symmetric about 0,
    labelled in score points per pixel, and saturates at the 99.5th percentile of |map|.
    """
    panels = [("reference", explanation.reference)] if explanation.reference is not None else []
    panels.append(("distorted" if explanation.reference is not None else "image", explanation.image))
    height, width = explanation.heat.shape
    aspect = height / width
    figure = new_figure(panel_inches * (len(panels) + 1) + 0.9, panel_inches * aspect + 0.8)
    axes = figure.subplots(1, len(panels) + 1)
    for axis, (label, image) in zip(axes[:-1], panels, strict=True):
        axis.imshow(image)
        axis.set_title(label, fontsize=10)
    overlay = axes[-1]
    grey = explanation.image.mean(axis=2)
    overlay.imshow(grey, cmap="gray", vmin=0, vmax=255)
    # A few extreme pixels (edges, for gradients) would wash everything else out: the scale
    # saturates at the 99.5th percentile of |map|. An all-zero map stays white, not noise.
    limit = (
        float(np.percentile(np.abs(explanation.heat), COLOUR_PERCENTILE))
        or float(np.abs(explanation.heat).max())
        or 1.0
    )
    shown = overlay.imshow(explanation.heat, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.65)
    overlay.set_title("where the score was lost", fontsize=10)
    colour_bar = figure.colorbar(shown, ax=overlay, shrink=0.85)
    colour_bar.set_label("score lost per pixel (red) / gained (blue)", fontsize=8)
    colour_bar.ax.tick_params(labelsize=7)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(explanation.caption(), fontsize=9, color="firebrick" if explanation.random_weights else "black")
    return figure


def save_explanation(explanation: Explanation, out: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the figure to `out` and `heat` to `out` with `.npy`; refuse to replace files unless `overwrite`."""
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise InvalidOptionError(f"{out}: the figure is written as one of {', '.join(FIGURE_SUFFIXES)}")
    array_path = out.with_suffix(".npy")
    if not overwrite:
        existing = [str(path) for path in (out, array_path) if path.exists()]
        if existing:
            raise InvalidOptionError(f"{' and '.join(existing)} already exist(s); pass overwrite=True (--overwrite)")
    figure = explanation_figure(explanation)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    np.save(array_path, explanation.heat.astype(np.float32))
    return out, array_path
