"""What a metric declares as data: its scoring options and its result fields.

A metric's registry entry (`semantic_iqa.registry.MetricInfo`) carries these beside its
inputs, direction and range. The shared layers read them and never name a metric:

- each `MetricOption` becomes a `semantic-iqa` flag (`--pooling`), a keyword of `predict`, of
  pyiqa's `create_metric` and of the adapters, and a part of a job's fingerprint;
- each `ResultField` becomes a `score --json` key, a result-file column (a list of floats
  is spread over numbered columns) and, where marked, a column of the HTML report.

Plain Python (no torch): the command line builds its parser from these without loading a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidOptionError, MetricContractError

FieldType = Literal["float", "int", "bool", "str", "floats"]
_SCALARS: dict[str, tuple[type, ...]] = {"float": (float, int), "int": (int,), "bool": (bool,), "str": (str,)}


@dataclass(frozen=True)
class MetricOption:
    """One scoring option of a metric (a keyword of its `score_batch`).

    Attributes:
        name: the Python keyword (`pooling`); on the command line `--pooling` (underscores as dashes).
        type: str, int, float or bool; values given on the command line are converted to it.
        choices: the allowed values, or `None` for any value of `type`.
        default: the value used when the option is not given; `None` = the weights' own
            setting at `setting` (or the metric's built-in behaviour).
        help: one line for people (the flag's help, the docs).
        setting: dotted path of the weights' setting that is this option's default, in the
            config's `to_dict()` (e.g. "head.pooling"): a job given the option at that value is
            the same job as one without it (the fingerprint leaves it out).
        label: what the value is called in messages (default: `name`), e.g. "pooling mode".
        for_gradients: the value this option takes wherever gradients are needed (explanation
            maps by integrated gradients), because some values have none: e.g. a mode that
            turns a hard threshold off, as a hard threshold is flat. `None` = the value given
            serves gradients too.
    """

    name: str
    type: type = str
    choices: tuple[Any, ...] | None = None
    default: Any = None
    help: str = ""
    setting: str | None = None
    label: str = ""
    for_gradients: Any = None

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. "--pooling"."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, metric: str) -> Any:
        """`value` if it is valid for this option (`None` = not given); `InvalidOptionError` otherwise."""
        if value is None:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # `weight=0` means 0.0, as Python's own float arguments do
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise InvalidOptionError(
                f"{metric}: option {self.name} must be {self.type.__name__}, got {type(value).__name__} {value!r}"
            )
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise InvalidOptionError(f"{metric}: unknown {self.label or self.name} {value!r}; choose one of {allowed}")
        return value

    def default_in(self, settings: Mapping[str, Any]) -> Any:
        """The value used when the option is not given: `default`, else the weights' own setting
        at `setting` in `settings` (a config's `to_dict()`); `None` when neither says."""
        if self.default is not None or self.setting is None:
            return self.default
        value: Any = settings
        for key in self.setting.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        return value


@dataclass(frozen=True)
class ResultField:
    """One figure a metric gives per item (beside `score`, which every metric gives).

    Attributes:
        name: the key in a record (`to_records()`), `score --json` and the result file.
        type: "float", "int", "bool", "str", or "floats" (a list of floats, spread over the
            numbered columns `<column_prefix>_0`, `_1`, ... of a result file).
        meaning: one line for people: what it is, its range, which way is better.
        column_prefix: for "floats": the numbered columns' prefix (default: `name`).
        in_report: shown beside each item in the HTML report's tables.
        flag: for "bool" fields: the report lists the items where it is True in a section of
            this title (e.g. "Images judged too dark"); `None` = no such section.
        optional: a record may leave it out (e.g. a figure only one variant of the metric gives).
        label: a short name for people, in captions such as an explanation's title (default: `name`).
        states: for "bool" fields: how the report writes False and True after the label,
            e.g. ("ok", "FLAGGED") for "check ok" / "check FLAGGED" (default: "no" / "yes").
    """

    name: str
    type: FieldType
    meaning: str
    column_prefix: str | None = None
    in_report: bool = False
    flag: str | None = None
    optional: bool = False
    label: str = ""
    states: tuple[str, str] = ("no", "yes")

    @property
    def prefix(self) -> str:
        """The numbered columns' prefix of a "floats" field."""
        return self.column_prefix or self.name


SCORE_FIELD = ResultField("score", "float", "the metric's score (see the metric's range and direction)")


def check_options(
    metric: str, declared: Sequence[MetricOption], given: Mapping[str, Any], others: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`given` checked against `declared`: each value valid, no unknown name. Returns the given options.

    Args:
        metric: the metric's registry name, for messages.
        declared: the metric's options.
        given: option name -> value (`None` = not given).
        others: option name -> the metric that has it, for a clearer message when an option
            of another metric is given.

    Raises:
        UnknownOptionError: an option the metric does not have.
        InvalidOptionError: a value of the wrong type or not among the choices.
    """
    from .errors import UnknownOptionError

    by_name = {option.name: option for option in declared}
    checked = {}
    for name, value in given.items():
        if name not in by_name:
            if value is None:  # an option "not given" that the metric does not have is no error
                continue
            owner = (others or {}).get(name)
            whose = f"; {name} is an option of {owner}" if owner else ""
            known = ", ".join(by_name) or "none"
            raise UnknownOptionError(f"{metric} has no option {name!r} (its options: {known}){whose}")
        checked[name] = by_name[name].check(value, metric)
    return checked


def check_record(metric: str, fields: Sequence[ResultField], record: Mapping[str, Any]) -> None:
    """`MetricContractError` unless `record` has `score` and each declared field, of its declared type.

    Why: a plug-in whose records differ from its declaration would write result files whose
    columns and report disagree with what it says; this is checked on the first batch.
    """
    expected = {field.name: field for field in (SCORE_FIELD, *fields)}
    undeclared = sorted(set(record) - set(expected))
    if undeclared:
        raise MetricContractError(f"{metric}: its records have undeclared field(s) {', '.join(undeclared)}")
    for name, field in expected.items():
        if name not in record:
            if field.optional:
                continue
            raise MetricContractError(f"{metric}: its records lack the declared field {name!r} ({field.type})")
        value = record[name]
        if field.type == "floats":
            ok = isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)
        elif field.type == "float":
            ok = _is_number(value)
        else:
            ok = isinstance(value, _SCALARS[field.type]) and (field.type == "bool" or not isinstance(value, bool))
        if not ok:
            raise MetricContractError(
                f"{metric}: field {name!r} is declared {field.type} but a record has {type(value).__name__} {value!r}"
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, (float, int)) and not isinstance(value, bool)  # nan allowed: a score may be
