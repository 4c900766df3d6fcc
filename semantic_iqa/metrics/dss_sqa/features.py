"""Backbone features of image files, computed once and kept on disk.

The backbones are frozen, so a training set's backbone outputs never change: extract them
once (plain and horizontally flipped, the two versions training can draw) and train the
heads on them. Entries are keyed by the image file's content (sha256), inside a folder
named after the model's backbones and preprocessing, so a changed image, backbone or
preprocessing never reuses stale features.

On disk: `<cache>/<fingerprint>/shard-*.safetensors`, each written whole (temporary file
then rename) after one batch, so an interrupted extraction resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ...scoring import iterate_batches
from ...weights import sha256_file
from .model import DSSSQA

FLIPS = 2  # index 0: the image as is; 1: flipped left-right (after resize-pad)


def file_key(path: Path) -> str:
    """Content key of an image file: its sha256."""
    return sha256_file(path)


def model_fingerprint(model: DSSSQA) -> str:
    """Identity of everything that shapes the features: backbone weights and preprocessing."""
    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(model.config.preprocess), sort_keys=True).encode())
    for encoder in (model.structure, model.semantic):
        for name, tensor in encoder.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


class FeatureCache:
    """Structure and semantic features of image files for one model, plain and flipped.

    Args:
        folder: cache root (a sub-folder per model fingerprint is used).
        model: the model whose backbones produce the features.
    """

    def __init__(self, folder: str | os.PathLike, model: DSSSQA) -> None:
        self.model = model
        self.folder = Path(folder) / model_fingerprint(model)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.computed = 0  # images encoded by this object (0 when everything was cached)
        self._location: dict[str, Path] = {}
        for shard in sorted(self.folder.glob("shard-*.safetensors")):
            try:
                with safe_open(shard, framework="pt") as handle:
                    for name in handle.keys():
                        self._location.setdefault(name.split("/")[0], shard)
            except (SafetensorError, OSError):
                continue  # a damaged shard: its images are simply computed again

    def extract(self, paths: list[Path], *, batch_size: int = 16, workers: int = 0, progress: bool = True) -> list[str]:
        """Make sure every file's features are cached; return the files' keys (in order)."""
        keys = [file_key(path) for path in paths]
        todo: dict[str, Path] = {}
        for key, path in zip(keys, paths, strict=True):
            if key not in self._location:
                todo.setdefault(key, path)
        if todo:
            with torch.inference_mode():
                for batch in iterate_batches(
                    {"key": list(todo), "image": list(todo.values())},
                    ("image",),
                    self.model.image_transform(),
                    batch_size=batch_size,
                    workers=workers,
                    device=self.model.device,
                    progress=progress,
                    unit="image",
                ):
                    if batch.failures:  # the data set was checked; a file that fails now is a real error
                        raise batch.failures[0][1]
                    self._write_shard(batch.extras["key"], batch.images["image"])
        return keys

    def load(self, keys: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of cached keys: structure [N, 2, Ds] and semantic [N, 2, Dc] (plain, flipped)."""
        structure, semantic = [], []
        with ExitStack() as stack:
            handles = {}
            for key in keys:
                shard = self._location[key]
                if shard not in handles:
                    handles[shard] = stack.enter_context(safe_open(shard, framework="pt"))
                structure.append(handles[shard].get_tensor(f"{key}/structure"))
                semantic.append(handles[shard].get_tensor(f"{key}/semantic"))
        return torch.stack(structure), torch.stack(semantic)

    def _write_shard(self, keys: list[str], images: torch.Tensor) -> None:
        both = torch.cat([images, images.flip(-1)])  # plain then flipped, one backbone pass
        features = self.model.encode(both)
        count = len(keys)
        tensors = {}
        for row, key in enumerate(keys):
            tensors[f"{key}/structure"] = torch.stack([features.structure[row], features.structure[count + row]])
            tensors[f"{key}/semantic"] = torch.stack([features.semantic[row], features.semantic[count + row]])
        tensors = {name: t.float().cpu().contiguous() for name, t in tensors.items()}
        shard = self.folder / f"shard-{uuid.uuid4().hex}.safetensors"
        partial = shard.with_suffix(".partial")
        save_file(tensors, partial, metadata={"format": "pt"})
        os.replace(partial, shard)  # a shard exists whole or not at all
        for key in keys:
            self._location[key] = shard
        self.computed += count
