"""The trained layers of an MST-CLIPIQA model (fusion and head) as tensors: what its head file holds.

`TrainedLayers` is a part of `MSTCLIPIQA` (a mixin): it reads `self.fusion`, `self.head`,
`self.config` and `self.variant`, and adds the template features of variant A, the list of
trainable parameters, and the strict round trip of the head tensors.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones import CLIPTextEncoder
from ...errors import WeightsFormatError
from .text import tokenize_prompts


class TrainedLayers:
    """The fusion and head tensors of `MSTCLIPIQA` (see there); not a module of its own."""

    fusion: nn.Module
    head: nn.Module
    variant: str
    config: Any

    @torch.no_grad()
    def compute_text_features(self, text_encoder: CLIPTextEncoder, tokenizer: Any | None = None) -> torch.Tensor:
        """Variant A: encode the five templates once and store them, L2-normalised, in the head.

        Args:
            text_encoder: a `CLIPTextEncoder` with projection (`text_embeds`, D-d).
            tokenizer: its tokenizer (default: `text_encoder.tokenizer`).

        Returns:
            The stored buffer `head.text_features` [5, D] (unit rows).
        """
        if self.variant != "A" or not text_encoder.with_projection:
            raise WeightsFormatError("template features are for variant A, from a text model with projection")
        device = self.head.text_features.device
        ids, mask = tokenize_prompts(
            tokenizer or text_encoder.tokenizer, self.config.templates, self.config.max_prompt_tokens
        )
        text_encoder = text_encoder.to(device)
        features = F.normalize(text_encoder(ids.to(device), mask.to(device)).float(), dim=-1)
        self.head.text_features.copy_(features)
        return self.head.text_features

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters that train: fusion and head (the encoders are frozen)."""
        return [p for p in [*self.fusion.parameters(), *self.head.parameters()] if p.requires_grad]

    def num_trainable_parameters(self) -> int:
        """722,561 for variant A and 2,299,010 for B at the reference sizes."""
        return sum(p.numel() for p in self.trainable_parameters())

    def head_tensors(self) -> dict[str, torch.Tensor]:
        """Fusion and head parameters and buffers, flat names (`fusion.W_h.weight`, `head.temperature`, ...)."""
        parts = {"fusion": self.fusion, "head": self.head}
        return {
            f"{part}.{name}": t.detach() for part, module in parts.items() for name, t in module.state_dict().items()
        }

    def load_head_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load `head_tensors` output, strictly; `WeightsFormatError` on missing, extra or mis-shaped tensors."""
        expected = self.head_tensors()
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        misshaped = [
            f"{name} {tuple(tensors[name].shape)} (expected {tuple(expected[name].shape)})"
            for name in sorted(set(expected) & set(tensors))
            if tuple(tensors[name].shape) != tuple(expected[name].shape)
        ]
        if missing or extra or misshaped:
            raise WeightsFormatError(
                f"MST-CLIPIQA variant {self.variant} head tensors do not fit: missing {missing}, "
                f"unexpected {extra}, mis-shaped {misshaped}"
            )
        scores = tensors.get("head.quality_scores")
        if scores is not None and not torch.equal(scores.float().cpu(), self.head.quality_scores.float().cpu()):
            raise WeightsFormatError(
                f"head.quality_scores must be {self.head.quality_scores.tolist()}, got {scores.tolist()}"
            )
        with torch.no_grad():
            for part, module in (("fusion", self.fusion), ("head", self.head)):
                prefix = part + "."
                module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
