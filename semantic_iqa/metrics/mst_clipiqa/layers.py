"""MST-CLIPIQA's trained layers, under the reference's names (`W_h`, `cross_attn`, `w_o`, ...).

    h = ReLU(W_h [f_c ; f_f]),  g = sigmoid(W_g h)      gate, [B, D]
    z = g * W_c f_c + (1 - g) * W_f f_f                 fused feature, [B, D]

Variant A head: p = softmax(t * cos(z, text_k)), score = sum_k p_k * k in [1, 5].
Variant B head: z' = z + alpha * CrossAttention(z, prompt token states, padding masked),
score = w_o(GELU(W_1 z') + W_2 z').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MSTCLIPIQAConfig


class GatedFeatureFusion(nn.Module):
    """GFF: [B, D] coarse and fine features -> fused [B, D] and gate [B, D] (1 = all coarse)."""

    def __init__(self, embed_dim: int = 512, hidden_dim: int = 128) -> None:
        super().__init__()
        self.W_h = nn.Linear(2 * embed_dim, hidden_dim)
        self.W_g = nn.Linear(hidden_dim, embed_dim)
        self.W_c = nn.Linear(embed_dim, embed_dim)
        self.W_f = nn.Linear(embed_dim, embed_dim)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self.W_g(F.relu(self.W_h(torch.cat([coarse, fine], dim=-1)))))
        return gate * self.W_c(coarse) + (1 - gate) * self.W_f(fine), gate


class TemplateQualityHead(nn.Module):
    """Variant A: fused [B, D] -> (score [B] in [1, 5], probabilities [B, K]) against K stored templates."""

    def __init__(self, embed_dim: int = 512, num_levels: int = 5) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.tensor(100.0))  # trained, never clamped (as the reference)
        # L2-normalised template embeddings, computed once by `MSTCLIPIQA.compute_text_features`.
        self.register_buffer("text_features", torch.zeros(num_levels, embed_dim))
        self.register_buffer("quality_scores", torch.arange(1.0, num_levels + 1.0))

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.temperature * F.normalize(fused, dim=-1) @ self.text_features.T
        probabilities = logits.softmax(dim=-1)
        return probabilities @ self.quality_scores, probabilities


class PromptCrossAttentionHead(nn.Module):
    """Variant B: fused [B, D] attends to the prompt's token states [B, L, D] -> regression score [B].

    Keys that are padding (mask 0) are masked out. The reference gives the attention no key
    padding mask, so there a prompt's score depends on the longest prompt of its batch; at
    batch size 1 there is no padding, and that is what the mask reproduces for any batch:
    a prompt scores the same alone or next to any other prompts.
    """

    def __init__(self, embed_dim: int = 512, num_heads: int = 8) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(0.0))  # the residual starts closed, as the reference
        self.cross_attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.W_1 = nn.Linear(embed_dim, embed_dim)
        self.W_2 = nn.Linear(embed_dim, embed_dim)
        self.w_o = nn.Linear(embed_dim, 1)
        self.activation = nn.GELU()

    def forward(self, fused: torch.Tensor, prompt_states: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        attended, _ = self.cross_attn(
            fused.unsqueeze(1), prompt_states, prompt_states, key_padding_mask=prompt_mask == 0, need_weights=False
        )
        anchored = fused + self.alpha * attended.squeeze(1)
        return self.w_o(self.activation(self.W_1(anchored)) + self.W_2(anchored)).squeeze(-1)


def build_head(config: MSTCLIPIQAConfig) -> nn.Module:
    """The variant's head at the config's sizes, freshly initialised."""
    if config.variant == "A":
        return TemplateQualityHead(config.embed_dim, len(config.quality_words))
    return PromptCrossAttentionHead(config.embed_dim, config.num_heads)
