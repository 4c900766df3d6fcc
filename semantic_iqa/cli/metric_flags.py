"""The flags each metric's declaration gives the command line, and how a command reads them back.

Every registered metric's `scoring_options` (`semantic_iqa.contract.MetricOption`) become flags
of `score`, `score-dir` and `explain` (`--NAME`); their fixed `options` (what tells apart
entries of one class) become selectors of `make-tiny`. Nothing here names a metric: the registry says
which metric has which option, and the messages name it from there.

Plain Python (no torch): the parser is built from these without loading a model.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

from ..contract import MetricOption
from ..errors import InvalidOptionError, PluginWarning, UnknownOptionError
from ..registry import MetricInfo, list_metrics

FLAGS_KEY = "metric_option_flags"  # the parser default listing the option flags it has: {option name: dest}
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def option_dest(name: str) -> str:
    """The namespace attribute of option `name` (apart from the commands' own, e.g. a positional `images`)."""
    return f"metric_option.{name}"


def declared_options() -> dict[str, list[tuple[MetricInfo, MetricOption]]]:
    """Option name -> every (metric, option) declaring it, in registry order."""
    found: dict[str, list[tuple[MetricInfo, MetricOption]]] = {}
    for info in list_metrics():
        for option in info.scoring_options:
            found.setdefault(option.name, []).append((info, option))
    return found


def owners_of(name: str) -> str:
    """The metrics that have option `name`, for messages ("a" or "a, b")."""
    return ", ".join(info.name for info, _ in declared_options().get(name, []))


def add_scoring_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per declared scoring option to a command's `parser`, after its own arguments.

    An option declared by several metrics is one flag (its type and choices when they agree,
    else text converted per metric when read). A flag the command already has (a plug-in's
    option `json`) is skipped with a `PluginWarning`: the command's own flag wins, and the
    option stays available from Python.
    """
    added = {}
    for name, declarations in declared_options().items():
        options = [option for _, option in declarations]
        flag = options[0].flag
        same_type = all(option.type is options[0].type for option in options)
        choices = None
        if same_type and all(option.choices is not None for option in options):
            choices = list(dict.fromkeys(choice for option in options for choice in option.choices))
        helps = "; ".join(f"{info.name}: {option.help or option.label or name}" for info, option in declarations)
        try:
            parser.add_argument(
                flag,
                dest=option_dest(name),
                type=_converter(options[0].type if same_type else str),
                choices=choices,
                default=None,
                help=helps.replace("%", "%%"),  # argparse formats help with %
            )
        except argparse.ArgumentError:
            message = f"option {name!r} of {owners_of(name)} has no flag: {flag} is a flag of the command itself"
            warnings.warn(message, PluginWarning, stacklevel=2)
            continue
        added[name] = option_dest(name)
    parser.set_defaults(**{FLAGS_KEY: added})


def scoring_options(info: MetricInfo, args: argparse.Namespace) -> dict[str, Any]:
    """Metric `info`'s scoring options from the parsed flags: {each declared option: value or None}.

    Raises:
        UnknownOptionError: a flag of an option `info` does not have (naming the metrics that have it).
        InvalidOptionError: a value of the wrong type or not among `info`'s choices.
    """
    given = {name: getattr(args, dest) for name, dest in getattr(args, FLAGS_KEY, {}).items()}
    declared = {option.name: option for option in info.scoring_options}
    for name, value in given.items():
        if value is not None and name not in declared:
            declarations = declared_options()[name]
            option, owners = declarations[0][1], owners_of(name)
            whose = f"a {owners} option" if len(declarations) == 1 else f"an option of {owners}"
            raise UnknownOptionError(f"{option.flag} is {whose}; {info.name} has no {option.label or name}")
    values = {name: _as_type(option, given.get(name), info) for name, option in declared.items()}
    return {**dict.fromkeys(declared), **info.check_options(values)}


def given_flags(args: argparse.Namespace) -> list[str]:
    """The option flags given on the command line, as arguments (`["--NAME", "VALUE"]`), to repeat them."""
    argv = []
    for name, dest in getattr(args, FLAGS_KEY, {}).items():
        value = getattr(args, dest)
        if value is not None:
            argv += [declared_options()[name][0][1].flag, str(value)]
    return argv


def add_entry_selectors(parser: argparse.ArgumentParser) -> list[str]:
    """One flag per key of the entries' fixed `options`, for `make-tiny`; returns the keys.

    `--KEY VALUE` picks, among the entries of the chosen metric's class, the one whose fixed
    option KEY is VALUE: the flag works without the shared code naming a metric or a key.
    """
    keys: dict[str, list[MetricInfo]] = {}
    for info in list_metrics():
        for key in info.options:
            keys.setdefault(key, []).append(info)
    added = []
    for key, infos in keys.items():
        entries = ", ".join(f"{info.name} ({info.options[key]})" for info in infos)
        try:
            parser.add_argument(
                "--" + key.replace("_", "-"),
                dest=option_dest(key),
                choices=sorted({str(info.options[key]) for info in infos}),
                help=f"make the entry of the metric's class with this {key}: {entries}".replace("%", "%%"),
            )
        except argparse.ArgumentError:
            warnings.warn(f"fixed option {key!r} of {entries} has no make-tiny flag", PluginWarning, stacklevel=2)
            continue
        added.append(key)
    return added


def select_entry(info: MetricInfo, args: argparse.Namespace, keys: list[str]) -> MetricInfo:
    """The entry of `info`'s class whose fixed options match the selectors given (`info` when none is)."""
    wanted = {key: getattr(args, option_dest(key)) for key in keys if getattr(args, option_dest(key)) is not None}
    if all(str(info.options.get(key)) == value for key, value in wanted.items()):
        return info
    for other in list_metrics():
        if other.target == info.target and all(str(other.options.get(k)) == v for k, v in wanted.items()):
            return other
    given = ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in wanted.items())
    raise InvalidOptionError(f"{given}: no entry of {info.name}'s class has it; see `semantic-iqa metrics`")


def _converter(kind: type) -> Callable[[str], Any]:
    """argparse `type` for an option of `kind` (bool from true/false, yes/no, on/off, 1/0)."""
    if kind is not bool:
        return kind

    def to_bool(text: str) -> bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise argparse.ArgumentTypeError(f"give true or false, got {text!r}")

    to_bool.__name__ = "bool"  # argparse names the type in its message
    return to_bool


def _as_type(option: MetricOption, value: Any, info: MetricInfo) -> Any:
    """`value` as `option.type`: a flag shared by metrics of different types is read as text."""
    if value is None or not isinstance(value, str) or option.type is str:
        return value
    try:
        return _converter(option.type)(value)
    except (ValueError, argparse.ArgumentTypeError):
        wanted = f"a value of type {option.type.__name__}"
        raise InvalidOptionError(f"{option.flag}: {info.name} takes {wanted}, got {value!r}") from None
