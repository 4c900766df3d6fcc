"""Image encoders: timm DINOv3 (CLS), a timm model's own output, CLIP vision (pooled, and projected `image_embeds`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
)

from .base import ImageEncoder, load_transformers_checked, quiet_transformers_bars, weights_file


class StructureEncoder(ImageEncoder):
    """timm DINOv3 ViT: normalised [B, 3, S, S] -> CLS feature [B, D]."""

    library = "timm"

    def __init__(self, model: nn.Module, model_args: dict[str, Any] | None = None) -> None:
        super().__init__(model)
        self.model_args = dict(model_args or {})
        self.feature_dim = int(model.num_features)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixels)[:, 0]

    def tokens_per_image(self, pixels: torch.Tensor) -> int:
        patch = getattr(getattr(self.model, "patch_embed", None), "patch_size", None)
        if patch is None:  # not a transformer of patches (a CNN): 0, never split
            return 0
        patches = (pixels.shape[-2] // patch[0]) * (pixels.shape[-1] // patch[1])
        return patches + int(getattr(self.model, "num_prefix_tokens", 0))

    @classmethod
    def build(cls, architecture: str, **model_args: Any) -> StructureEncoder:
        """Randomly initialised encoder of a timm architecture (for tests and benchmarks)."""
        return cls(timm.create_model(architecture, pretrained=False, **model_args), model_args)

    @classmethod
    def from_folder(cls, folder: Path) -> StructureEncoder:
        """Load a timm folder (`config.json` + `model.safetensors`; sizes from its `model_args`)."""
        weights_file(folder, "timm")
        model_args = json.loads((folder / "config.json").read_text()).get("model_args", {})
        model = timm.create_model(f"local-dir:{folder}", pretrained=True)
        return cls(model, model_args)

    def save(self, folder: Path) -> None:
        """Write the timm folder format that `from_folder` and timm's `local-dir:` read."""
        timm.models.save_for_hf(self.model, str(folder), model_args=self.model_args, safe_serialization=True)


class TimmOutputEncoder(StructureEncoder):
    """A timm model's own output (`model(pixels)`): normalised [B, 3, S, S] -> [B, D].

    What the output is, is set by the model's arguments, stored with it (`model_args`): for
    a ViT, `global_pool="token"` gives the CLS token, `final_norm=False` takes it before the
    final norm, and `num_classes` > 0 adds a linear projection (e.g. CLIP's).
    """

    def __init__(self, model: nn.Module, model_args: dict[str, Any] | None = None) -> None:
        super().__init__(model, model_args)
        self.feature_dim = int(getattr(model, "num_classes", 0) or model.num_features)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


def _clip_tokens(config: CLIPVisionConfig, height: int, width: int) -> int:
    return (height // config.patch_size) * (width // config.patch_size) + 1  # patches and CLS


class SemanticEncoder(ImageEncoder):
    """transformers CLIP vision tower: normalised [B, 3, S, S] -> pooled feature [B, D]."""

    library = "transformers"

    def __init__(self, model: CLIPVisionModel) -> None:
        super().__init__(model)
        self.feature_dim = int(model.config.hidden_size)
        self.image_size = int(model.config.image_size)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        if pixels.shape[-2:] != size:
            pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
        return self.model(pixel_values=pixels).pooler_output

    def tokens_per_image(self, pixels: torch.Tensor) -> int:
        return _clip_tokens(self.model.config, self.image_size, self.image_size)  # resized to its own size

    @classmethod
    def build(cls, **config: Any) -> SemanticEncoder:
        """Randomly initialised CLIP vision tower with the given `CLIPVisionConfig` values."""
        return cls(CLIPVisionModel(CLIPVisionConfig(**config)))

    @classmethod
    def from_folder(cls, folder: Path) -> SemanticEncoder:
        """Load a transformers folder: `save_pretrained` output or a CLIP Hub snapshot.

        The config may be a `CLIPVisionConfig` or a whole `CLIPConfig` (text and vision; the
        vision part is used, and the text tower's weights in the same file are skipped).
        """
        return cls(load_transformers_checked(CLIPVisionModel, folder, "vision"))

    def save(self, folder: Path) -> None:
        with quiet_transformers_bars():
            self.model.save_pretrained(str(folder), safe_serialization=True)


class ProjectedCLIPEncoder(ImageEncoder):
    """transformers `CLIPVisionModelWithProjection`: normalised [B, 3, S, S] -> `image_embeds` [B, P].

    The feature is the projected CLS token, NOT L2-normalised (MST-CLIPIQA fuses it as is).
    S is the model's `image_size` (224 for the reference), P its `projection_dim` (512).
    """

    library = "transformers"

    def __init__(self, model: CLIPVisionModelWithProjection) -> None:
        super().__init__(model)
        self.feature_dim = int(model.config.projection_dim)
        self.image_size = int(model.config.image_size)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).image_embeds

    def tokens_per_image(self, pixels: torch.Tensor) -> int:
        return _clip_tokens(self.model.config, pixels.shape[-2], pixels.shape[-1])

    @classmethod
    def build(cls, **vision_config: Any) -> ProjectedCLIPEncoder:
        """Randomly initialised tower with the given `CLIPVisionConfig` values."""
        return cls(CLIPVisionModelWithProjection(CLIPVisionConfig(**vision_config)))

    @classmethod
    def from_folder(cls, folder: Path) -> ProjectedCLIPEncoder:
        """Load `save_pretrained` output or a whole-CLIP Hub snapshot (see `SemanticEncoder.from_folder`)."""
        return cls(load_transformers_checked(CLIPVisionModelWithProjection, Path(folder), "vision"))

    def save(self, folder: Path) -> None:
        with quiet_transformers_bars():
            self.model.save_pretrained(str(folder), safe_serialization=True)
