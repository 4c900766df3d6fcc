"""DSS-SQA in pyiqa: `pyiqa.create_metric("dss_sqa")` after `import semantic_iqa`.

pyiqa calls full-reference metrics as `metric(dist, ref)`, distorted FIRST, with float
tensors in [0, 1]; this package's own calls are reference first. The arch below takes
pyiqa's order and hands the pair to DSS-SQA the right way round. pyiqa decodes image paths
itself, so path inputs through pyiqa use the differentiable torch preprocessing (within
about 1e-4 of the PIL path on photos, see docs/inputs.md).

`create_metric` keyword arguments reach the model: `weights=` (folder or Hub repo id),
`revision=`, `gate=`; `device=` is pyiqa's own and moves the model.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..metrics.dss_sqa.model import DSSSQA

ARCH_NAME = "SemanticIQADSSSQA"  # a name no pyiqa built-in uses: a clash would replace it
METRICS = {
    "dss_sqa": {"gate": "hard"},
    "dss_sqa_soft": {"gate": "soft"},  # no cliff in the score at the gate threshold
}


class SemanticIQADSSSQA(nn.Module):
    """pyiqa arch: `forward(dist, ref)` -> [B] DSS-SQA scores in [0, 5], higher = better."""

    def __init__(self, weights: str | os.PathLike | None = None, revision: str | None = None, gate: str = "hard"):
        super().__init__()
        # A model of its own (not semantic_iqa's shared cache): pyiqa moves it to its device.
        self.model = DSSSQA.from_pretrained(weights, revision=revision, device="cpu")
        self.gate = gate

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.model(ref, dist, gate=self.gate).score


def register() -> None:
    """Add the arch to pyiqa's ARCH_REGISTRY and the metrics to its DEFAULT_CONFIGS (idempotent)."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    from pyiqa.utils.registry import ARCH_REGISTRY

    if ARCH_NAME not in ARCH_REGISTRY._obj_map:
        try:
            ARCH_REGISTRY.register(SemanticIQADSSSQA, name=ARCH_NAME)
        except TypeError:  # pyiqa before 0.1.16: register(obj) only, named after the class
            ARCH_REGISTRY.register(SemanticIQADSSSQA)
    for name, options in METRICS.items():
        # In place: pyiqa's modules share this dict object, rebinding it would change nothing.
        DEFAULT_CONFIGS.setdefault(
            name,
            {
                "metric_opts": {"type": ARCH_NAME, **options},
                "metric_mode": "FR",
                "lower_better": False,
                "score_range": "0, 5",
            },
        )
