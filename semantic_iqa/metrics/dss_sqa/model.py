"""DSS-SQA: two frozen encoders, feature fusion, stacked fold heads, the gate, the ensemble.

Data flow for a batch of B pairs (one backbone pass per image serves every fold)::

    ref, dist -> resize-pad-square (224) -> normalise (CLIP mean/std)
      -> structure encoder (DINOv3 CLS) and semantic encoder (CLIP pooled, at 336)
      -> fusion [B, 5377] -> F fold heads [B, F, 6] -> gate (eval only)
      -> expected class per fold [B, F] -> mean over folds [B]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ...backbones import FrozenEncoder, SemanticEncoder, StructureEncoder
from ...devices import resolve_device
from ...errors import WeightsFormatError
from ...inputs import ImageLike, as_float_batch, check_same_length, load_padded, load_padded_batch
from ...metric import Metric
from ...preprocess import normalize, resized_size
from .card import model_card
from .config import REFERENCE_CONFIG, BackboneSpec, DSSSQAConfig, check_gate_mode
from .fusion import fuse_features
from .gate import apply_gate
from .heads import FoldHeads, expected_score
from .output import DSSSQAOutput, ImageFeatures, ReferenceFeatureSource  # defined there, importable from here


class DSSSQA(Metric):
    """DSS-SQA full-reference semantic quality metric. Score in [0, 5], higher = better.

    Build one with `DSSSQA.from_pretrained(...)`; call it on float tensors to keep gradients
    (`model(ref, dist)`), or use `predict` for any input kind without gradients.
    """

    name = "dss_sqa"
    config_class = DSSSQAConfig
    encoder_classes = {"structure": StructureEncoder, "semantic": SemanticEncoder}

    def __init__(
        self,
        config: DSSSQAConfig,
        structure: StructureEncoder,
        semantic: SemanticEncoder,
        heads: FoldHeads | None = None,
    ) -> None:
        super().__init__()
        if (structure.feature_dim, semantic.feature_dim) != (config.structure_dim, config.semantic_dim):
            raise WeightsFormatError(
                f"backbone feature sizes {structure.feature_dim}/{semantic.feature_dim} do not match the "
                f"config's structure_dim/semantic_dim {config.structure_dim}/{config.semantic_dim}"
            )
        self.config = config
        self.structure = structure
        self.semantic = semantic
        self.heads = heads if heads is not None else FoldHeads(config.num_folds, config.fusion_dim, config.head)
        self.register_buffer("pixel_mean", torch.tensor(config.preprocess.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.preprocess.std).view(1, 3, 1, 1), persistent=False)

    # -- the parts the shared weights I/O asks for ---------------------------------------
    @classmethod
    def from_parts(cls, config: DSSSQAConfig, encoders: dict[str, FrozenEncoder]) -> DSSSQA:
        """The model on these encoders, with fresh (untrained) fold heads."""
        return cls(config, encoders["structure"], encoders["semantic"])

    def frozen_encoders(self) -> dict[str, FrozenEncoder]:
        return {"structure": self.structure, "semantic": self.semantic}

    def head_parts(self) -> dict[str, dict[str, torch.Tensor]]:
        """One file per fold: `fold_<k>`, under the reference layer names."""
        return {f"fold_{k}": self.heads.fold_state_dict(k) for k in range(self.config.num_folds)}

    def load_head_parts(self, parts: list[dict[str, torch.Tensor]]) -> None:
        if len(parts) != self.config.num_folds:
            raise WeightsFormatError(f"{len(parts)} head files for num_folds {self.config.num_folds}")
        for fold, tensors in enumerate(parts):
            try:
                self.heads.load_fold_state_dict(fold, tensors)
            except (KeyError, ValueError) as exc:
                raise WeightsFormatError(f"fold {fold}: {exc}") from None

    def model_card(self) -> str:
        return model_card(self.config)

    def image_transform(self) -> Callable[[ImageLike], torch.Tensor]:
        """Decode one image and resize-pad it to the model's square (picklable, for workers)."""
        return functools.partial(load_padded, size=self.config.preprocess.image_size)

    def score_batch(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list[Any]],
        *,
        reference_cache: ReferenceFeatureSource | None = None,
        gate: str | None = None,
    ) -> DSSSQAOutput:
        """Scores of a batch of resize-padded pairs (`images["ref"]`, `images["dist"]`)."""
        return self.score_padded(images["ref"], images["dist"], gate, reference_cache)

    def differentiable_score(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list[Any]] | None = None,
        *,
        reference_cache: ReferenceFeatureSource | None = None,
        checkpoint_activations: bool = False,
        gate: str | None = None,
    ) -> torch.Tensor:
        """[B] scores of float pairs of any size; gradients flow into `images["dist"]` (never the reference)."""
        return self._score_float(images, reference_cache, checkpoint_activations, gate).score

    def training_loss(
        self,
        images: dict[str, torch.Tensor],
        extras: dict[str, list[Any]] | None = None,
        *,
        reference_cache: ReferenceFeatureSource | None = None,
        checkpoint_activations: bool = False,
        gate_penalty: float = 5.0,
    ) -> torch.Tensor:
        """[B] `(5 - score) + gate_penalty * max(0, (high - cos) / (high - low))`, lower is better.

        The score is computed with the gate OFF: the hard gate sets a vetoed pair's logits to
        constants, so it gives no gradient exactly where the output drifted furthest from the
        reference's content. In its place a differentiable penalty on the CLIP cosine: zero
        above the gate's upper threshold, rising linearly through the soft band and beyond.
        """
        output = self._score_float(images, reference_cache, checkpoint_activations, "off")
        gate = self.config.gate
        penalty = ((gate.high - output.cos_sim) / (gate.high - gate.low)).clamp(min=0.0)
        return (self.config.head.num_classes - 1 - output.score) + gate_penalty * penalty

    def _score_float(
        self,
        images: dict[str, torch.Tensor],
        reference_cache: ReferenceFeatureSource | None,
        checkpoint_activations: bool,
        gate: str | None,
    ) -> DSSSQAOutput:
        ref, dist = as_float_batch(images["ref"], "ref"), as_float_batch(images["dist"], "dist")
        check_same_length(ref, dist)
        size = self.config.preprocess.image_size
        ref_padded = load_padded_batch(ref.detach(), size)
        if reference_cache is not None:
            ref_features = reference_cache.features(ref_padded)
        else:
            with torch.no_grad():
                ref_features = self.encode(ref_padded)
        dist_padded = load_padded_batch(dist, size)
        if checkpoint_activations and torch.is_grad_enabled():
            dist_features = ImageFeatures(*checkpoint(_encode_parts, self, dist_padded, use_reentrant=False))
        else:
            dist_features = self.encode(dist_padded)
        return self.score_features(ref_features, dist_features, gate)

    def make_reference_cache(self, max_items: int = 4096) -> ReferenceFeatureSource:
        """A `ReferenceCache`: reference features kept by pixel content, up to `max_items`."""
        from ...reference_cache import ReferenceCache

        return ReferenceCache(self, max_items)

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """The longer side at `image_size` (or the image's own size when not larger)."""
        size = self.config.preprocess.image_size
        if max(width, height) <= size:
            return width, height
        return resized_size(width, height, size)

    @classmethod
    def from_backbones(
        cls,
        structure: BackboneSpec = REFERENCE_CONFIG.structure,
        semantic: BackboneSpec = REFERENCE_CONFIG.semantic,
        *,
        device: str | torch.device | None = None,
    ) -> DSSSQA:
        """A model with untrained heads on Hub backbones (default: the reference ones, pinned).

        This is what training starts from when no published model exists. The feature
        sizes come from the loaded backbones (their repos' configs), not from constants.
        """
        structure_encoder = StructureEncoder.from_spec(structure)
        semantic_encoder = SemanticEncoder.from_spec(semantic)
        config = replace(
            REFERENCE_CONFIG,
            structure=structure,
            semantic=semantic,
            structure_dim=structure_encoder.feature_dim,
            semantic_dim=semantic_encoder.feature_dim,
        )
        return cls(config, structure_encoder, semantic_encoder).to(resolve_device(device)).eval()

    # -- scoring -----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, ref: torch.Tensor, dist: torch.Tensor, gate: str | None = None) -> DSSSQAOutput:
        """Score float images, keeping gradients.

        Args:
            ref: reference images, [B, C, H, W] (or [C, H, W]) float in [0, 1], C in {1, 3}.
            dist: distorted images, same batch size as `ref` (sizes may differ from ref's).
            gate: "hard", "soft" or "off"; `None` = the config's default. Ignored in training mode.

        Returns:
            `DSSSQAOutput` with [B] scores in [0, 5] (higher = better).
        """
        ref = as_float_batch(ref, "ref")
        dist = as_float_batch(dist, "dist")
        check_same_length(ref, dist)
        size = self.config.preprocess.image_size
        return self.score_padded(load_padded_batch(ref, size), load_padded_batch(dist, size), gate)

    def encode(self, images: torch.Tensor) -> ImageFeatures:
        """Backbone features of resize-padded images [B, 3, S, S] in [0, 1] (one pass of each backbone).

        Features come back in the heads' dtype whatever the backbone precision.
        """
        pixels = normalize(
            images.to(self.device, self.pixel_mean.dtype, non_blocking=True), self.pixel_mean, self.pixel_std
        )
        backbone_dtype = next(self.structure.parameters()).dtype
        if backbone_dtype != pixels.dtype:
            pixels = pixels.to(backbone_dtype)
        features = ImageFeatures(self.structure(pixels), self.semantic(pixels))
        if backbone_dtype != self.pixel_mean.dtype:
            features = ImageFeatures(
                features.structure.to(self.pixel_mean.dtype), features.semantic.to(self.pixel_mean.dtype)
            )
        return features

    def score_features(self, ref: ImageFeatures, dist: ImageFeatures, gate: str | None = None) -> DSSSQAOutput:
        """Fusion, fold heads, gate (eval mode only) and ensemble, from backbone features."""
        gate = check_gate_mode(self.config.gate.mode if gate is None else gate)
        fused, cosine = fuse_features(ref.structure, dist.structure, ref.semantic, dist.semantic)
        logits = self.heads(fused)
        if self.training:  # the gate never applies while training
            gated = torch.zeros(cosine.shape, dtype=torch.bool, device=logits.device)
        else:
            logits, gated = apply_gate(logits, cosine, gate, self.config.gate)
        fold_scores = expected_score(logits)
        return DSSSQAOutput(
            score=fold_scores.mean(dim=1),
            fold_scores=fold_scores,
            fold_std=fold_scores.std(dim=1, correction=1 if fold_scores.shape[1] > 1 else 0),
            cos_sim=cosine,
            gated=gated,
            logits=logits,
        )

    def score_padded(
        self,
        ref: torch.Tensor,
        dist: torch.Tensor,
        gate: str | None = None,
        reference_cache: ReferenceFeatureSource | None = None,
    ) -> DSSSQAOutput:
        """Score images that are already resize-padded: [B, 3, S, S] in [0, 1] each.

        With a `ReferenceCache`, reference features come from the cache when the same
        reference pixels were seen before (and carry no gradient).
        """
        check_same_length(ref, dist)
        if reference_cache is not None:
            return self.score_features(reference_cache.features(ref), self.encode(dist), gate)
        features = self.encode(torch.cat([ref.to(dist.device), dist]))  # refs and dists in one pass
        batch = ref.shape[0]
        return self.score_features(features[:batch], features[batch:], gate)


def _encode_parts(model: DSSSQA, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # `checkpoint` recomputes a function of tensors: the features as a tuple, not a dataclass
    features = model.encode(images)
    return features.structure, features.semantic
