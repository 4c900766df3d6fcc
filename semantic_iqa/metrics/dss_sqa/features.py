"""DSS-SQA's backbone features of image files, computed once and kept on disk.

The backbones are frozen, so a training set's backbone outputs never change: extract them
once (plain and horizontally flipped, the two versions training can draw) and train the
heads on them. The storage is the shared content-keyed store (`semantic_iqa.feature_cache`):
entries keyed by the image file's sha256, inside a folder named after the model's
backbones and preprocessing, one atomic shard per batch, so a changed image, backbone or
preprocessing never reuses stale features and an interrupted extraction resumes.

On disk: `<cache>/<fingerprint>/shard-*.safetensors`, tensors `<key>/structure` and
`<key>/semantic`, each [2, D] (plain, flipped).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from ...feature_cache import FeatureStore, file_key, fingerprint
from ...scoring import Batch
from .model import DSSSQA

__all__ = ["FLIPS", "FeatureCache", "file_key", "model_fingerprint"]

FLIPS = 2  # index 0: the image as is; 1: flipped left-right (after resize-pad)
NAMES = ("structure", "semantic")


def model_fingerprint(model: DSSSQA) -> str:
    """Identity of everything that shapes the features: backbone weights and preprocessing."""
    return fingerprint(asdict(model.config.preprocess), (model.structure, model.semantic))


class FeatureCache:
    """Structure and semantic features of image files for one model, plain and flipped.

    Args:
        folder: cache root (a sub-folder per model fingerprint is used).
        model: the model whose backbones produce the features.
    """

    def __init__(self, folder: str | os.PathLike, model: DSSSQA) -> None:
        self.model = model
        self.store = FeatureStore(folder, model_fingerprint(model))
        self.folder = self.store.folder

    @property
    def computed(self) -> int:
        """Images encoded by this object (0 when everything was cached)."""
        return self.store.computed

    def extract(self, paths: list[Path], *, batch_size: int = 16, workers: int = 0, progress: bool = True) -> list[str]:
        """Make sure every file's features are cached; return the files' keys (in order)."""
        return self.store.extract_image_files(
            paths, self._encode, self.model, batch_size=batch_size, workers=workers, progress=progress
        )

    def load(self, keys: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of cached keys: structure [N, 2, Ds] and semantic [N, 2, Dc] (plain, flipped)."""
        loaded = self.store.load(keys, NAMES)
        return torch.stack(loaded["structure"]), torch.stack(loaded["semantic"])

    def _encode(self, batch: Batch) -> dict[str, dict[str, torch.Tensor]]:
        images = batch.images["image"]
        features = self.model.encode(torch.cat([images, images.flip(-1)]))  # plain then flipped, one pass
        count = len(batch)
        return {
            key: {
                "structure": torch.stack([features.structure[row], features.structure[count + row]]),
                "semantic": torch.stack([features.semantic[row], features.semantic[count + row]]),
            }
            for row, key in enumerate(batch.extras["key"])
        }
