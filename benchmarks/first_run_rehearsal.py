"""A real user's first run at FULL size: train from the two reference backbone repos, then score.

The local Hub stand-in (`tests/fake_hub.py`) serves randomly initialised backbones of the
reference sizes (DINOv3 ViT-B/16 in timm's Hub layout; a whole CLIP ViT-L/14-336, text tower
included, as one `pytorch_model.bin` in the legacy layout of openai/clip-vit-large-patch14-336)
under their real repo ids at the pinned commits. From an empty HF_HOME, it times the
commands the README gives: `train --data ... --out ...` (download, feature extraction,
training, export) and `score ... --weights ...`, each in a fresh process through the real
`huggingface_hub` client. Run:

    python benchmarks/first_run_rehearsal.py [--pairs 12] [--folds 2] [--epochs 2] [--keep DIR]

The figures are times only: the weights are random, so the scores mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the Hub stand-in and the repo writers are test helpers

from fake_hub import FakeHub  # noqa: E402
from lovif_synthetic import make_lovif  # noqa: E402
from PIL import Image  # noqa: E402
from reference_repos import (  # noqa: E402
    CLIP_REPO,
    DINO_REPO,
    FULL_CLIP_TEXT,
    FULL_CLIP_VISION,
    FULL_DINO,
    FULL_PROJECTION,
    write_clip_repo,
    write_dinov3_repo,
)

from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG  # noqa: E402


def _cli(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "semantic_iqa.cli", *argv], env=env, capture_output=True, text=True, timeout=3600
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"`semantic-iqa {' '.join(argv)}` failed:\n{result.stderr}")
    return elapsed, result


@dataclass
class Rehearsal:
    """What a rehearsal did: its timings (the printed table) and what a test needs to check the score."""

    timings: dict[str, float]  # seconds per step, and the score
    weights: Path  # the trained weights folder
    hub_cache: Path  # the Hugging Face cache the backbones were downloaded to (HF_HOME/hub)
    ref: Path  # the scored pair
    dist: Path
    scored: dict[str, Any]  # `score --json`'s output for that pair


def rehearse(workdir: Path, pairs: int = 12, folds: int = 2, epochs: int = 2) -> Rehearsal:
    """Run the full-size first run in `workdir`; returns seconds per step, the score and where things are."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dino = write_dinov3_repo(workdir / "repos" / "dino", FULL_DINO)
    clip = write_clip_repo(workdir / "repos" / "clip", FULL_CLIP_VISION, FULL_CLIP_TEXT, FULL_PROJECTION)
    timings["write the two full-size repos (setup, not a user step)"] = time.perf_counter() - start
    photo = Image.open(ROOT / "examples" / "ref.png").convert("RGB")
    data = make_lovif(workdir / "LoViF", photo, pairs=pairs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SEMANTIC_IQA_"))}
    env.update(HF_HOME=str(workdir / "hf-home"), HF_HUB_DISABLE_XET="1")
    with FakeHub() as hub:
        hub.add_folder(DINO_REPO, dino, commit=REFERENCE_CONFIG.structure.revision)
        hub.add_folder(CLIP_REPO, clip, commit=REFERENCE_CONFIG.semantic.revision)
        env["HF_ENDPOINT"] = hub.endpoint
        weights = workdir / "my-weights"
        timings["train (download + extract + train + export)"], trained = _cli(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(weights),
                "--folds",
                str(folds),
                "--epochs",
                str(epochs),
                "--device",
                "cpu",
                "--workers",
                "0",
                "--cache",
                str(workdir / "features"),
            ],
            env,
        )
    config = json.loads((weights / "config.json").read_text())
    assert (config["structure_dim"], config["semantic_dim"]) == (768, 1024), config
    env.update(HF_HUB_OFFLINE="1")
    ref, dist = data / "Ref" / "000001.png", data / "Dist" / "000001.png"
    timings["score one pair, offline (load + score)"], scored = _cli(
        ["score", str(ref), str(dist), "--weights", str(weights), "--device", "cpu", "--json"], env
    )
    result = json.loads(scored.stdout)
    timings["score (random weights, meaningless)"] = result["score"]
    return Rehearsal(timings, weights, workdir / "hf-home" / "hub", ref, dist, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12, help="synthetic LoViF pairs to train on")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=False)
        timings = rehearse(Path(args.keep), args.pairs, args.folds, args.epochs).timings
    else:
        with tempfile.TemporaryDirectory() as folder:
            timings = rehearse(Path(folder), args.pairs, args.folds, args.epochs).timings
    print(f"| step ({args.pairs} pairs, {args.folds} folds, {args.epochs} epochs, CPU) | seconds |")
    print("|---|---|")
    for step, value in timings.items():
        print(f"| {step} | {value:.2f} |")


if __name__ == "__main__":
    main()
