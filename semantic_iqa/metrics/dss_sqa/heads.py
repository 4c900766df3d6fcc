"""All fold heads as one module with stacked parameters.

Each fold's head is Linear(D -> 256) -> BatchNorm1d(256) -> SiLU -> Dropout(0.5) ->
Linear(256 -> 128) -> SiLU -> Dropout(0.2) -> Linear(128 -> 6). The folds share their
input, so the first layer of every fold is one [B, D] x [D, F*256] product, BatchNorm over
the F*256 channels is one call, and the later layers are batched matrix products. The
maths is exactly that of F separate heads; one fold's tensors can be read and written
under the reference layer names (`fold_state_dict`, `load_fold_state_dict`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import HeadConfig

# Per-fold tensor names in weights files -> attribute holding all folds.
FOLD_TENSORS = {
    "linear1.weight": "linear1_weight",
    "linear1.bias": "linear1_bias",
    "norm.weight": "norm_weight",
    "norm.bias": "norm_bias",
    "norm.running_mean": "norm_running_mean",
    "norm.running_var": "norm_running_var",
    "norm.num_batches_tracked": "norm_num_batches_tracked",
    "linear2.weight": "linear2_weight",
    "linear2.bias": "linear2_bias",
    "linear3.weight": "linear3_weight",
    "linear3.bias": "linear3_bias",
}


class FoldHeads(nn.Module):
    """F fold heads evaluated together: fused [B, D] -> logits [B, F, C]."""

    def __init__(self, num_folds: int, in_dim: int, config: HeadConfig | None = None) -> None:
        super().__init__()
        config = config or HeadConfig()
        hidden1, hidden2 = config.hidden_dims
        self.config = config
        self.num_folds = num_folds
        stacked = lambda *shape: nn.Parameter(torch.empty(num_folds, *shape))  # noqa: E731
        self.linear1_weight = stacked(hidden1, in_dim)
        self.linear1_bias = stacked(hidden1)
        self.norm_weight = stacked(hidden1)
        self.norm_bias = stacked(hidden1)
        self.register_buffer("norm_running_mean", torch.zeros(num_folds, hidden1))
        self.register_buffer("norm_running_var", torch.ones(num_folds, hidden1))
        self.register_buffer("norm_num_batches_tracked", torch.zeros(num_folds, dtype=torch.long))
        self.linear2_weight = stacked(hidden2, hidden1)
        self.linear2_bias = stacked(hidden2)
        self.linear3_weight = stacked(config.num_classes, hidden2)
        self.linear3_bias = stacked(config.num_classes)
        self.reset_parameters()

    def extra_repr(self) -> str:
        folds, hidden1, in_dim = self.linear1_weight.shape
        return (
            f"folds={folds}, in_dim={in_dim}, hidden_dims={self.config.hidden_dims}, classes={self.config.num_classes}"
        )

    def reset_parameters(self) -> None:
        """Initialise every fold as a fresh `nn.Linear`/`nn.BatchNorm1d` stack would be."""
        for weight, bias in (
            (self.linear1_weight, self.linear1_bias),
            (self.linear2_weight, self.linear2_bias),
            (self.linear3_weight, self.linear3_bias),
        ):
            bound = 1.0 / math.sqrt(weight.shape[-1])
            for fold in range(self.num_folds):
                nn.init.kaiming_uniform_(weight.data[fold], a=math.sqrt(5))
            nn.init.uniform_(bias, -bound, bound)
        nn.init.ones_(self.norm_weight)
        nn.init.zeros_(self.norm_bias)
        self.norm_running_mean.zero_()
        self.norm_running_var.fill_(1.0)
        self.norm_num_batches_tracked.zero_()

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """fused: [B, D] -> logits [B, F, C]. BatchNorm uses batch statistics in training mode."""
        folds, batch = self.num_folds, fused.shape[0]
        hidden = F.linear(fused, self.linear1_weight.flatten(0, 1), self.linear1_bias.flatten())
        if self.training:
            self.norm_num_batches_tracked.add_(1)
        # The flattened views share storage, so training updates the stacked running stats.
        hidden = F.batch_norm(
            hidden,
            self.norm_running_mean.view(-1),
            self.norm_running_var.view(-1),
            self.norm_weight.flatten(),
            self.norm_bias.flatten(),
            training=self.training,
            momentum=self.config.norm_momentum,
            eps=self.config.norm_eps,
        )
        hidden = F.dropout(F.silu(hidden), self.config.dropout[0], self.training)
        hidden = hidden.view(batch, folds, -1).transpose(0, 1)  # [F, B, H1]
        hidden = torch.baddbmm(self.linear2_bias.unsqueeze(1), hidden, self.linear2_weight.transpose(1, 2))
        hidden = F.dropout(F.silu(hidden), self.config.dropout[1], self.training)
        logits = torch.baddbmm(self.linear3_bias.unsqueeze(1), hidden, self.linear3_weight.transpose(1, 2))
        return logits.transpose(0, 1)  # [B, F, C]

    def fold_state_dict(self, fold: int) -> dict[str, torch.Tensor]:
        """One fold's tensors under the reference layer names (contiguous copies)."""
        return {name: getattr(self, attr)[fold].detach().clone().contiguous() for name, attr in FOLD_TENSORS.items()}

    def load_fold_state_dict(self, fold: int, tensors: dict[str, torch.Tensor]) -> None:
        """Copy one fold's tensors in; names and shapes must match exactly (else `KeyError`/`ValueError`)."""
        missing = sorted(set(FOLD_TENSORS) - set(tensors))
        unexpected = sorted(set(tensors) - set(FOLD_TENSORS))
        if missing or unexpected:
            raise KeyError(f"fold {fold}: missing tensors {missing}, unexpected tensors {unexpected}")
        with torch.no_grad():
            for name, attr in FOLD_TENSORS.items():
                target = getattr(self, attr)[fold]
                if tuple(tensors[name].shape) != tuple(target.shape):
                    raise ValueError(
                        f"fold {fold}: tensor {name} has shape {tuple(tensors[name].shape)}, "
                        f"expected {tuple(target.shape)}"
                    )
                target.copy_(tensors[name])


def expected_score(logits: torch.Tensor) -> torch.Tensor:
    """Expected class under softmax: [..., C] logits -> [...] scores in [0, C - 1], higher = better."""
    classes = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return logits.softmax(dim=-1) @ classes
