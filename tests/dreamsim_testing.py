"""Fixtures and data of tests/test_dreamsim*.py: the tiny DreamSim ensemble and pairs whose distances differ.

The tiny ensemble (`semantic_iqa.metrics.dreamsim.tiny.build_tiny`, seed 0) is the real
timm classes with random weights, so every distance below checks plumbing, never accuracy.
The pairs share one reference (a real photograph squashed from 96 x 72, so the resize to
224 x 224 is not a no-op) and five distortions whose tiny-model distances are well apart
(seed 0: about 0.06, 0.18, 0.68, 0.85 and 1.02): a wrong order, a swapped argument or a
flipped sign shows.

Registered as a pytest plugin by the test modules (`pytest_plugins`), so its session
fixtures are built once per run; imported before pytest could rewrite its asserts, which carry
their own messages: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter, ImageOps

from semantic_iqa.cli import main
from semantic_iqa.metrics.dreamsim import DreamSim
from semantic_iqa.metrics.dreamsim.tiny import build_tiny

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLI = Path(sys.executable).parent / "semantic-iqa"
WIDTH, HEIGHT = 96, 72
PAIRS = ("p0", "p1", "p2", "p3", "p4")  # in increasing tiny-model distance
MIN_GAP = 0.04  # the smallest gap between two pairs' distances (measured 0.12, seed 0)


def reference_image() -> Image.Image:
    """The photograph of examples/ref.png, squashed to 96 x 72."""
    return Image.open(EXAMPLES / "ref.png").convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)


def distortions(ref: Image.Image) -> dict[str, Image.Image]:
    """One distortion per pair id: blur, heavy noise, random noise, posterised, inverted."""
    rng = np.random.default_rng(0)
    pixels = np.asarray(ref).astype(np.float64)
    noisy = np.clip(pixels + rng.normal(0, 80, size=pixels.shape), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, size=pixels.shape, dtype=np.uint8)
    return {
        "p0": ref.filter(ImageFilter.GaussianBlur(6)),
        "p1": Image.fromarray(noisy),
        "p2": Image.fromarray(noise),
        "p3": ImageOps.posterize(ref, 2),
        "p4": ImageOps.invert(ref),
    }


def as_tensor(image: Image.Image) -> torch.Tensor:
    """[3, H, W] float32 in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="session")
def dreamsim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ensemble (seed 0) as a weights folder."""
    return build_tiny(seed=0).save_pretrained(tmp_path_factory.mktemp("dreamsim") / "tiny")


@pytest.fixture(scope="session")
def dreamsim(dreamsim_dir: Path) -> DreamSim:
    """The tiny ensemble loaded from its folder, on the CPU (shared: do not change it)."""
    return DreamSim.from_pretrained(dreamsim_dir, device="cpu")


@pytest.fixture(scope="session")
def pair_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """REF and DIST folders: p0..p4.png each (the same reference content in every REF file)."""
    root = tmp_path_factory.mktemp("dreamsim-pairs")
    (root / "ref").mkdir()
    (root / "dist").mkdir()
    ref = reference_image()
    for name, dist in distortions(ref).items():
        ref.save(root / "ref" / f"{name}.png")
        dist.save(root / "dist" / f"{name}.png")
    return root / "ref", root / "dist"


@pytest.fixture(scope="session")
def expected(dreamsim: DreamSim, pair_dirs: tuple[Path, Path]) -> dict[str, float]:
    """Pair id -> the tiny model's distance of the files (its own decoding: `predict`)."""
    refs, dists = ([folder / f"{name}.png" for name in PAIRS] for folder in pair_dirs)
    scores = dreamsim.predict(refs, dists).score.tolist()
    found = dict(zip(PAIRS, scores, strict=True))
    gaps = np.diff(scores)
    assert (gaps > MIN_GAP).all(), f"the pairs' distances must be well apart and increasing: {found}"
    return found


@pytest.fixture(scope="session")
def pair_batches(pair_dirs: tuple[Path, Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs as float batches [5, 3, 72, 96]: (references, distorted)."""
    ref, dist = (torch.stack([as_tensor(Image.open(folder / f"{name}.png")) for name in PAIRS]) for folder in pair_dirs)
    return ref, dist


def cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    """`semantic-iqa ARGS` in this process: (status, stdout, stderr)."""
    capsys.readouterr()
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    """The one error line on stderr, without a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semantic-iqa: error: ") and "Traceback" not in err, err
    return lines[0]
