"""This package's metrics in pyiqa: `pyiqa.create_metric(name)` for every registry entry pyiqa can call.

`import semantic_iqa` registers them, whether pyiqa is imported before it (at once) or after
it (an import hook runs `register()` when pyiqa's import finishes; see
`semantic_iqa.integrations`). pyiqa 0.1.16 cannot discover them on its own: `create_metric`
checks `DEFAULT_CONFIGS` before anything reads entry points (docs/pyiqa.md). This module
imports torch (pyiqa already has) but not the model code: the archs import it when a metric
is created.

Which entries: full-reference ones whose inputs are the reference and the distorted image
(pyiqa calls them `metric(dist, ref)`, distorted FIRST; the arch hands the pair to the metric
by role), and no-reference ones whose only input is the image (`metric(images)`). An entry
with a prompt input is skipped: pyiqa's call conventions have no place for a per-image text.
Each is offered under its registry name, or under the names of its `pyiqa_presets` (each
with the scoring options it fixes). pyiqa's `metric_mode`, `lower_better` and `score_range`
are the entry's kind, direction and range. pyiqa decodes image paths itself, so path inputs
through pyiqa use the metric's differentiable torch preprocessing (see docs/inputs.md).

`create_metric` keyword arguments reach the arch: `weights=` (folder or Hub repo id),
`revision=`, and the entry's scoring options (checked before any weights are read); `device=`
is pyiqa's own and moves the model.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..registry import MetricInfo, create_metric, list_metrics, metric_info
from .frozen import HoldsFrozenMetric, scoring_options

# Names no pyiqa built-in uses: pyiqa's registry is keyed by class name, and a clash would
# silently replace a built-in metric.
FR_ARCH_NAME = "SemanticIQAFullReference"
NR_ARCH_NAME = "SemanticIQANoReference"
ARCH_NAMES = (FR_ARCH_NAME, NR_ARCH_NAME)


class _RegistryArch(HoldsFrozenMetric, nn.Module):
    """A pyiqa arch over registry entry `metric`: its model, frozen and held outside the module tree.

    Args:
        metric: registry name (set by the pyiqa config entry).
        weights: weights folder or Hub repo id (`None` = the metric's default).
        revision: Hub revision (tag or commit) of `weights`.
        **options: the entry's scoring options (a preset's, overridden by `create_metric`'s
            keywords); readable as attributes of the arch (`metric.net.<option>`).

    Gradients are kept, so pyiqa's `as_loss=True` differentiates through it (into the scored
    images; references are constants).
    """

    def __init__(
        self, metric: str, weights: str | os.PathLike | None = None, revision: str | None = None, **options: Any
    ) -> None:
        super().__init__()
        info = metric_info(metric)
        # At create_metric, not at the first call; before any weights are read.
        self.options = scoring_options(info, options)
        self.metric = metric
        self.info = info
        # A model of its own on the CPU (not the shared cache): pyiqa moves it to its device.
        # Held frozen outside the module tree: in a user's model (`as_loss=True`) its optimizer,
        # `.train()` and checkpoints never reach it (semantic_iqa.integrations.frozen).
        self._hold_metric(create_metric(metric, weights, device="cpu", revision=revision))

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:  # a scoring option: `metric.net.<option>`
            options = self.__dict__.get("options") or {}
            if name in options:
                return options[name]
            raise


class SemanticIQAFullReference(_RegistryArch):
    """pyiqa arch for a full-reference entry: `forward(dist, ref)` -> [B] scores on the entry's scale.

    `dist` and `ref`: [B, C, H, W] float in [0, 1], C in {1, 3}, sizes may differ.
    """

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        # The reference detached: a constant, as documented, whichever metric scores it.
        constant = ref.detach() if isinstance(ref, torch.Tensor) else ref
        return self.model.differentiable_score({"ref": constant, "dist": dist}, {}, **self.options)


class SemanticIQANoReference(_RegistryArch):
    """pyiqa arch for a no-reference entry whose only input is the image.

    `forward(images)`: images [B, C, H, W] float in [0, 1], C in {1, 3}, any size -> [B]
    scores on the entry's scale.
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.differentiable_score({"image": images}, {}, **self.options)


def pyiqa_arch(info: MetricInfo) -> str | None:
    """The arch that runs entry `info` in pyiqa, or `None` when pyiqa's calls cannot carry its inputs."""
    if info.kind == "FR" and sorted(info.inputs) == ["dist", "ref"]:
        return FR_ARCH_NAME
    if info.kind == "NR" and tuple(info.inputs) == ("image",):
        return NR_ARCH_NAME
    return None


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
    """pyiqa name -> DEFAULT_CONFIGS entry, for every registry entry pyiqa can call (`pyiqa_arch`)."""
    configs = {}
    for info in list_metrics():
        arch = pyiqa_arch(info)
        if arch is None:
            continue
        for name, options in (info.pyiqa_presets or {info.name: {}}).items():
            configs[name] = pyiqa_config(info, arch, metric=info.name, **options)
    return configs


def register() -> None:
    """Add the archs to pyiqa's ARCH_REGISTRY and the metrics to its DEFAULT_CONFIGS (idempotent).

    Run again after `semantic_iqa.register_metric` of a metric at run time to offer it too.
    Names pyiqa already has are left alone, so a built-in is never replaced.
    """
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    from pyiqa.utils.registry import ARCH_REGISTRY

    for arch_name, arch in ((FR_ARCH_NAME, SemanticIQAFullReference), (NR_ARCH_NAME, SemanticIQANoReference)):
        if arch_name not in ARCH_REGISTRY._obj_map:
            try:
                ARCH_REGISTRY.register(arch, name=arch_name)
            except TypeError:  # pyiqa before 0.1.16: register(obj) only, named after the class
                ARCH_REGISTRY.register(arch)
    for name, config in pyiqa_configs().items():
        # In place: pyiqa's modules share this dict object, rebinding it would change nothing.
        DEFAULT_CONFIGS.setdefault(name, config)
