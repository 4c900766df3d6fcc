"""The DreamSim module: one frozen ViT per branch, their features concatenated, a cosine distance.

For a batch of B pairs::

    ref, dist -> bicubic resize to 224 x 224 (aspect not kept)
      -> per branch: normalise (its mean/std) -> ViT -> feature [B, D_i]
      -> concatenate [B, D] -> centre (minus its own mean) -> L2-normalise = embedding
      -> distance = 1 - cos(embedding(ref), embedding(dist)), in [0, 2], LOWER = more similar

The LoRA fine-tuning of the authors' release is merged into the ViTs' weights by the
converter (`convert.py`), so scoring is one plain pass per branch per image, and a reference
embedding can be cached by content (`make_reference_cache`) and reused for every pair.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...backbones import FrozenEncoder, TimmOutputEncoder
from ...errors import InvalidInputError, WeightsFormatError
from ...inputs import ImageLike, as_float_batch, check_unit_range
from ...metric import Metric
from ...preprocess import normalize
from ...reference_cache import ReferenceCache
from .card import model_card
from .config import DreamSimConfig
from .output import DreamSimOutput
from .preprocess import load_squashed, squash_tensor


class DreamSim(Metric):
    """DreamSim (Fu, Tamir et al., NeurIPS 2023): full-reference perceptual distance, LOWER = more similar.

    `model(ref, dist)` on float tensors keeps gradients; `predict(ref, dist)` takes any input
    kind; `embed(images)` gives the embeddings (for retrieval and deduplication).
    Submodules: `encoders` (one frozen timm ViT per branch, by role).
    """

    name = "dreamsim"
    config_class = DreamSimConfig
    encoder_classes = {"dino": TimmOutputEncoder, "clip": TimmOutputEncoder, "open_clip": TimmOutputEncoder}

    def __init__(self, config: DreamSimConfig, encoders: dict[str, FrozenEncoder]) -> None:
        super().__init__()
        self.config = config
        ordered = {}
        for branch in config.branch_list():
            encoder = encoders.get(branch.role)
            if encoder is None:
                raise WeightsFormatError(f"DreamSim branch {branch.name} needs a {branch.role!r} encoder")
            ordered[branch.role] = encoder
        self.encoders = nn.ModuleDict(ordered)
        # Not in the state dict: they are the config's values, in float64 (cast when used).
        self.register_buffer("pixel_means", torch.tensor(config.means, dtype=torch.float64), persistent=False)
        self.register_buffer("pixel_stds", torch.tensor(config.stds, dtype=torch.float64), persistent=False)

    @property
    def embedding_dim(self) -> int:
        """Width D of the embedding: the sum of the branches' feature widths (1792 for the ensemble)."""
        return sum(encoder.feature_dim for encoder in self.encoders.values())

    # -- weights I/O hooks: everything trained is merged into the encoders -------------------
    @classmethod
    def from_parts(cls, config: DreamSimConfig, encoders: dict[str, FrozenEncoder]) -> DreamSim:
        return cls(config, encoders)

    def frozen_encoders(self) -> dict[str, FrozenEncoder]:
        return dict(self.encoders)

    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {}

    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        if parts:
            raise WeightsFormatError(f"DreamSim has no head files (LoRA is merged in); got {len(parts)}")

    def model_card(self) -> str:
        return model_card(self.config)

    # -- scoring hooks ------------------------------------------------------------------------
    def image_transform(self) -> Callable[[ImageLike], torch.Tensor]:
        """Decode one image and resize it to the square (picklable, for decoding workers)."""
        return functools.partial(load_squashed, size=self.config.image_size)

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """Every image is resized to `image_size` x `image_size`."""
        return self.config.image_size, self.config.image_size

    def make_reference_cache(self, max_items: int = 4096) -> ReferenceCache:
        """Reference embeddings kept by content (each ~7 KB for the ensemble)."""
        return ReferenceCache(self, max_items)

    def score_batch(
        self, images: dict[str, torch.Tensor], extras: dict[str, list], *, reference_cache: Any = None
    ) -> DreamSimOutput:
        """Distances of a batch of resized pairs (`images["ref"]`, `images["dist"]`: [B, 3, S, S])."""
        return self.score_and_embed(images, extras, reference_cache=reference_cache)[0]

    def differentiable_score(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list] | None = None,
        *,
        reference_cache: Any = None,
        checkpoint_activations: bool = False,
    ) -> torch.Tensor:
        """[B] distances of float pairs of any size, differentiable in the distorted images."""
        size = self.config.image_size
        ref = self._embedding_of(squash_tensor(as_float_batch(images["ref"], "ref"), size), reference_cache)
        dist = squash_tensor(as_float_batch(images["dist"], "dist"), size)
        if checkpoint_activations and torch.is_grad_enabled():
            dist_embedding = checkpoint(self.encode, dist, use_reentrant=False)
        else:
            dist_embedding = self.encode(dist)
        return embedding_distance(ref, dist_embedding)

    # -- DreamSim itself ----------------------------------------------------------------------
    def forward(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """[B] distances of float images [B, C, H, W] in [0, 1] (any size, resized here), with gradients."""
        return self.differentiable_score({"ref": ref, "dist": dist})

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, D] of resized images [B, 3, S, S] in [0, 1]: centred and L2-normalised, float32."""
        self._check_pixels(pixels)
        features = []
        for index, encoder in enumerate(self.encoders.values()):
            mean, std = self.pixel_means[index].to(pixels.dtype), self.pixel_stds[index].to(pixels.dtype)
            dtype = next(encoder.parameters()).dtype  # the frozen branches may run in bf16
            features.append(encoder(normalize(pixels, mean, std).to(dtype)).float())
        return normalize_embedding(torch.cat(features, dim=-1))

    def embed_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        """The embeddings (`encode`) of resized images: `Metric.embed(images)` and `score-dir --embeddings` use it.

        Each row is centred and has unit L2 norm, so `1 - a @ b` is the DreamSim distance of
        two images and `||a - b||^2 / 2` the same number: use either for retrieval.
        """
        return self.encode(pixels)

    def score_and_embed(
        self, images: dict[str, torch.Tensor], extras: dict[str, list], *, reference_cache: Any = None
    ) -> tuple[DreamSimOutput, dict[str, torch.Tensor]]:
        """`score_batch` and both images' embeddings from one pass per branch per image."""
        found = {"ref": self._embedding_of(images["ref"], reference_cache), "dist": self.encode(images["dist"])}
        return DreamSimOutput(score=embedding_distance(found["ref"], found["dist"])), found

    def _embedding_of(self, pixels: torch.Tensor, reference_cache: Any) -> torch.Tensor:
        return self.encode(pixels) if reference_cache is None else reference_cache.features(pixels)

    def _check_pixels(self, pixels: torch.Tensor) -> None:
        size = self.config.image_size
        if not isinstance(pixels, torch.Tensor) or not pixels.is_floating_point():
            raise InvalidInputError("pixels must be a float tensor [B, 3, S, S] in [0, 1]")
        if pixels.dim() != 4 or tuple(pixels.shape[1:]) != (3, size, size) or pixels.shape[0] == 0:
            raise InvalidInputError(f"pixels must be [B, 3, {size}, {size}] (resized); got {tuple(pixels.shape)}")
        check_unit_range(pixels, "pixels (normalisation happens inside)")


def normalize_embedding(features: torch.Tensor) -> torch.Tensor:
    """[B, D] -> each row minus its own mean, divided by its L2 norm (the authors' `normalize_embedding`)."""
    centred = features - features.mean(dim=-1, keepdim=True)
    return centred / centred.norm(dim=-1, keepdim=True)


def embedding_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B] DreamSim distance 1 - cos(a, b) of embeddings [B, D], in [0, 2] (lower = more similar).

    Clamped to [0, 2]: rounding gives an image and itself -2e-7, not 0 (the authors' code
    returns that as is; the clamp moves no other value).
    """
    return (1.0 - F.cosine_similarity(a, b, dim=-1)).clamp(0.0, 2.0)
