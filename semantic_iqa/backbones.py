"""The two frozen encoders and where their weights come from.

- Structure: a timm DINOv3 ViT; the feature is the CLS token of `forward_features`
  (after the final norm).
- Semantic: a transformers `CLIPVisionModel`; the feature is `pooler_output` (the
  post-layernorm CLS token, before the visual projection). Its input is the same
  normalised square, bilinearly resized to the CLIP model's native size.

Both load from a local folder in their library's own format (timm: `config.json` +
`model.safetensors`; transformers: `save_pretrained` output, or a CLIP Hub repo). A Hub
backbone is first fetched into the Hugging Face cache by `huggingface_hub.snapshot_download`,
pinned to a revision, and then loaded from that folder, so caching, offline mode and
revisions are the hub library's. Weights are read from safetensors, or, for a transformers
repo that has none at its revision (the reference CLIP repo), from `pytorch_model.bin`
through transformers' loader with `weights_only=True`, which refuses code in the pickle.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.utils import logging as transformers_logging

from .config import BACKBONE_CONFIG_FILE, BACKBONE_WEIGHT_FILES, BackboneSpec
from .errors import SemanticIQAError, WeightsFormatError, WeightsNotFoundError


class FrozenEncoder(nn.Module):
    """An encoder whose parameters never train and which stays in eval mode."""

    library: str  # the library whose folder format and classes the encoder uses
    feature_dim: int

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        # Frozen: dropout/norm layers of the backbone never switch to training behaviour.
        return super().train(False)

    @classmethod
    def from_folder(cls, folder: Path) -> FrozenEncoder:
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: BackboneSpec, weights_root: Path | None = None) -> FrozenEncoder:
        """Load the encoder `spec` names, from `weights_root / spec.path` or from the Hub."""
        if spec.library != cls.library:
            raise WeightsFormatError(
                f"backbone {spec.name!r}: {cls.__name__} loads {cls.library} models, not {spec.library!r}"
            )
        if spec.path is not None:
            if weights_root is None:
                raise WeightsFormatError(f"backbone {spec.name!r} is stored in {spec.path!r} but no folder was given")
            folder = weights_root / spec.path
        else:
            from .hub import snapshot_backbone  # only Hub-referenced backbones need it

            folder = snapshot_backbone(spec)
        try:
            return cls.from_folder(folder)
        except SemanticIQAError:
            raise
        except pickle.UnpicklingError:  # torch.load(weights_only=True) met something other than tensors
            raise WeightsFormatError(
                f"backbone {spec.name}: refused to load {folder}: its pytorch_model.bin holds objects other than "
                "tensors (possibly code), which the safe loader does not run; use a safetensors copy"
            ) from None
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # damaged or foreign files
            hint = "download it again with --force" if spec.repo_id else "export the weights folder again"
            raise WeightsFormatError(
                f"backbone {spec.name}: cannot load {folder}: {str(exc).splitlines()[0]}; {hint}"
            ) from None


class StructureEncoder(FrozenEncoder):
    """timm DINOv3 ViT: normalised [B, 3, S, S] -> CLS feature [B, D]."""

    library = "timm"

    def __init__(self, model: nn.Module, model_args: dict[str, Any] | None = None) -> None:
        super().__init__(model)
        self.model_args = dict(model_args or {})
        self.feature_dim = int(model.num_features)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixels)[:, 0]

    @classmethod
    def build(cls, architecture: str, **model_args: Any) -> StructureEncoder:
        """Randomly initialised encoder of a timm architecture (for tests and benchmarks)."""
        return cls(timm.create_model(architecture, pretrained=False, **model_args), model_args)

    @classmethod
    def from_folder(cls, folder: Path) -> StructureEncoder:
        """Load a timm folder (`config.json` + `model.safetensors`; sizes from its `model_args`)."""
        _weights_file(folder, "timm")
        model_args = json.loads((folder / "config.json").read_text()).get("model_args", {})
        model = timm.create_model(f"local-dir:{folder}", pretrained=True)
        return cls(model, model_args)

    def save(self, folder: Path) -> None:
        """Write the timm folder format that `from_folder` and timm's `local-dir:` read."""
        timm.models.save_for_hf(self.model, str(folder), model_args=self.model_args, safe_serialization=True)


class SemanticEncoder(FrozenEncoder):
    """transformers CLIP vision tower: normalised [B, 3, S, S] -> pooled feature [B, D]."""

    library = "transformers"

    def __init__(self, model: CLIPVisionModel) -> None:
        super().__init__(model)
        self.feature_dim = int(model.config.hidden_size)
        self.image_size = int(model.config.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        if pixels.shape[-2:] != size:
            pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
        return self.model(pixel_values=pixels).pooler_output

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
        weights = _weights_file(folder, "transformers")
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # the text tower's skipped tensors are expected
        try:
            model, loading = CLIPVisionModel.from_pretrained(
                str(folder),
                use_safetensors=weights.suffix == ".safetensors",
                weights_only=True,
                output_loading_info=True,
            )
        finally:
            transformers_logging.set_verbosity(verbosity)
        # transformers would leave missing tensors randomly initialised: never score with those.
        absent = sorted(loading.get("missing_keys", [])) + sorted(str(k) for k in loading.get("mismatched_keys", []))
        if absent:
            raise WeightsFormatError(
                f"backbone folder {folder}: {weights.name} lacks or mis-sizes {len(absent)} vision tensor(s) "
                f"(first: {absent[0]}); it is not a CLIP vision model of the size its config.json gives"
            )
        return cls(model)

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder), safe_serialization=True)


def _weights_file(folder: Path, library: str) -> Path:
    """The folder's weights file (the first of the library's accepted names that exists)."""
    names = BACKBONE_WEIGHT_FILES[library]
    found = [folder / name for name in names if (folder / name).is_file()]
    if not (folder / BACKBONE_CONFIG_FILE).is_file() or not found:
        raise WeightsNotFoundError(
            f"backbone folder {folder} needs {BACKBONE_CONFIG_FILE} and one of {', '.join(names)} ({library} format)"
        )
    return found[0]
