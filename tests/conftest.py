"""Shared fixtures: one tiny random weights folder (real timm/transformers classes) per run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semantic_iqa import DSSSQA
from semantic_iqa.metrics.dss_sqa.tiny import make_tiny

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


def run_python(code: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (environment variables are read at import time)."""
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
