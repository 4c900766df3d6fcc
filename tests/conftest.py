"""Shared fixtures: one tiny random weights folder (real timm/transformers classes) per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semantic_iqa import DSSSQA
from semantic_iqa.testing import make_tiny

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("weights") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_dir: Path) -> DSSSQA:
    return DSSSQA.from_pretrained(tiny_dir, device="cpu")


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph (public domain, from scikit-image's sample data), 256x256 RGB."""
    return Image.open(EXAMPLES / "ref.png").convert("RGB")


def random_rgb(width: int, height: int, seed: int, low: int = 1) -> Image.Image:
    """Random RGB image with no pure-black pixel (so padding can be located)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(low, 256, size=(height, width, 3), dtype=np.uint8))
