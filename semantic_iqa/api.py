"""One-call scoring with any registered metric: `score(*images, metric=...)` and `score_details(...)`.

    semantic_iqa.score(ref, dist)                            # the default metric (full reference)
    semantic_iqa.score(ref, dist, metric=NAME, OPTION=...)   # any metric, with its scoring options
    semantic_iqa.score(images, metric=NAME)                  # a no-reference metric
    semantic_iqa.score(image, metric=NAME, prompt="...")     # one whose inputs include a prompt
    semantic_iqa.embed(images, metric=NAME)                  # [N, D] embeddings (metrics declaring them)

The images are given in the order of the metric's declared inputs (`MetricInfo.inputs`), or
by their names (`score(ref=..., dist=...)`). Options are the entry's `scoring_options`, checked
before any model is loaded. Models are loaded once per (metric, weights, device, precision as
resolved, compile) and kept for later calls. Nothing here knows a metric: the registry entry says everything.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .contract import check_record
from .devices import resolve_device
from .errors import InvalidInputError
from .inputs import Images, is_single_image
from .metric import Metric
from .precision import check_compile, resolve_precision
from .registry import MetricInfo, create_metric, default_metric, metric_info

_MODELS: dict[tuple[Any, ...], Metric] = {}
_MODELS_LOCK = threading.Lock()


class ItemScore:
    """One item's score and every figure its metric declares (`score_details` gives these).

    Frozen, compared by value. Attribute access to `score` and to each of the metric's declared
    result fields (`metric_info(name).result_fields`); a list of floats is a tuple; a declared
    optional figure the item does not have is `None`. `metric` is the registry name.
    """

    __slots__ = ("metric", "_fields")

    def __init__(self, metric: str | None = None, /, **fields: Any) -> None:
        object.__setattr__(self, "metric", metric)
        frozen = {name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()}
        object.__setattr__(self, "_fields", frozen)

    def __getattr__(self, name: str) -> Any:  # only for names that are not slots: the fields
        if not name.startswith("_") and name in self._fields:
            return self._fields[name]
        raise AttributeError(f"{type(self).__name__} of {self.metric} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by its fields (the frozen __setattr__ blocks the default)
        return _item_score, (self.metric, self._fields)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._fields})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ItemScore):
            return NotImplemented
        return (self.metric, self._fields) == (other.metric, other._fields)

    def __hash__(self) -> int:
        return hash((self.metric, tuple(self._fields.items())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._fields.items())
        return f"{type(self).__name__}({self.metric!r}, {fields})"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (`score` first, then the declared fields in their order)."""
        return dict(self._fields)


def _item_score(metric: str | None, fields: Mapping[str, Any]) -> ItemScore:
    return ItemScore(metric, **fields)


PairScore = ItemScore  # the 0.1 name, kept: `score_details(ref, dist)` gives one item's record per pair


def load_metric(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    compile: bool = False,
) -> Metric:
    """Metric `name` with `weights` (folder or Hub repo id; `None` = its default) on `device`, cached.

    The same arguments give the same object, so repeated `score` calls load once; "auto" and the
    precision it resolves to (`resolve_precision`) share one model. `compile=True`: the frozen
    encoders are compiled (`Metric.compile_encoders`), a model of its own.
    """
    target = resolve_device(device)
    resolved = resolve_precision(precision, target)
    if compile:
        check_compile(None, target)  # before minutes of loading, not after
    source = (str(weights), None) if weights is not None else metric_info(name).default_source()
    key = (name, *source, str(target), resolved, bool(compile))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = create_metric(name, weights, device=target, precision=resolved, compile=compile)
        return _MODELS[key]


def load_model(
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    compile: bool = False,
) -> Metric:
    """The default metric's model (`default_metric()`) for `weights` (`None` = its default) on `device`, cached."""
    return load_metric(default_metric(), weights, device, precision, compile)


def clear_model_cache() -> None:
    """Forget the models `load_metric` / `load_model` kept (frees their memory once unreferenced)."""
    with _MODELS_LOCK:
        _MODELS.clear()


def score(
    *images: Images,
    metric: str | None = None,
    prompt: str | Sequence[str] | None = None,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    progress: bool = False,
    precision: str = "fp32",
    compile: bool = False,
    **options: Any,
) -> float | torch.Tensor:
    """The score of one item, or of each item of a batch, by metric `metric`.

    Args:
        images: one argument per image input of the metric (`score(ref, dist)` for a full-
            reference metric, `score(image)` for a no-reference one), in the order of
            `metric_info(metric).inputs`, or by name (`ref=`, `dist=`, `image=`). Each is a path,
            PIL image, uint8 HxWxC array, float tensor in [0, 1] (CxHxW or BxCxHxW), or a list.
        metric: registry name (`semantic_iqa.list_metrics()`); `None` = `default_metric()`.
        prompt: the text of each item, for metrics whose inputs include "prompt".
        weights: weights folder or Hub repo id; `None` = the metric's environment variable or
            its published weights.
        device: "auto" (default: CUDA if available), "cpu", "cuda", "cuda:N".
        batch_size: items per backbone pass.
        progress: show a progress bar.
        precision: backbone precision: "fp32" (default: exact, the same on every machine), "bf16"
            (faster on GPUs and on CPUs with native bf16), or "auto" (bf16 where `device` does it
            natively, else fp32: `resolve_precision`).
        compile: `torch.compile` the frozen encoders (`Metric.compile_encoders`): the first call
            compiles (and a new batch size again); on the CPU it needs a C++ compiler.
        options: the metric's scoring options (`metric_info(metric).scoring_options`: see
            `semantic-iqa metrics --verbose`); one left out takes the weights' own setting.

    Returns:
        A float for one item; a 1-D float32 CPU tensor for a batch or list. No gradients: use
        the metric's `differentiable_score` (or the loss adapters) for those.

    Raises:
        UnknownOptionError: an option the metric does not have (naming the metric that has it).
        InvalidOptionError: a bad option value, unknown metric, device or precision.
        InvalidInputError: images that do not fit the metric's inputs, or unreadable images.
    """
    info, columns, options = _prepare(images, metric, prompt, options)
    output = load_metric(info.name, weights, device, precision, compile).predict(
        *columns, prompts=prompt, batch_size=batch_size, progress=progress, **options
    )
    scores = output.score.float().cpu()
    return float(scores[0]) if is_single_image(columns[0]) else scores


def score_details(
    *images: Images,
    metric: str | None = None,
    prompt: str | Sequence[str] | None = None,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    progress: bool = False,
    precision: str = "fp32",
    compile: bool = False,
    **options: Any,
) -> ItemScore | list[ItemScore]:
    """Like `score`, with every figure the metric declares (`metric_info(metric).result_fields`).

    Returns an `ItemScore` for one item, a list of them for a batch or list.

    Raises:
        MetricContractError: the metric's records differ from its declared result fields.
    """
    info, columns, options = _prepare(images, metric, prompt, options)
    output = load_metric(info.name, weights, device, precision, compile).predict(
        *columns, prompts=prompt, batch_size=batch_size, progress=progress, **options
    )
    names = ["score", *(field.name for field in info.result_fields)]
    details = []
    for record in output.to_records():
        check_record(info.name, info.result_fields, record)
        details.append(ItemScore(info.name, **{name: record.get(name) for name in names}))
    return details[0] if is_single_image(columns[0]) else details


def embed(
    images: Images,
    *,
    metric: str | None = None,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    progress: bool = False,
    precision: str = "fp32",
    compile: bool = False,
) -> torch.Tensor:
    """Embeddings [N, D] (float32, CPU) of images (one or a list, of any accepted kind) by `metric`.

    For metrics whose entry declares `embeddings` (`metric_info(metric).embeddings` says what a
    row is); `InvalidOptionError` for another, before any model is loaded. Arguments as for `score`.
    """
    info = metric_info(metric if metric is not None else default_metric())
    info.require_embeddings("embed")
    model = load_metric(info.name, weights, device, precision, compile)
    return model.embed(images, batch_size=batch_size, progress=progress)


def _prepare(
    images: tuple[Images, ...], metric: str | None, prompt: Any, options: dict[str, Any]
) -> tuple[MetricInfo, tuple[Images, ...], dict[str, Any]]:
    """The entry, the images in its input order and its checked options, before any model loads."""
    info = metric_info(metric if metric is not None else default_metric())
    roles = [role for role in info.inputs if role != "prompt"]
    named = {role: options.pop(role) for role in roles if role in options}
    if named:  # images by name: every one, and none in order as well
        if images or len(named) != len(roles):
            raise InvalidInputError(f"{info.name} takes {', '.join(roles)}: give all of them in order, or all by name")
        images = tuple(named[role] for role in roles)
    if len(images) != len(roles):
        wanted = f"{len(roles)} image input(s) ({', '.join(roles)})"
        raise InvalidInputError(f"{info.name} takes {wanted}, got {len(images)}")
    if prompt is not None and "prompt" not in info.inputs:
        raise InvalidInputError(f"{info.name} takes no prompt (its inputs: {', '.join(info.inputs)})")
    return info, images, {name: value for name, value in info.check_options(options).items() if value is not None}
