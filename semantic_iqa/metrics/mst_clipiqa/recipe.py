"""The reference training recipe of MST-CLIPIQA, as functions: split, loss, optimiser, one step.

(/work/shared/reference/mst-clipiqa.md, "Training recipe".) Loss = MSE(q, mos) + 1.0 *
pairwise margin ranking (margin 0.1, over ordered pairs of different MOS; 0 with none);
Adam (not AdamW: the weight decay is Adam's L2 form, added to the gradient) lr 5e-6,
weight decay 1e-3; batch 8, shuffled; no scheduler, no clipping; split by
`torch.utils.data.random_split` with a generator seeded 42. `train.py` runs it for 20 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import random_split

from ...errors import DatasetError
from .layers import GatedFeatureFusion, build_head
from .model import MSTCLIPIQA


@dataclass(frozen=True)
class Recipe:
    """Training settings; the defaults are the reference recipe."""

    epochs: int = 20
    batch_size: int = 8
    lr: float = 5e-6
    weight_decay: float = 1e-3
    ranking_weight: float = 1.0
    margin: float = 0.1
    train_fraction: float = 0.8
    seed: int = 42


def reference_split(count: int, seed: int = 42, train_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) as the reference draws them, in random_split's order."""
    train_size = int(train_fraction * count)
    parts = random_split(range(count), [train_size, count - train_size], generator=torch.Generator().manual_seed(seed))
    return np.asarray(parts[0].indices, dtype=np.int64), np.asarray(parts[1].indices, dtype=np.int64)


def checked_split(count: int, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """`reference_split`, refusing a data set whose validation part cannot be ranked (< 2 images)."""
    train, validation = reference_split(count, recipe.seed, recipe.train_fraction)
    if len(train) < 1 or len(validation) < 2:
        raise DatasetError(
            f"{count} labelled images are too few: the {recipe.train_fraction:g}/{1 - recipe.train_fraction:g} split "
            f"gives {len(train)} to train and {len(validation)} to validate (at least 1 and 2 are needed)"
        )
    return train, validation


def pairwise_ranking_loss(predicted: torch.Tensor, mos: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Mean over ordered pairs (i, j) with mos_i != mos_j of ReLU(-sign(mos_i - mos_j) (q_i - q_j) + margin).

    The diagonal and pairs of equal MOS are left out; with no pair left the loss is 0. [B], [B] -> [].
    """
    order = torch.sign(mos[:, None] - mos[None, :])
    hinge = F.relu(-order * (predicted[:, None] - predicted[None, :]) + margin)
    counted = order != 0
    if not counted.any():
        return predicted.sum() * 0.0  # keeps the graph (and the device) of a real loss
    return hinge[counted].mean()


def recipe_loss(predicted: torch.Tensor, mos: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """MSE(predicted, mos) + ranking_weight * `pairwise_ranking_loss`; lower is better."""
    return F.mse_loss(predicted, mos) + recipe.ranking_weight * pairwise_ranking_loss(predicted, mos, recipe.margin)


class FeatureScorer(nn.Module):
    """MST-CLIPIQA's trainable parts on cached features: `fusion` + `head`, the model's layers and names.

    Its `state_dict()` has the names of `MSTCLIPIQA.head_tensors()` (`fusion.W_h.weight`,
    `head.temperature`, ...), so `MSTCLIPIQA.load_head_tensors` takes it as it is.
    """

    def __init__(self, model: MSTCLIPIQA) -> None:
        super().__init__()
        config = model.config
        self.variant = config.variant
        self.fusion = GatedFeatureFusion(config.embed_dim, config.hidden_dim)
        self.head = build_head(config)
        if self.variant == "A":  # the frozen template embeddings are the base model's
            self.head.text_features.copy_(model.head.text_features)

    def forward(
        self,
        coarse: torch.Tensor,
        fine: torch.Tensor,
        states: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, D] coarse and fine embeddings (variant B also [B, L, D] states, [B, L] mask) -> scores [B]."""
        fused, _ = self.fusion(coarse, fine)
        return self.head(fused)[0] if self.variant == "A" else self.head(fused, states, mask)


def make_optimiser(scorer: FeatureScorer, recipe: Recipe) -> torch.optim.Adam:
    """Adam (L2 weight decay added to the gradient, as the reference; not AdamW) over every trainable tensor."""
    return torch.optim.Adam(scorer.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)


def recipe_step(
    scorer: FeatureScorer, optimiser: torch.optim.Optimizer, inputs: dict, mos: torch.Tensor, recipe: Recipe
) -> float:
    """One update on one batch (no clipping, no scheduler); returns the batch's loss."""
    loss = recipe_loss(scorer(**inputs), mos, recipe)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach())
