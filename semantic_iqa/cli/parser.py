"""The argument parser: shared options, the plumbing's commands, and each metric's own ones."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from types import ModuleType

from .._version import __version__
from ..registry import list_metrics

# re-exported: the option types moved to arg_types (no parser <-> command-module circle)
from .arg_types import DEFAULT_WORKERS, non_negative_int, positive_int  # noqa: F401


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (status 2) rather than usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def metric_command_modules() -> dict[str, ModuleType]:
    """Each metric sub-package's `commands` module (its converter, training options), by package."""
    modules = {}
    for info in list_metrics():
        package = info.target.partition(":")[0]
        name = f"{package}.commands"
        if package not in modules and importlib.util.find_spec(name) is not None:
            modules[package] = importlib.import_module(name)
    return modules


def build_parser() -> argparse.ArgumentParser:
    from . import explaining, models, scoring  # the command modules

    names = [info.name for info in list_metrics()]
    parser = OneLineParser(
        prog="semantic-iqa",
        description="Semantic image-quality metrics: " + ", ".join(names) + " (`semantic-iqa metrics` lists them).",
    )
    parser.add_argument("--version", action="version", version=f"semantic-iqa {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    model_options = OneLineParser(add_help=False)
    model_options.add_argument(
        "--metric", default="dss_sqa", choices=names, help="which metric (default dss_sqa; `semantic-iqa metrics`)"
    )
    model_options.add_argument(
        "--weights",
        help="weights folder or Hub repo id (default: the metric's published weights, none published yet: "
        "the error says how to get weights; for dss_sqa also $SEMANTIC_IQA_WEIGHTS)",
    )
    model_options.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    model_options.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16"), help="backbone precision (bf16: faster on GPUs)"
    )
    model_options.add_argument("--gate", choices=("hard", "soft", "off"), help="dss_sqa: semantic gate (default hard)")

    scoring.add_commands(commands, model_options)
    explaining.add_commands(commands, model_options)
    metric_modules = metric_command_modules()
    models.add_commands(commands, metric_modules)
    for module in metric_modules.values():
        module.add_commands(commands)
    return parser
