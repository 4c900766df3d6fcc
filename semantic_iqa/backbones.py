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

MST-CLIPIQA's towers are at the end of the module: `ProjectedCLIPEncoder`
(`CLIPVisionModelWithProjection`, projected CLS) and `CLIPTextEncoder` (a CLIP text model
and its tokenizer, whose files travel with the model's).
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
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
)
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
    def from_spec(cls, spec: BackboneSpec, weights_root: Path | None = None, **folder_options: Any) -> FrozenEncoder:
        """Load the encoder `spec` names, from `weights_root / spec.path` or from the Hub.

        `folder_options` go to `from_folder` (e.g. `with_projection` of `CLIPTextEncoder`).
        """
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
            return cls.from_folder(folder, **folder_options)
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
        return cls(_load_transformers_checked(CLIPVisionModel, folder, "vision"))

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


# --- CLIP towers of MST-CLIPIQA: projected image embeddings, and the text tower with its tokenizer.

# A CLIP tokenizer's files (a Hub CLIP repo's, or those `save_pretrained` writes); a folder
# needs `tokenizer.json`, or `vocab.json` + `merges.txt`, to load.
CLIP_TOKENIZER_FILES = (
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
CLIP_CONTEXT_LENGTH = 77  # positions of CLIP's text model, start and end tokens included
# Module levels that transformers 4 had in every CLIP tower and that transformers 5 dropped
# from `CLIPVisionModel` / `CLIPTextModel` (the *WithProjection classes keep theirs).
CLIP_TOWER_LEVELS = ("vision_model.", "text_model.")


def clip_keys_for_installed(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIP tower's tensors renamed to the key names `model` has under the installed transformers.

    Checkpoints written by transformers 4 name every tower's tensors under `vision_model.` /
    `text_model.`; transformers 5 dropped that level from `CLIPVisionModel` and
    `CLIPTextModel` (its own loader renames on load, `load_state_dict` does not). Keys are
    moved into or out of that level where that is what `model` expects, so checkpoints of
    either era load into either. The `embeddings.position_ids` buffer that older versions
    saved is dropped where the model no longer has it (it is recomputed, not learnt).
    Unknown keys are kept, so a strict `load_state_dict` still reports them.
    """
    wanted = set(model.state_dict())
    renamed = {}
    for key, value in tensors.items():
        if key not in wanted:
            for level in CLIP_TOWER_LEVELS:
                if key.startswith(level) and key[len(level) :] in wanted:
                    key = key[len(level) :]
                    break
                if level + key in wanted:
                    key = level + key
                    break
            else:
                if key.endswith("embeddings.position_ids"):
                    continue  # a buffer recomputed by the model, not a weight
        renamed[key] = value
    return renamed


def load_clip_tokenizer(folder: Path | str) -> Any:
    """transformers' fast CLIP tokenizer from a folder holding CLIP's tokenizer files."""
    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file() and not all((folder / n).is_file() for n in CLIP_TOKENIZER_FILES[:2]):
        raise WeightsNotFoundError(
            f"folder {folder} holds no CLIP tokenizer: it needs tokenizer.json, or vocab.json and merges.txt"
        )
    # transformers 4 names the fast class CLIPTokenizerFast; transformers 5 keeps that name as an
    # alias of CLIPTokenizer, which is the same tokenizers-backed class.
    from transformers import CLIPTokenizerFast

    return CLIPTokenizerFast.from_pretrained(str(folder), model_max_length=CLIP_CONTEXT_LENGTH)


def _load_transformers_checked(model_class: type, folder: Path, tower: str) -> Any:
    """`model_class.from_pretrained(folder)` with the safe loader, refusing missing or mis-sized tensors.

    The folder may hold `save_pretrained` output or a whole-CLIP Hub snapshot (`CLIPConfig`,
    both towers in one file): the other tower's tensors are skipped silently.
    """
    weights = _weights_file(folder, "transformers")
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # the other tower's skipped tensors are expected
    try:
        model, loading = model_class.from_pretrained(
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
            f"backbone folder {folder}: {weights.name} lacks or mis-sizes {len(absent)} {tower} tensor(s) "
            f"(first: {absent[0]}); it is not a CLIP {tower} model of the size its config.json gives"
        )
    return model


class ProjectedCLIPEncoder(FrozenEncoder):
    """transformers `CLIPVisionModelWithProjection`: normalised [B, 3, S, S] -> `image_embeds` [B, P].

    The feature is the projected CLS token, NOT L2-normalised (MST-CLIPIQA fuses it as is).
    S is the model's `image_size` (224 for the reference), P its `projection_dim` (512).
    """

    library = "transformers"

    def __init__(self, model: CLIPVisionModelWithProjection) -> None:
        super().__init__(model)
        self.feature_dim = int(model.config.projection_dim)
        self.image_size = int(model.config.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).image_embeds

    @classmethod
    def build(cls, **vision_config: Any) -> ProjectedCLIPEncoder:
        """Randomly initialised tower with the given `CLIPVisionConfig` values."""
        return cls(CLIPVisionModelWithProjection(CLIPVisionConfig(**vision_config)))

    @classmethod
    def from_folder(cls, folder: Path) -> ProjectedCLIPEncoder:
        """Load `save_pretrained` output or a whole-CLIP Hub snapshot (see `SemanticEncoder.from_folder`)."""
        return cls(_load_transformers_checked(CLIPVisionModelWithProjection, Path(folder), "vision"))

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder), safe_serialization=True)


class CLIPTextEncoder(FrozenEncoder):
    """transformers CLIP text tower plus its tokenizer.

    - `with_projection=True`: `CLIPTextModelWithProjection`; `forward` gives `text_embeds`
      [N, P], the projected end-token state (not L2-normalised).
    - `with_projection=False`: `CLIPTextModel`; `forward` gives `last_hidden_state` [N, L, H].

    The tokenizer is kept as `self.tokenizer` (not a module: it has no tensors) and is saved
    and loaded with the model's files.
    """

    library = "transformers"

    def __init__(self, model: CLIPTextModel | CLIPTextModelWithProjection, tokenizer: Any) -> None:
        super().__init__(model)
        self.tokenizer = tokenizer
        self.with_projection = isinstance(model, CLIPTextModelWithProjection)
        config = model.config
        self.feature_dim = int(config.projection_dim if self.with_projection else config.hidden_size)
        self.max_positions = int(config.max_position_embeddings)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids [N, L] and mask [N, L] (1 = token) -> `text_embeds` [N, P] or `last_hidden_state` [N, L, H]."""
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return output.text_embeds if self.with_projection else output.last_hidden_state

    @classmethod
    def build(cls, tokenizer: Any, with_projection: bool, **text_config: Any) -> CLIPTextEncoder:
        """Randomly initialised tower with the given `CLIPTextConfig` values, using `tokenizer`."""
        model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
        return cls(model_class(CLIPTextConfig(**text_config)), tokenizer)

    @classmethod
    def from_folder(cls, folder: Path, with_projection: bool | None = None) -> CLIPTextEncoder:
        """Load `save_pretrained` output or a whole-CLIP Hub snapshot, tokenizer files included.

        Args:
            folder: `config.json`, `model.safetensors` or `pytorch_model.bin`, and the tokenizer files.
            with_projection: which class to load; `None` reads it from `config.json`'s
                `architectures` (needed for a whole-CLIP snapshot, which holds both).
        """
        folder = Path(folder)
        if with_projection is None:
            with_projection = _saved_text_class(folder)
        model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
        model = _load_transformers_checked(model_class, folder, "text")
        return cls(model, load_clip_tokenizer(folder))

    @classmethod
    def from_spec(
        cls, spec: BackboneSpec, weights_root: Path | None = None, *, with_projection: bool | None = None
    ) -> CLIPTextEncoder:
        """As `FrozenEncoder.from_spec`; a Hub repo's tokenizer files are fetched too (same snapshot)."""
        if spec.repo_id is not None and spec.library == cls.library:
            from .hub import snapshot  # only Hub-referenced backbones need it

            # Missing patterns are not an error for the hub; `load_clip_tokenizer` says what is missing.
            snapshot(
                spec.repo_id,
                revision=spec.revision,
                allow_patterns=list(CLIP_TOKENIZER_FILES),
                what=f"backbone {spec.name}",
            )
        return super().from_spec(spec, weights_root, with_projection=with_projection)

    def save(self, folder: Path) -> None:
        """`save_pretrained` of the model (safetensors) and of the tokenizer, into one folder."""
        self.model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))


def _saved_text_class(folder: Path) -> bool:
    """Whether `folder/config.json` names `CLIPTextModelWithProjection` (True) or `CLIPTextModel` (False)."""
    try:
        architectures = json.loads((folder / BACKBONE_CONFIG_FILE).read_text()).get("architectures") or []
    except (OSError, ValueError):
        architectures = []
    if "CLIPTextModelWithProjection" in architectures:
        return True
    if "CLIPTextModel" in architectures:
        return False
    raise WeightsFormatError(
        f"backbone folder {folder}: config.json names {architectures or 'no architecture'}, not one CLIP text "
        "model class; say which with with_projection=True (text_embeds) or False (last_hidden_state)"
    )
