"""Frozen-encoder outputs kept on disk, computed once per input, for training on cached features.

Every metric's encoders are frozen, so what they give for an input never changes: compute
it once and train the heads on the stored tensors. A `FeatureStore` holds named tensors
(any names, any shapes, which may differ from key to key) per key:

- keys say what the input IS, not where it lies: an image file's sha256 (`file_key`), a
  text's sha256 (`text_key`), so a renamed file is still found and an edited one is not;
- the store lives in `<root>/<fingerprint>/`, the fingerprint naming everything that shapes
  the tensors (encoder weights, preprocessing settings: `fingerprint`), so a changed
  encoder or preprocessing never reuses stale features;
- tensors are written one batch at a time, each batch as one `shard-*.safetensors` written
  whole (a temporary file, then a rename): an interrupted extraction leaves only complete
  shards and resumes where it stopped; a damaged shard is ignored (its keys are recomputed).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .scoring import Batch, iterate_batches
from .weights import sha256_file

SHARD_GLOB = "shard-*.safetensors"
# One batch's new entries: key -> tensor name -> tensor.
Entries = dict[str, dict[str, torch.Tensor]]


def default_cache_dir() -> Path:
    """`$SEMANTIC_IQA_CACHE`, else `$XDG_CACHE_HOME/semantic-iqa/features` (~/.cache/...)."""
    if os.environ.get("SEMANTIC_IQA_CACHE"):
        return Path(os.environ["SEMANTIC_IQA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "semantic-iqa" / "features"


def file_key(path: str | os.PathLike) -> str:
    """Content key of a file: the sha256 of its bytes (64 hex digits)."""
    return sha256_file(Path(path))


def text_key(text: str) -> str:
    """Content key of a text (a prompt): the sha256 of its UTF-8 bytes (64 hex digits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(settings: Any, modules: Iterable[nn.Module]) -> str:
    """24 hex digits naming `settings` (anything JSON can write) and the modules' tensors.

    Args:
        settings: what shapes the features besides the weights (preprocessing, token limits);
            serialised with sorted keys, so dict order does not matter.
        modules: the encoders, in a fixed order; every state_dict entry's name and raw bytes count.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


class FeatureStore:
    """Named tensors per content key, in `<root>/<fingerprint>/shard-*.safetensors`.

    Args:
        root: cache root, shared by every model (each uses its own fingerprint folder).
        fingerprint: the model's `fingerprint(...)`.

    Attributes:
        folder: `<root>/<fingerprint>`, created if needed.
        computed: keys written by this object (0 when everything was cached already).
    """

    def __init__(self, root: str | os.PathLike, fingerprint: str) -> None:
        self.folder = Path(root) / fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)
        self.computed = 0
        self._location: dict[str, Path] = {}
        for shard in sorted(self.folder.glob(SHARD_GLOB)):
            try:
                with safe_open(shard, framework="pt") as handle:
                    for name in handle.keys():
                        self._location.setdefault(name.split("/")[0], shard)
            except (SafetensorError, OSError):
                continue  # a damaged shard: its keys are simply computed again

    def __contains__(self, key: str) -> bool:
        return key in self._location

    def missing(self, keys: Sequence[str]) -> list[int]:
        """Positions of the first occurrence of each key not stored yet, in order."""
        seen: set[str] = set()
        positions = []
        for position, key in enumerate(keys):
            if key not in self._location and key not in seen:
                seen.add(key)
                positions.append(position)
        return positions

    def write(self, entries: Entries) -> Path:
        """Store one batch of entries as one shard, atomically; returns the shard's path.

        Tensors are stored as float32 on the CPU (contiguous). Key and tensor names must not
        contain "/" (it separates them on disk).
        """
        tensors = {}
        for key, named in entries.items():
            for name, tensor in named.items():
                if "/" in key or "/" in name:
                    raise ValueError(f"feature key and tensor names must not contain '/': {key!r}, {name!r}")
                tensors[f"{key}/{name}"] = tensor.detach().float().cpu().contiguous()
        shard = self.folder / f"shard-{uuid.uuid4().hex}.safetensors"
        partial = shard.with_suffix(".partial")
        save_file(tensors, partial, metadata={"format": "pt"})
        os.replace(partial, shard)  # a shard exists whole or not at all
        for key in entries:
            self._location[key] = shard
        self.computed += len(entries)
        return shard

    def load(self, keys: Sequence[str], names: Sequence[str]) -> dict[str, list[torch.Tensor]]:
        """The stored tensors of `keys` (all stored already): name -> one tensor per key, in order."""
        loaded: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        with ExitStack() as stack:
            handles: dict[Path, Any] = {}
            for key in keys:
                shard = self._location[key]
                if shard not in handles:
                    handles[shard] = stack.enter_context(safe_open(shard, framework="pt"))
                for name in names:
                    loaded[name].append(handles[shard].get_tensor(f"{key}/{name}"))
        return loaded

    def extract_image_files(
        self,
        paths: Sequence[Path],
        encode: Callable[[Batch], Entries],
        model: Any,
        *,
        batch_size: int = 16,
        workers: int = 0,
        progress: bool = True,
    ) -> list[str]:
        """`extract` for image files, decoded by `model.image_transform()` on `model.device`; returns their keys."""
        return self.extract(
            [file_key(path) for path in paths],
            {"image": list(paths)},
            encode,
            image_columns=("image",),
            transform=model.image_transform(),
            batch_size=batch_size,
            workers=workers,
            device=model.device,
            progress=progress,
            unit="image",
        )

    def extract(
        self,
        keys: Sequence[str],
        columns: dict[str, Sequence[Any]],
        encode: Callable[[Batch], Entries],
        *,
        image_columns: Sequence[str] = (),
        transform: Callable[[Any], torch.Tensor] | None = None,
        batch_size: int = 16,
        workers: int = 0,
        device: torch.device | str | None = None,
        progress: bool = True,
        unit: str = "item",
    ) -> list[str]:
        """Compute and store what is missing, through the shared scoring loop; return `keys`.

        Args:
            keys: one content key per item.
            columns: the items, as columns of the same length as `keys` (the scoring loop's
                input; a column named "key" is added).
            encode: one `Batch` of missing items -> their entries, keyed by `batch.extras["key"]`;
                runs under `torch.inference_mode`.
            image_columns, transform: images to decode and preprocess in the loop (none for text).
            batch_size, workers, device, progress, unit: as `semantic_iqa.scoring.iterate_batches`.

        Raises:
            the decoding error of the first item that fails (the data set was checked before:
            a file that fails now is a real error, not one to skip).
        """
        todo = self.missing(keys)
        if todo:
            pending = {name: [values[i] for i in todo] for name, values in columns.items()}
            pending["key"] = [keys[i] for i in todo]
            with torch.inference_mode():
                for batch in iterate_batches(
                    pending,
                    tuple(image_columns),
                    transform or _no_images,
                    batch_size=batch_size,
                    workers=workers,
                    device=device,
                    progress=progress,
                    unit=unit,
                ):
                    if batch.failures:
                        raise batch.failures[0][1]
                    self.write(encode(batch))
        return list(keys)


def _no_images(item: Any) -> torch.Tensor:
    raise TypeError("this extraction has no image columns")
