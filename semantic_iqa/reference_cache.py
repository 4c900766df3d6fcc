"""Reference features cached by content, for loops that score the same references again.

Validation sets and training pairs bring back the same reference images every epoch; their
backbone features never change (the backbones are frozen), so computing them once halves
the backbone work. Keys are a hash of the preprocessed reference pixels, so a reference is
recognised whatever tensor object holds it, and a changed reference is a miss.

Any metric can use it: it keeps, per image, what the metric's `encode(images)` returns for
a batch: a tensor [B, ...], or a dataclass or tuple of such tensors (rows split and stacked back).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from typing import Any, Protocol

import torch

from .errors import InvalidOptionError


class Encodes(Protocol):
    """A model whose `encode(images)` gives the features of a batch of preprocessed images."""

    def encode(self, images: torch.Tensor) -> Any: ...


class ReferenceCache:
    """Least-recently-used cache of one model's reference features, at most `max_items` images.

    Each entry holds one image's features (DSS-SQA's reference model: about 7 KB), so the
    default bound of 4096 images is about 30 MB.
    """

    def __init__(self, model: Encodes, max_items: int = 4096) -> None:
        if not isinstance(max_items, int) or max_items < 1:
            raise InvalidOptionError(f"max_items must be a positive integer, got {max_items!r}")
        self.model = model
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, tuple[torch.Tensor, ...]] = OrderedDict()
        self._rebuild: Any = None  # turns stacked parts back into what `encode` returns

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry (call after changing the model's weights)."""
        self._entries.clear()

    def features(self, images: torch.Tensor) -> Any:
        """Features of preprocessed reference images [B, 3, S, S], computing only the unseen ones.

        Cached features carry no gradient: references are treated as constants.
        """
        keys = [self._key(image) for image in images]
        first_unseen: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in self._entries:
                first_unseen.setdefault(key, index)
        missing = list(first_unseen.values())
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            with torch.no_grad():
                parts, self._rebuild = _split(self.model.encode(images[missing]))
            for row, key in enumerate(first_unseen):
                self._entries[key] = tuple(part[row] for part in parts)
        rows = []
        for key in keys:
            self._entries.move_to_end(key)
            rows.append(self._entries[key])
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)
        return self._rebuild([torch.stack(column) for column in zip(*rows, strict=True)])

    @staticmethod
    def _key(image: torch.Tensor) -> bytes:
        pixels = image.detach().to("cpu", torch.float32).contiguous()
        digest = hashlib.blake2b(pixels.numpy().tobytes(), digest_size=16)
        digest.update(str(tuple(pixels.shape)).encode())
        return digest.digest()


def _split(features: Any) -> tuple[list[torch.Tensor], Any]:
    """(the tensors of `features`, a function making the same kind of object from such tensors)."""
    if isinstance(features, torch.Tensor):
        return [features], lambda parts: parts[0]
    if dataclasses.is_dataclass(features):
        kind, names = type(features), [field.name for field in dataclasses.fields(features)]
        return [getattr(features, name) for name in names], lambda parts: kind(**dict(zip(names, parts, strict=True)))
    return list(features), tuple
