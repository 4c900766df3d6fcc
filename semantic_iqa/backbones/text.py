"""The CLIP text encoder (token states or projected embeddings) with its tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
)

from ..config import BACKBONE_CONFIG_FILE
from ..errors import WeightsFormatError, WeightsNotFoundError
from .base import (
    CLIP_CONTEXT_LENGTH,
    CLIP_TOKENIZER_FILES,
    FrozenEncoder,
    load_transformers_checked,
    quiet_transformers_bars,
)


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


class CLIPTextEncoder(FrozenEncoder):
    """transformers CLIP text tower plus its tokenizer.

    - `with_projection=True`: `CLIPTextModelWithProjection`; `forward` gives `text_embeds`
      [N, P], the projected end-token state (not L2-normalised).
    - `with_projection=False`: `CLIPTextModel`; `forward` gives `last_hidden_state` [N, L, H].

    The tokenizer is kept as `self.tokenizer` (not a module: it has no tensors) and is saved
    and loaded with the model's files.
    """

    library = "transformers"
    hub_files = CLIP_TOKENIZER_FILES  # the tokenizer lives in the same Hub repo

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
        model = load_transformers_checked(model_class, folder, "text")
        return cls(model, load_clip_tokenizer(folder))

    def save(self, folder: Path) -> None:
        """`save_pretrained` of the model (safetensors) and of the tokenizer, into one folder."""
        with quiet_transformers_bars():
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
