"""How long training the five folds takes on cached features, and how fast features are extracted.

Training uses a synthetic feature cache of the real widths (768 structure + 1024 semantic,
plain and flipped) for 510 pairs with the LoViF train label counts, and the full recipe
(5 folds x 10 epochs, batch 32, held-out scoring every epoch). Extraction runs the
reference-size backbones (random weights) on a few images. Run:

    python benchmarks/train_speed.py [--device cpu] [--extract-images 8]

The figures mean time, not accuracy: the features are random.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG
from semantic_iqa.metrics.dss_sqa.features import FeatureCache
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model
from semantic_iqa.metrics.dss_sqa.train import Recipe, train_folds

LOVIF_TRAIN_COUNTS = {0: 48, 1: 93, 2: 96, 3: 90, 4: 84, 5: 99}


def time_training(device: str) -> float:
    pairs = sum(LOVIF_TRAIN_COUNTS.values())
    generator = torch.Generator().manual_seed(0)
    structure = torch.randn(2 * pairs, 2, REFERENCE_CONFIG.structure_dim, generator=generator)
    semantic = torch.randn(2 * pairs, 2, REFERENCE_CONFIG.semantic_dim, generator=generator)
    scores = (
        np.random.default_rng(0)
        .permutation(np.repeat(list(LOVIF_TRAIN_COUNTS), list(LOVIF_TRAIN_COUNTS.values())))
        .astype(float)
    )
    start = time.perf_counter()
    train_folds(
        REFERENCE_CONFIG,
        structure,
        semantic,
        np.arange(pairs),
        np.arange(pairs, 2 * pairs),
        scores,
        Recipe(),
        progress=False,
        device=device,
    )
    return time.perf_counter() - start


def time_extraction(device: str, images: int) -> float:
    model = build_random_model("full").to(device)
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        paths = []
        for index in range(images):
            path = Path(folder) / f"{index}.png"
            Image.fromarray(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)).save(path)
            paths.append(path)
        cache = FeatureCache(Path(folder) / "cache", model)
        start = time.perf_counter()
        cache.extract(paths, batch_size=8, progress=False)
        return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--extract-images", type=int, default=8, help="0 skips the extraction timing")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"training 5 folds x 10 epochs on 510 cached pairs: {time_training(args.device):.1f} s")
    if args.extract_images:
        rate = time_extraction(args.device, args.extract_images)
        print(f"feature extraction (full-size backbones, plain + flipped): {rate:.2f} images/s")


if __name__ == "__main__":
    main()
