"""The metric registry: what each metric is, and `create_metric` / `list_metrics`.

An entry is plain data (`MetricInfo`); its class is imported only when the metric is
created, so listing metrics costs nothing. The built-in entries are the lines in
`semantic_iqa.metrics`; a new metric is one sub-package there plus one line.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .errors import InvalidOptionError

if TYPE_CHECKING:  # torch only in annotations: the registry (and `semantic-iqa --help`) must not import it
    import torch
    from torch import nn


class HubWeights(NamedTuple):
    """A weights repo on the Hugging Face Hub, pinned to a revision (tag or commit)."""

    repo_id: str
    revision: str


@dataclass(frozen=True)
class MetricInfo:
    """What a registered metric is.

    Attributes:
        name: registry name, e.g. "dss_sqa".
        title: the method's name for people, e.g. "DSS-SQA".
        kind: "FR" (full reference: `metric(ref, dist)`) or "NR" (no reference: `metric(images)`).
        higher_is_better: which way is better (True for every built-in metric).
        score_range: (low, high) of the score; `None` for an unbounded end.
        summary: one line for people.
        target: "module:Class" of the `Metric` subclass, imported on first use.
        options: fixed keyword options this entry passes on (e.g. a variant).
        default_weights: the pinned published weights, or `None` when none exist.
        weights_env_var: environment variable that overrides the default weights.
        no_weights_help: what to do when no weights are given and none can be had.
        inputs: names of the per-item inputs, in call order.
        option_settings: scoring options whose default is one of the weights' settings: option
            -> dotted path of that setting in the config's `to_dict()` (e.g. `{"gate": "gate.mode"}`).
            A job given such an option at its default is the same job as one without it.
    """

    name: str
    title: str
    kind: Literal["FR", "NR"]
    higher_is_better: bool
    score_range: tuple[float | None, float | None]
    summary: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)
    default_weights: HubWeights | None = None
    weights_env_var: str | None = None
    no_weights_help: str = ""
    inputs: tuple[str, ...] = ("ref", "dist")
    option_settings: dict[str, str] = field(default_factory=dict)

    def metric_class(self) -> type[nn.Module]:
        """Import and return the metric's class (a `semantic_iqa.metric.Metric` subclass)."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def check_model(self, model: object) -> None:
        """Raise `InvalidOptionError` unless `model` is of this entry's class with this entry's fixed options.

        Why: both MST-CLIPIQA variants are one class, and the entry decides how a score is read
        (variant A in [1, 5], B unbounded); a variant-B model under the variant-A entry would be
        scored, explained or turned into a loss on the wrong scale without any error.
        """
        expected = self.metric_class()
        if not isinstance(model, expected):
            raise InvalidOptionError(f"{self.name!r} needs a {expected.__name__} model, got {type(model).__name__}")
        for option, value in self.options.items():
            actual = getattr(model, option, value)  # an option the model does not expose cannot be checked
            if actual != value:
                raise InvalidOptionError(
                    f"this model has {option}={actual!r} but {self.name!r} means {option}={value!r}; "
                    "pass the metric= name that matches the model"
                )

    def default_source(self) -> tuple[str | None, str | None]:
        """(name, revision) used when no weights are given: the env var, else the default; may be (None, None)."""
        if self.weights_env_var and os.environ.get(self.weights_env_var):
            return os.environ[self.weights_env_var], None
        if self.default_weights is not None:
            return self.default_weights.repo_id, self.default_weights.revision
        return None, None


_REGISTRY: dict[str, MetricInfo] = {}


def register_metric(info: MetricInfo, *, replace: bool = False) -> MetricInfo:
    """Add `info` to the registry (a name already taken is refused unless `replace`)."""
    if info.name in _REGISTRY and not replace:
        raise InvalidOptionError(f"a metric named {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def unregister_metric(name: str) -> None:
    """Remove a metric from the registry (for tests and plug-ins)."""
    _REGISTRY.pop(name, None)


def list_metrics() -> list[MetricInfo]:
    """Every registered metric, built-in first."""
    _load_builtins()
    return list(_REGISTRY.values())


def metric_info(name: str) -> MetricInfo:
    """The registry entry called `name`; `InvalidOptionError` listing the names otherwise."""
    _load_builtins()
    if name not in _REGISTRY:
        raise InvalidOptionError(f"unknown metric {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_metric(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> nn.Module:
    """Load metric `name` with `weights` (folder or Hub repo id; `None` = its default) on `device`.

    Returns the metric (a `semantic_iqa.Metric`) in eval mode: call it as `metric(ref, dist)` (FR) or `metric(images)`
    (NR); `metric.info` says which way is better and the score range.
    """
    info = metric_info(name)
    return info.metric_class().from_pretrained(weights, device=device, metric=info, **{**info.options, **options})


def _load_builtins() -> None:
    from . import metrics  # noqa: F401  (registers the built-in entries on import)
