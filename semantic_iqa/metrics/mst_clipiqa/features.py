"""MST-CLIPIQA's frozen-encoder outputs, computed once per image and per prompt, kept on disk.

The towers are frozen and the reference recipe has no augmentation, so what training needs
from them is fixed per input: the coarse and fine `image_embeds` of each image ([D] each)
and, for variant B, the text model's token states of each prompt ([L, D], L = the prompt's
own token count, at most 77). They are stored in the shared content-keyed store
(`semantic_iqa.feature_cache`): images under the fingerprint of the two image towers and the
preprocessing, prompts under the fingerprint of the text tower and its tokenizer, so models
sharing image towers share image features.

Prompt states are stored without padding and padded per batch (`CachedFeatures.batch`),
with the padding keys masked: the CLIP text model is causal, so a token's state does not
depend on padding after it, and the masked head then scores exactly as `MSTCLIPIQA.forward`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ...feature_cache import Entries, FeatureStore, fingerprint, text_key
from ...preprocess import normalize
from ...scoring import Batch
from .model import MSTCLIPIQA
from .text import tokenize_prompts

FEATURES_VERSION = 1  # bump when what is stored per key changes
IMAGE_NAMES = ("coarse", "fine")
PROMPT_NAME = "states"


@dataclass
class CachedFeatures:
    """What the trainable parts of MST-CLIPIQA see, for N images.

    Attributes:
        coarse, fine: [N, D] float32 `image_embeds` of the two towers (not normalised).
        prompt_states: variant B: one [L_p, D] tensor per distinct prompt; None for variant A.
        prompt_index: variant B: [N] int, the row of each image's prompt in `prompt_states`.
    """

    coarse: torch.Tensor
    fine: torch.Tensor
    prompt_states: list[torch.Tensor] | None = None
    prompt_index: np.ndarray | None = None

    def __len__(self) -> int:
        return self.coarse.shape[0]

    def batch(self, rows: torch.Tensor | np.ndarray | Sequence[int], device: torch.device | str) -> dict:
        """Inputs of `rows` for `FeatureScorer`: coarse, fine [B, D]; variant B also states [B, L, D]
        and mask [B, L] (1 = token, 0 = padding), L = the longest prompt among the rows."""
        rows = torch.as_tensor(rows, dtype=torch.long, device="cpu")
        inputs = {"coarse": self.coarse[rows].to(device), "fine": self.fine[rows].to(device)}
        if self.prompt_states is not None:
            states = [self.prompt_states[int(self.prompt_index[int(row)])] for row in rows]
            lengths = torch.tensor([len(s) for s in states])
            inputs["states"] = pad_sequence(states, batch_first=True).to(device)
            inputs["mask"] = (torch.arange(int(lengths.max()))[None] < lengths[:, None]).long().to(device)
        return inputs


def encode_images(model: MSTCLIPIQA, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 3, S, S] preprocessed pixels in [0, 1] -> coarse and fine `image_embeds` [B, D], as `forward` does."""
    normalised = normalize(pixels, model.pixel_mean.to(pixels.dtype), model.pixel_std.to(pixels.dtype))
    return model.encoders["coarse"](normalised), model.encoders["fine"](normalised)


def image_fingerprint(model: MSTCLIPIQA) -> str:
    """Identity of what shapes the image features: both image towers and the preprocessing."""
    config = model.config
    settings = {
        "features": f"mst-clipiqa image_embeds v{FEATURES_VERSION}",
        "preprocess": "short side to image_size, bicubic, centre crop",
        "image_size": config.image_size,
        "mean": list(config.mean),
        "std": list(config.std),
    }
    return fingerprint(settings, (model.encoders["coarse"], model.encoders["fine"]))


def prompt_fingerprint(model: MSTCLIPIQA) -> str:
    """Identity of what shapes the prompt states: the text tower, its tokenizer, the token limit."""
    text = model.encoders["text"]
    tokenizer = text.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    description = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    settings = {
        "features": f"mst-clipiqa prompt last_hidden_state v{FEATURES_VERSION}",
        "max_prompt_tokens": model.config.max_prompt_tokens,
        "tokenizer_sha256": hashlib.sha256(description.encode()).hexdigest(),
    }
    return fingerprint(settings, (text,))


class MSTFeatureCache:
    """Cached encoder outputs of one MST-CLIPIQA model: image embeddings and (variant B) prompt states.

    Args:
        root: cache root (sub-folders per fingerprint).
        model: the model whose frozen towers produce the features.
    """

    def __init__(self, root: str | os.PathLike, model: MSTCLIPIQA) -> None:
        self.model = model
        self.images = FeatureStore(root, image_fingerprint(model))
        self.prompts = FeatureStore(root, prompt_fingerprint(model)) if model.variant == "B" else None

    @property
    def computed(self) -> int:
        """Images plus prompts encoded by this object (0 when everything was cached)."""
        return self.images.computed + (self.prompts.computed if self.prompts is not None else 0)

    def features(
        self,
        paths: Sequence[Path],
        prompts: Sequence[str] | None = None,
        *,
        batch_size: int = 16,
        workers: int = 0,
        progress: bool = True,
    ) -> tuple[CachedFeatures, list[str]]:
        """Extract what is missing and load everything: (features of the N images, their file keys).

        `prompts` (one per image) is needed for variant B and ignored for A.
        """
        keys = self.extract_images(paths, batch_size=batch_size, workers=workers, progress=progress)
        loaded = self.images.load(keys, IMAGE_NAMES)
        features = CachedFeatures(torch.stack(loaded["coarse"]), torch.stack(loaded["fine"]))
        if self.prompts is not None:
            if prompts is None or len(prompts) != len(paths):
                raise ValueError("variant B needs one prompt per image")
            distinct = list(dict.fromkeys(prompts))
            prompt_keys = self.extract_prompts(distinct, batch_size=batch_size, progress=progress)
            features.prompt_states = self.prompts.load(prompt_keys, (PROMPT_NAME,))[PROMPT_NAME]
            row = {prompt: index for index, prompt in enumerate(distinct)}
            features.prompt_index = np.asarray([row[p] for p in prompts], dtype=np.int64)
        return features, keys

    def extract_images(
        self, paths: Sequence[Path], *, batch_size: int = 16, workers: int = 0, progress: bool = True
    ) -> list[str]:
        """Make sure every image file's coarse and fine embeddings are stored; return the file keys."""
        return self.images.extract_image_files(
            paths, self._encode_images, self.model, batch_size=batch_size, workers=workers, progress=progress
        )

    def extract_prompts(self, prompts: Sequence[str], *, batch_size: int = 16, progress: bool = True) -> list[str]:
        """Make sure every prompt's token states are stored (variant B); return the prompt keys."""
        if self.prompts is None:
            raise ValueError("variant A has no prompt features")
        return self.prompts.extract(
            [text_key(prompt) for prompt in prompts],
            {"prompt": list(prompts)},
            self._encode_prompts,
            batch_size=batch_size,
            progress=progress,
            unit="prompt",
        )

    def _encode_images(self, batch: Batch) -> Entries:
        coarse, fine = encode_images(self.model, batch.images["image"])
        return {key: {"coarse": coarse[row], "fine": fine[row]} for row, key in enumerate(batch.extras["key"])}

    def _encode_prompts(self, batch: Batch) -> Entries:
        text = self.model.encoders["text"]
        ids, mask = tokenize_prompts(text.tokenizer, batch.extras["prompt"], self.model.config.max_prompt_tokens)
        states = text(ids.to(self.model.device), mask.to(self.model.device))
        lengths = mask.sum(dim=1).tolist()
        return {key: {PROMPT_NAME: states[row, : lengths[row]]} for row, key in enumerate(batch.extras["key"])}
