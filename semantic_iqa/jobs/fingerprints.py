"""The model fingerprint of a job: sha256 of what produces its scores (metric, settings, weights, precision, options).

The precision is the one the backbones run in ("fp32" or "bf16"), never "auto": a job asked for
with "auto" fingerprints as what "auto" resolved to, so it resumes with that precision named.
Compilation (`compile`) is not part of it: it changes scores only by float rounding, as batch size does.

An option given at its default is the same job as one left out: an option spelt out at the
value of the weights' own setting fingerprints as the option not given. Which options have a
default in the weights' settings, and where, is the metric's own declaration
(`MetricOption.setting` in `MetricInfo.scoring_options`); nothing here names a metric.

Earlier versions fingerprinted an option given at its default apart from one left out;
`*_fingerprints` also return those older fingerprints, so that a result they wrote still resumes.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidOptionError
from ..registry import metric_info
from ..weights import read_folder


class Fingerprints:
    """A job's fingerprint (`first`), then, computed only when iterated to, those older versions gave it.

    Lazy because each one of a model without its weights folder hashes every tensor again.
    """

    def __init__(self, fingerprints: Iterator[str]) -> None:
        self._pending = fingerprints
        self._known: list[str] = []

    def __iter__(self) -> Iterator[str]:
        yield from self._known
        for fingerprint in self._pending:
            self._known.append(fingerprint)
            yield fingerprint

    @property
    def first(self) -> str:
        """The fingerprint this version records."""
        return next(iter(self))


def weights_fingerprint(
    folder: str | os.PathLike, *, precision: str = "fp32", options: Mapping[str, Any] | None = None
) -> str:
    """sha256 over a weights folder's metric, settings and recorded file hashes, plus precision and options.

    Cheap (reads `config.json` only) and equal to `model_fingerprint(metric, options, folder)`.
    """
    return weights_fingerprints(folder, precision=precision, options=options).first


def weights_fingerprints(
    folder: str | os.PathLike, *, precision: str = "fp32", options: Mapping[str, Any] | None = None
) -> Fingerprints:
    """`weights_fingerprint` first, then the fingerprints older versions gave the same job (see the module).

    `precision` is the resolved one: "auto" is refused (`InvalidOptionError`), since the same job
    would fingerprint apart from its resolution (`semantic_iqa.resolve_precision` gives it).
    """
    if precision == "auto":
        raise InvalidOptionError("fingerprint a job by its resolved precision, fp32 or bf16 (resolve_precision)")
    contents = read_folder(Path(folder))
    files = "".join(f"{e['file']}={e['sha256']}\n" for e in [*contents.head_files, *contents.backbone_files])

    def settings() -> dict[str, Any]:  # every setting, defaults included: `config.json` may leave some out
        config_class = metric_info(contents.metric).metric_class().config_class
        return config_class.from_dict(contents.settings).to_dict()

    return Fingerprints(
        _digest(contents.metric, contents.settings, precision, chosen, lambda digest: digest.update(files.encode()))
        for chosen in _option_spellings(contents.metric, settings, options)
    )


def model_fingerprint(
    metric: Any, options: Mapping[str, Any] | None = None, weights_folder: str | os.PathLike | None = None
) -> str:
    """sha256 identifying what produces the scores: metric, settings, weights, precision, options.

    With the folder the metric was loaded from, its recorded sha256s stand for the tensors
    (a `from_pretrained` load has checked them); otherwise every tensor's bytes are hashed.
    """
    return model_fingerprints(metric, options, weights_folder).first


def model_fingerprints(
    metric: Any, options: Mapping[str, Any] | None = None, weights_folder: str | os.PathLike | None = None
) -> Fingerprints:
    """`model_fingerprint` first, then the fingerprints older versions gave the same job (see the module)."""
    if weights_folder is not None:
        return weights_fingerprints(weights_folder, precision=metric.precision, options=options)
    settings = metric.config.to_dict()

    def tensors(digest: Any) -> None:
        for name, tensor in sorted(metric.state_dict().items()):
            flat = tensor.detach().reshape(-1).cpu().contiguous()
            digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}\n".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())

    return Fingerprints(
        _digest(metric.name, settings, metric.precision, chosen, tensors)
        for chosen in _option_spellings(metric.name, lambda: settings, options)
    )


def _digest(
    name: str, settings: Mapping[str, Any], precision: str, chosen: Mapping[str, Any], rest: Callable[[Any], None]
) -> str:
    digest = hashlib.sha256(json.dumps([name, settings, precision, chosen], sort_keys=True, default=str).encode())
    rest(digest)
    return digest.hexdigest()


def option_defaults(metric: str, settings: Callable[[], Mapping[str, Any]], options: Collection[str]) -> dict:
    """The default of each of `options` that the metric declares one for (`MetricOption.setting`).

    `settings` gives the weights' settings (a function: reading them may load the config class,
    which only an option with a declared default needs).
    """
    try:
        declared = _settings_of(metric)
    except InvalidOptionError:  # a metric not registered here: no defaults known, options as given
        return {}
    wanted = {option: path for option, path in declared.items() if option in options}
    if not wanted:
        return {}
    values = settings()
    defaults = {}
    for option, path in wanted.items():
        value: Any = values
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            defaults[option] = value
    return defaults


def _settings_of(metric: str) -> dict[str, str]:
    """Option -> the dotted path of the weights' setting that is its default, for the options that have one."""
    return {option.name: option.setting for option in metric_info(metric).scoring_options if option.setting}


def _option_spellings(
    metric: str, settings: Callable[[], Mapping[str, Any]], options: Mapping[str, Any] | None
) -> Iterator[dict[str, Any]]:
    """The options as fingerprinted (`None` and defaults left out), then as older versions may have had them.

    Older versions fingerprinted the options as given: an option at its default was either left
    out or spelt out, each way its own fingerprint.
    """
    given = {key: value for key, value in (options or {}).items() if value is not None}  # None = the default
    settings = functools.cache(settings)  # read (and parsed) once, and only when an option needs it
    at_default = option_defaults(metric, settings, given)
    chosen = {key: value for key, value in given.items() if at_default.get(key, object()) != value}
    yield chosen
    try:
        declared = _settings_of(metric)
    except InvalidOptionError:
        return
    spellable = {key: value for key, value in option_defaults(metric, settings, declared).items() if key not in chosen}
    for count in range(1, len(spellable) + 1):
        for spelt in itertools.combinations(sorted(spellable), count):
            yield {**chosen, **{key: spellable[key] for key in spelt}}
