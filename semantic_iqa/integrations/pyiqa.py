"""This package's metrics in pyiqa: `pyiqa.create_metric("dss_sqa")` / `("mst_clipiqa")` once both are imported.

`import semantic_iqa` registers them, whether pyiqa is imported before it (at once) or after
it (an import hook runs `register()` when pyiqa's import finishes; see
`semantic_iqa.integrations`). pyiqa 0.1.16 cannot discover them on its own: `create_metric`
checks `DEFAULT_CONFIGS` before anything reads entry points (docs/pyiqa.md). This module
imports torch (pyiqa already has) but not the model code: the archs import it when a metric
is created.

pyiqa calls full-reference metrics as `metric(dist, ref)`, distorted FIRST, with float
tensors in [0, 1]; this package's own calls are reference first. The DSS-SQA arch below
takes pyiqa's order and hands the pair to DSS-SQA the right way round. No-reference metrics
are called `metric(images)`. pyiqa decodes image paths itself, so path inputs through pyiqa
use the differentiable torch preprocessing (see docs/inputs.md).

Registered: `dss_sqa` and `dss_sqa_soft` (DSS-SQA with the soft gate), and every
no-reference registry entry whose only input is the image (today `mst_clipiqa`). The
prompt-anchored `mst_clipiqa_prompt` is not: it needs the generation prompt of each image,
a second input pyiqa's no-reference call convention has no place for. pyiqa's entries
(`metric_mode`, `lower_better`, `score_range`) are derived from this package's registry.

`create_metric` keyword arguments reach the model: `weights=` (folder or Hub repo id),
`revision=`, and for DSS-SQA `gate=`; `device=` is pyiqa's own and moves the model.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..registry import MetricInfo, create_metric, list_metrics, metric_info
from .frozen import HoldsFrozenMetric

# Names no pyiqa built-in uses: pyiqa's registry is keyed by class name, and a clash would
# silently replace a built-in metric.
DSS_ARCH_NAME = "SemanticIQADSSSQA"
NR_ARCH_NAME = "SemanticIQANoReference"
ARCH_NAMES = (DSS_ARCH_NAME, NR_ARCH_NAME)

# pyiqa name -> the DSS-SQA gate it runs with. Both are the registry's "dss_sqa" entry.
DSS_METRICS = {
    "dss_sqa": {"gate": "hard"},
    "dss_sqa_soft": {"gate": "soft"},  # no cliff in the score at the gate threshold
}


class SemanticIQADSSSQA(HoldsFrozenMetric, nn.Module):
    """pyiqa arch: `forward(dist, ref)` -> [B] DSS-SQA scores in [0, 5], higher = better."""

    def __init__(self, weights: str | os.PathLike | None = None, revision: str | None = None, gate: str = "hard"):
        super().__init__()
        from ..metrics.dss_sqa.config import check_gate_mode
        from ..metrics.dss_sqa.model import DSSSQA  # here, not at registration: it imports timm and transformers

        check_gate_mode(gate)  # at create_metric, not at the first call; before any weights are read
        # A model of its own (not semantic_iqa's shared cache): pyiqa moves it to its device.
        # Held frozen outside the module tree: in a user's model (`as_loss=True`) its optimizer,
        # `.train()` and checkpoints never reach it (semantic_iqa.integrations.frozen).
        self._hold_metric(DSSSQA.from_pretrained(weights, revision=revision, device="cpu"))
        self.gate = gate

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.model(ref, dist, gate=self.gate).score


class SemanticIQANoReference(HoldsFrozenMetric, nn.Module):
    """pyiqa arch for a single-input no-reference metric of the registry (e.g. MST-CLIPIQA variant A).

    Args:
        metric: registry name (set by the pyiqa config entry, e.g. "mst_clipiqa").
        weights: weights folder or Hub repo id (`None` = the metric's default).
        revision: Hub revision (tag or commit) of `weights`.

    `forward(images)`: images [B, C, H, W] float in [0, 1], C in {1, 3}, any size -> [B]
    scores on the entry's scale (mst_clipiqa: [1, 5], higher = better). Gradients are kept,
    so pyiqa's `as_loss=True` differentiates through it.
    """

    def __init__(self, metric: str, weights: str | os.PathLike | None = None, revision: str | None = None):
        super().__init__()
        self.metric = metric
        # A model of its own on the CPU (not the shared cache): pyiqa moves it to its device.
        self._hold_metric(create_metric(metric, weights, device="cpu", revision=revision))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).score


def is_pyiqa_no_reference(info: MetricInfo) -> bool:
    """True for entries pyiqa's `metric(images)` call can carry: NR with the image as the only input."""
    return info.kind == "NR" and tuple(info.inputs) == ("image",)


def pyiqa_config(info: MetricInfo, arch: str, **arch_options: Any) -> dict[str, Any]:
    """The pyiqa DEFAULT_CONFIGS entry of registry entry `info`, run by `arch` with `arch_options`.

    `score_range` is pyiqa's "low, high" string, left out when either end is unbounded
    (pyiqa reads a missing one as unknown).
    """
    config: dict[str, Any] = {
        "metric_opts": {"type": arch, **arch_options},
        "metric_mode": info.kind,
        "lower_better": not info.higher_is_better,
    }
    low, high = info.score_range
    if low is not None and high is not None:
        config["score_range"] = f"{low:g}, {high:g}"
    return config


def pyiqa_configs() -> dict[str, dict[str, Any]]:
    """pyiqa name -> DEFAULT_CONFIGS entry, for every metric this adapter offers."""
    dss = metric_info("dss_sqa")
    configs = {name: pyiqa_config(dss, DSS_ARCH_NAME, **options) for name, options in DSS_METRICS.items()}
    for info in list_metrics():
        if is_pyiqa_no_reference(info):
            configs[info.name] = pyiqa_config(info, NR_ARCH_NAME, metric=info.name)
    return configs


def register() -> None:
    """Add the archs to pyiqa's ARCH_REGISTRY and the metrics to its DEFAULT_CONFIGS (idempotent).

    Run again after `semantic_iqa.register_metric` of a plug-in NR metric to offer it too.
    Names pyiqa already has are left alone, so a built-in is never replaced.
    """
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    from pyiqa.utils.registry import ARCH_REGISTRY

    for arch_name, arch in ((DSS_ARCH_NAME, SemanticIQADSSSQA), (NR_ARCH_NAME, SemanticIQANoReference)):
        if arch_name not in ARCH_REGISTRY._obj_map:
            try:
                ARCH_REGISTRY.register(arch, name=arch_name)
            except TypeError:  # pyiqa before 0.1.16: register(obj) only, named after the class
                ARCH_REGISTRY.register(arch)
    for name, config in pyiqa_configs().items():
        # In place: pyiqa's modules share this dict object, rebinding it would change nothing.
        DEFAULT_CONFIGS.setdefault(name, config)
