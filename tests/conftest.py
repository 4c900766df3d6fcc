"""Shared fixtures: one tiny random weights folder (real timm/transformers classes) per run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from semantic_iqa import DSSSQA
from semantic_iqa.metrics.dss_sqa.tiny import make_tiny

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one thread is faster, and immune to a busy second core (OpenMP waits on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def hand_made_hub_cache(cache: Path, repo_id: str, source: Path) -> Path:
    """The Hugging Face cache layout: refs/main names a commit whose snapshot holds the files."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return Path(shutil.copytree(source, repo / "snapshots" / commit))


def offline_env(cache: Path, **extra: str) -> dict[str, str]:
    """Environment of a fresh process that uses `cache` as its Hugging Face cache, offline."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(cache.parent / "home"),
        **extra,
    }


def cpu_trainer(steps: int, root: Path | None = None):
    """A `lightning.Trainer` for `steps` steps on the CPU, quiet (no logger, checkpoints, bars, summary).

    The standard pattern our users' training code runs the metric in (tests of the adapters).
    """
    import lightning  # not at import time: most tests never train

    return lightning.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **({"default_root_dir": root} if root is not None else {}),
    )


def run_python(code: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (environment variables are read at import time)."""
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


# -- a job's folders of pairs (tests/test_jobs.py, tests/test_job_files.py) -------------------------

PAIRS = 12


def pair_images(photo: Image.Image, index: int) -> tuple[Image.Image, Image.Image]:
    """A small reference and its distortion (blur, or a mirror: the tiny model scores these 0 to 3)."""
    ref = photo.rotate(10 * index).resize((64, 48))
    if index % 2:
        return ref, ref.filter(ImageFilter.GaussianBlur(index % 4))
    return ref, ref.transpose(Image.Transpose.FLIP_LEFT_RIGHT).filter(ImageFilter.GaussianBlur(1))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, photo) -> tuple[Path, Path]:
    """REF/DIST folders: PAIRS pairs, a third in a subfolder, the distorted ones as JPEG (another extension)."""
    root = tmp_path_factory.mktemp("pairs")
    for i in range(PAIRS):
        sub = "city/" if i % 3 == 0 else ""
        ref, dist = pair_images(photo, i)
        for path, image in ((root / "R" / f"{sub}{i:03d}.png", ref), (root / "D" / f"{sub}{i:03d}.jpg", dist)):
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
    return root / "R", root / "D"
