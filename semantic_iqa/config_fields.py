"""Declarative checks of the settings in a weights folder's `config.json`, shared by every metric.

A weights folder is untrusted input (downloaded, copied, edited by hand): every setting is
checked for its JSON type and for the range its architecture allows BEFORE anything is
built from it. Every metric's config is parsed the same way: it declares its settings as
data, a `Settings(ConfigClass, {name: Field, ...})` (nested `Settings` for sections, the
shared `config.BACKBONE` for backbones; see `metrics/*/config.py`), and its `from_dict` is
`SETTINGS.load(raw)`. Each wrong value becomes one `WeightsConfigError` naming the field,
the value and what is expected; unknown or missing entries one `WeightsFormatError`.

Plain Python only: configs are parsed where torch is not imported yet.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from .errors import InvalidOptionError, MetricContractError, WeightsConfigError, WeightsFormatError

# -- bounds shared by the metrics: each is what the architectures allow, with room -------------

# Side of the square the preprocessing produces. The backbones were trained at 224-518 px
# (CLIP 224/336, DINOv2/v3 up to 518); 1024 leaves twice that. At 1024 one image is 12 MB
# as float32 and 4,096 tokens for a /16 ViT: one DSS-SQA pair of the reference architecture
# peaked 0.6 GB above the model's own 2.4 GB (CPU, measured), where `image_size: 100000`
# took 22.7 GB for one `score` call and met the kernel's OOM killer.
MAX_IMAGE_SIZE = 1024
# Pixels are in [0, 1]: a mean outside it is no normalisation of them. A std of 0 divides by
# zero (every score nan); below 0.01 pixels would be scaled beyond +-100, far outside what any
# backbone saw in training (CLIP's std is about 0.27).
MIN_STD = 0.01
# Width of a backbone feature. The widest ViTs in use (ViT-g/G, CLIP bigG) are 1280-1664 wide;
# 4096 leaves room while keeping one square linear layer of that width at 64 MB.
MAX_FEATURE_DIM = 4096
# Length of a name (backbone name, quality word); a path or Hub revision fits well below too.
MAX_NAME_LENGTH = 256


class Field:
    """One setting: `parse(value)` returns the value to use, or raises `ValueError` (caught below)."""

    expected: str = "a value"

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def parse_at(self, value: Any, name: str) -> Any:
        """`parse(value)`, a `ValueError` becoming the `WeightsConfigError` that names the setting `name`."""
        try:
            return self.parse(value)
        except WeightsConfigError:
            raise  # already names its setting (a nested one)
        except ValueError:
            raise WeightsConfigError(name, value, self.expected) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1 here


@dataclass(frozen=True)
class Integer(Field):
    """A JSON integer (not a bool, not 5.0, not "5") in [low, high]; `bound` names the constant behind `high`."""

    low: int
    high: int
    bound: str = ""

    @property
    def expected(self) -> str:
        limit = f" ({self.bound})" if self.bound else ""
        return f"an integer from {self.low} to {self.high}{limit}"

    def parse(self, value: Any) -> int:
        if not _is_int(value) or not self.low <= value <= self.high:
            raise ValueError(self.expected)
        return value


@dataclass(frozen=True)
class Number(Field):
    """A finite JSON number (int or float, not a bool) in [low, high]; `low_open`: `low` itself excluded."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    @property
    def expected(self) -> str:
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"a finite number in {left}{self.low:g}, {self.high:g}{right}"

    def parse(self, value: Any) -> float:
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise ValueError(self.expected)
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        if not (above and below):
            raise ValueError(self.expected)
        return value  # kept as written: a valid config parses exactly as it did before these checks


@dataclass(frozen=True)
class Text(Field):
    """A JSON string of `min_length`..`max_length` characters, matching `pattern` if given."""

    min_length: int = 1
    max_length: int = MAX_NAME_LENGTH
    pattern: str | None = None
    description: str | None = None

    @property
    def expected(self) -> str:
        return self.description or f"a string of {self.min_length} to {self.max_length} characters"

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or not self.min_length <= len(value) <= self.max_length:
            raise ValueError(self.expected)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValueError(self.expected)
        return value


@dataclass(frozen=True)
class Items(Field):
    """A JSON list of `min_items`..`max_items` values, each checked by `item`; returned as a tuple."""

    item: Field
    min_items: int
    max_items: int

    @property
    def expected(self) -> str:
        count = str(self.min_items) if self.min_items == self.max_items else f"{self.min_items} to {self.max_items}"
        return f"a list of {count} items, each {self.item.expected}"

    def parse(self, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)) or not self.min_items <= len(value) <= self.max_items:
            raise ValueError(self.expected)
        try:
            return tuple(self.item.parse(v) for v in value)
        except ValueError:
            raise ValueError(self.expected) from None


@dataclass(frozen=True)
class JSONObject(Field):
    """A JSON object, free-form inside (e.g. `provenance`)."""

    expected: str = "a JSON object"

    def parse(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(self.expected)
        return value


@dataclass(frozen=True)
class Nullable(Field):
    """`field`, or JSON null."""

    field: Field

    @property
    def expected(self) -> str:
        return f"null or {self.field.expected}"

    def parse(self, value: Any) -> Any:
        return None if value is None else self.field.parse(value)

    def parse_at(self, value: Any, name: str) -> Any:
        return None if value is None else self.field.parse_at(value, name)


@dataclass(frozen=True)
class RelativePath(Field):
    """A path inside the weights folder, as written: relative, '/'-separated, no '..', no drive.

    Links are checked where the files are read (`semantic_iqa.weights.check_folder_files`):
    this is the check of the name alone.
    """

    expected: str = "a relative path inside the weights folder ('/'-separated, without '..')"

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= 4 * MAX_NAME_LENGTH or "\\" in value or "\0" in value:
            raise ValueError(self.expected)
        posix, windows = PurePosixPath(value), PureWindowsPath(value)
        if posix.is_absolute() or windows.drive or windows.root or ".." in posix.parts or not posix.parts:
            raise ValueError(self.expected)
        return value


@dataclass(frozen=True)
class HubRepoId(Field):
    """A Hugging Face Hub repo id ('name' or 'org/name'), as huggingface_hub validates it."""

    expected: str = "a Hugging Face Hub repo id 'org/name'"

    def parse(self, value: Any) -> str:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        if not isinstance(value, str):
            raise ValueError(self.expected)
        try:
            validate_repo_id(value)
        except HFValidationError:
            raise ValueError(self.expected) from None
        return value


def parse_fields(spec: Mapping[str, Field], raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`raw` with every entry that `spec` names checked and parsed (lists become tuples).

    Entries `spec` does not name are passed through unchanged (the caller refuses unknown
    ones); absent entries stay absent (the caller supplies defaults or refuses them).

    Raises:
        WeightsConfigError: the first wrong value, named `prefix + name`.
    """
    parsed = dict(raw)
    for name, field in spec.items():
        if name in raw:
            parsed[name] = field.parse_at(raw[name], prefix + name)
    return parsed


class Settings(Field):
    """A JSON object of settings that becomes the dataclass `cls`, each entry checked by its `Field`.

    The one parser of every metric's `config.json`, and of its sections and backbones:

    - `fields` names every field of `cls`, no more, no fewer (checked here, when the metric's
      module is imported: a setting without a check would reach the model as written);
    - entries `cls` lacks are refused (`WeightsFormatError` naming them);
    - `strict`: every entry must be present, as in a file that `to_dict` wrote whole; otherwise
      an absent entry takes `cls`'s default (DSS-SQA's format leaves settings with defaults
      out), and an absent required one is refused in the dataclass's own words;
    - a check across settings in `cls.__post_init__` (`InvalidOptionError`) becomes a
      `WeightsFormatError`.
    """

    def __init__(self, cls: type, fields: Mapping[str, Field], strict: bool = False) -> None:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(fields) != names:
            raise MetricContractError(
                f"the settings of {cls.__name__} check {sorted(fields)}, but its fields are {sorted(names)}; "
                "give every field of the config class one Field"
            )
        self.cls, self.fields, self.strict = cls, dict(fields), strict

    @property
    def expected(self) -> str:
        return f"a JSON object of {', '.join(self.fields)}"

    def parse(self, value: Any) -> Any:
        return self.parse_at(value, "")

    def load(self, raw: Any) -> Any:
        """The config object from the settings of a `config.json` (without its envelope).

        Raises:
            WeightsConfigError: a setting of the wrong type or out of range (named, dotted).
            WeightsFormatError: unknown or missing entries, or settings that contradict each other.
        """
        return self.parse_at(raw, "")

    def parse_at(self, value: Any, name: str) -> Any:
        if not isinstance(value, dict):
            raise WeightsConfigError(name or "the settings", value, self.expected)
        where, cls_name = (f" (in {name})" if name else ""), self.cls.__name__
        unknown = sorted(set(value) - set(self.fields))
        if unknown:
            raise WeightsFormatError(f"config.json has unknown {cls_name} entries{where}: {', '.join(unknown)}")
        missing = sorted(set(self.fields) - set(value)) if self.strict else []
        if missing:  # a strict file is written whole: one absent means it was edited or cut short
            raise WeightsFormatError(f"config.json lacks the {cls_name} entries{where}: {', '.join(missing)}")
        parsed = parse_fields(self.fields, value, f"{name}." if name else "")
        try:
            return self.cls(**parsed)
        except TypeError as exc:  # a required entry absent (not strict): the dataclass names it
            raise WeightsFormatError(f"config.json lacks a required entry{where}: {exc}") from None
        except InvalidOptionError as exc:  # a check across settings, in `__post_init__`
            raise WeightsFormatError(f"config.json: {exc}") from None


# -- fields both metrics have ---------------------------------------------------------------------

IMAGE_SIZE = Integer(1, MAX_IMAGE_SIZE, "MAX_IMAGE_SIZE")
MEAN = Items(Number(0.0, 1.0), 3, 3)
STD = Items(Number(MIN_STD, 1.0), 3, 3)
FEATURE_DIM = Integer(1, MAX_FEATURE_DIM, "MAX_FEATURE_DIM")
PROVENANCE = JSONObject()
