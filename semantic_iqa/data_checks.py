"""Checks every labelled data set reader shares: a finite number, an image file that decodes."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, UnidentifiedImageError


def finite_number(value: object) -> float | None:
    """`value` as a finite float, or `None` (text, empty, NaN, infinite)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def unreadable_image(path: Path) -> str | None:
    """Why `path` is not a decodable image, or `None` when it is (header check, no full decode)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None
