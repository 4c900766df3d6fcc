"""The metric registry: what each metric is, and `create_metric` / `list_metrics`.

An entry is plain data (`MetricInfo`); its class is imported only when the metric is
created, so listing metrics costs nothing. Every metric, built-in or third-party, is
registered through the entry-point group `semantic_iqa.metrics`: an entry point names a
`MetricInfo` (or a list of them). The built-ins are this package's own entry points (in
setup.cfg); a plug-in package declares its own. A plug-in that cannot be loaded is a
`PluginWarning`, never a crash. `register_metric` adds an entry at run time (tests, notebooks).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .contract import MetricOption, ResultField, check_options
from .errors import InvalidOptionError, MetricContractError, PluginWarning

ENTRY_POINT_GROUP = "semantic_iqa.metrics"
DISTRIBUTION = "semantic-iqa"  # this package's own entry points (the built-ins) are listed first

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
        name: registry name: lower case, digits and underscores (a command-line and pyiqa name).
        title: the method's name for people.
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
        scoring_options: the options its scoring takes (`MetricOption`: CLI flags, keywords of
            `predict`, pyiqa and the adapters, and the job fingerprint come from them).
        result_fields: what it gives per item beside `score` (`ResultField`: `score --json`,
            the result file's columns and the report's table come from them).
        tiny: "module:function" building a tiny randomly initialised model of the real classes
            (`function(seed=..., **options)`, the entry's `options` included) for tests and
            `semantic-iqa make-tiny`; `None` when the metric has none.
        loss_options: the keywords its `training_loss` takes beyond the shared ones (e.g. a
            penalty weight): keywords of the loss adapters, checked there by name and type.
        pyiqa_presets: the pyiqa metric names this entry is offered under, each with the
            scoring options it fixes (e.g. a softer setting of one option); empty = its own name, no options.
        package_default: the metric used when none is named (`default_metric`); only a
            built-in entry's counts (a plug-in cannot change what a bare command scores).
        embeddings: what the metric's image embedding is, for people (e.g. how a distance is
            read off two of them); `None` = it gives none. A metric that declares one has the
            `Metric.embed_batch` hook: `Metric.embed`, `semantic_iqa.embed` and `score-dir
            --embeddings` come from it.
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
    scoring_options: tuple[MetricOption, ...] = ()
    result_fields: tuple[ResultField, ...] = ()
    tiny: str | None = None
    loss_options: tuple[MetricOption, ...] = ()
    pyiqa_presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    package_default: bool = False
    embeddings: str | None = None

    def check_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """`given` scoring options checked against `scoring_options` (`None` values = not given).

        Raises `UnknownOptionError` for an option the metric does not have (naming the metric
        that has it, if any) and `InvalidOptionError` for a bad value.
        """
        others = {option.name: info.name for info in list_metrics() for option in info.scoring_options}
        return check_options(self.name, self.scoring_options, given, others)

    def require_embeddings(self, what: str = "embeddings") -> None:
        """`InvalidOptionError` unless this metric gives image embeddings, naming those that do (`what`: the ask)."""
        if not self.embeddings:
            others = ", ".join(info.name for info in list_metrics() if info.embeddings) or "none installed"
            raise InvalidOptionError(f"{what}: {self.name} gives no image embeddings (metrics that do: {others})")

    def option(self, name: str) -> MetricOption | None:
        """The scoring option called `name`, or `None`."""
        return next((option for option in self.scoring_options if option.name == name), None)

    @property
    def unit(self) -> str:
        """What one scored item is, for messages: "pair" (full reference) or "image"."""
        return "pair" if self.kind == "FR" else "image"

    def metric_class(self) -> type[nn.Module]:
        """Import and return the metric's class (a `semantic_iqa.metric.Metric` subclass)."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def build_tiny(self, seed: int = 0) -> nn.Module:
        """A tiny random model of this entry (its `tiny` builder, with its `options`).

        Raises `MetricContractError` when the metric declares none.
        """
        if self.tiny is None:
            raise MetricContractError(f"{self.name} has no tiny model (its registry entry names no `tiny` builder)")
        module, _, name = self.tiny.partition(":")
        return getattr(importlib.import_module(module), name)(seed=seed, **self.options)

    def check_model(self, model: object) -> None:
        """Raise `InvalidOptionError` unless `model` is of this entry's class with this entry's fixed options.

        Why: one class may serve several entries that differ by fixed options, and the entry
        decides how a score is read (e.g. one bounded, one unbounded); a model of one entry used
        under another would be scored, explained or turned into a loss on the wrong scale
        without any error.
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
_BUILT_IN: list[str] = []  # names registered by this package's own entry points


def register_metric(info: MetricInfo, *, replace: bool = False) -> MetricInfo:
    """Add `info` to the registry (a name already taken is refused unless `replace`).

    For a metric defined at run time (a notebook, a test); a package declares an entry point
    in the group `semantic_iqa.metrics` instead (docs/adding-a-metric.md).
    """
    _load_entry_points()  # the installed metrics first, so that a taken name is refused now
    if info.name in _REGISTRY and not replace:
        raise InvalidOptionError(f"a metric named {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def unregister_metric(name: str) -> None:
    """Remove a metric from the registry (for tests and plug-ins)."""
    _REGISTRY.pop(name, None)


def reload_metrics() -> list[MetricInfo]:
    """Forget every entry and read the `semantic_iqa.metrics` entry points again; returns the metrics.

    Entry points are read once, at first use; call this after a plug-in was installed into, or
    put on the `sys.path` of, a running process (a notebook, a test). Entries added with
    `register_metric` are forgotten too. A broken plug-in is a `PluginWarning` again.
    """
    global _LOADED
    _REGISTRY.clear()
    _BUILT_IN.clear()
    _LOADED = False
    importlib.invalidate_caches()  # a folder added to sys.path since may hold new distributions
    return list_metrics()


def list_metrics() -> list[MetricInfo]:
    """Every registered metric, built-in first."""
    _load_entry_points()
    return list(_REGISTRY.values())


def default_metric() -> str:
    """The metric a command or call uses when none is named: the built-in entry marked
    `package_default` (setuptools writes entry points in name order, so their order cannot say it)."""
    metrics = list_metrics()
    built_in = [info for info in metrics if info.name in _BUILT_IN]
    marked = [info for info in built_in if info.package_default]
    return (marked or built_in or metrics)[0].name


def metric_info(name: str) -> MetricInfo:
    """The registry entry called `name`; `InvalidOptionError` listing the names otherwise."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise InvalidOptionError(f"unknown metric {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_metric(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    *,
    compile: bool = False,
    **options: Any,
) -> nn.Module:
    """Load metric `name` with `weights` (folder or Hub repo id; `None` = its default) on `device`.

    Returns the metric (a `semantic_iqa.Metric`) in eval mode: call it as `metric(ref, dist)` (FR) or `metric(images)`
    (NR); `metric.info` says which way is better and the score range. Keywords go to `from_pretrained`:
    `precision` ("fp32", the exact default; "bf16"; or "auto": `semantic_iqa.resolve_precision`), the Hub
    keywords and the metric's options. `compile=True` compiles the frozen encoders (`Metric.compile_encoders`).
    """
    info = metric_info(name)
    model = info.metric_class().from_pretrained(weights, device=device, metric=info, **{**info.options, **options})
    return model.compile_encoders() if compile else model


_LOADED = False


def _load_entry_points() -> None:
    """Register every `semantic_iqa.metrics` entry point once: this package's first, then by name.

    A plug-in that fails to import, names something that is not a `MetricInfo`, or takes a name
    already registered is skipped with one `PluginWarning` line: one broken package must not
    take the command or the other metrics down with it.
    """
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    every = list(entry_points(group=ENTRY_POINT_GROUP))
    ours = [ep for ep in every if _distribution(ep) == DISTRIBUTION]
    others = sorted(
        (ep for ep in every if _distribution(ep) != DISTRIBUTION), key=lambda ep: (_distribution(ep), ep.name)
    )
    for entry in [*ours, *others]:
        where = f"{_distribution(entry)} ({entry.value})"
        try:
            loaded = entry.load()
        except Exception as exc:  # any error of a third-party import: reported, then skipped
            warnings.warn(f"metric plug-in {entry.name!r} from {where} cannot be loaded: {exc!r}", PluginWarning, 2)
            continue
        infos = loaded if isinstance(loaded, (list, tuple)) else [loaded]
        for info in infos:
            if not isinstance(info, MetricInfo):
                message = f"names a {type(info).__name__}, not a semantic_iqa.MetricInfo"
            elif info.name in _REGISTRY:
                message = f"registers {info.name!r}, a name already taken by another metric"
            else:
                _REGISTRY[info.name] = info
                if _distribution(entry) == DISTRIBUTION:
                    _BUILT_IN.append(info.name)
                continue
            warnings.warn(f"metric plug-in {entry.name!r} from {where} {message}; skipped", PluginWarning, 2)


def _distribution(entry: Any) -> str:
    """The name of the distribution that declares `entry` ("" when unknown)."""
    return entry.dist.metadata["Name"] if entry.dist is not None else ""
