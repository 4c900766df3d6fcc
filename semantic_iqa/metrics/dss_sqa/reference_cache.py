"""Reference features cached by content, for loops that score the same references again.

Validation sets and training pairs bring back the same reference images every epoch; their
backbone features never change (the backbones are frozen), so computing them once halves
the backbone work. Keys are a hash of the resize-padded reference pixels, so a reference is
recognised whatever tensor object holds it, and a changed reference is a miss.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch

from ...errors import InvalidOptionError
from .model import DSSSQA, ImageFeatures


class ReferenceCache:
    """Least-recently-used cache of one model's reference features, at most `max_items` images.

    Each entry holds one image's structure and semantic features (about 7 KB for the
    reference model), so the default bound of 4096 images is about 30 MB.
    """

    def __init__(self, model: DSSSQA, max_items: int = 4096) -> None:
        if not isinstance(max_items, int) or max_items < 1:
            raise InvalidOptionError(f"max_items must be a positive integer, got {max_items!r}")
        self.model = model
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry (call after changing the model's weights)."""
        self._entries.clear()

    def features(self, images: torch.Tensor) -> ImageFeatures:
        """Features of resize-padded reference images [B, 3, S, S], computing only the unseen ones.

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
                computed = self.model.encode(images[missing])
            for row, key in enumerate(first_unseen):
                self._entries[key] = (computed.structure[row], computed.semantic[row])
        rows = []
        for key in keys:
            self._entries.move_to_end(key)
            rows.append(self._entries[key])
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)
        return ImageFeatures(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]))

    @staticmethod
    def _key(image: torch.Tensor) -> bytes:
        pixels = image.detach().to("cpu", torch.float32).contiguous()
        digest = hashlib.blake2b(pixels.numpy().tobytes(), digest_size=16)
        digest.update(str(tuple(pixels.shape)).encode())
        return digest.digest()
