"""The argument parser: shared options, the plumbing's commands, and each metric's own ones."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import warnings
from types import ModuleType

from .._version import __version__
from ..errors import PluginWarning
from ..registry import default_metric, list_metrics

# re-exported: the option types moved to arg_types (no parser <-> command-module circle)
from .arg_types import DEFAULT_WORKERS, non_negative_int, positive_int  # noqa: F401


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (status 2) rather than usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def metric_command_modules() -> dict[str, ModuleType]:
    """Each metric sub-package's `commands` module (its converter, training options), by package."""
    modules, seen = {}, set()
    for info in list_metrics():
        package = info.target.partition(":")[0]
        name = f"{package}.commands"
        if package in seen:
            continue
        seen.add(package)
        try:
            # Only a package has a `commands` module. Asking for `<module>.commands` of a plain
            # module would import that module (a plug-in's model code, torch with it) to find out.
            target = importlib.util.find_spec(package)
            spec = importlib.util.find_spec(name) if target and target.submodule_search_locations else None
        except (ImportError, ValueError):  # the target's package is missing: creating the metric will say so
            continue
        try:  # a plug-in's broken commands module must not take the command down (a warning, as for its entry)
            if spec is not None:
                modules[package] = importlib.import_module(name)
        except Exception as exc:  # any error of a third-party import
            warnings.warn(f"{name} (commands of {info.name}) cannot be loaded: {exc!r}", PluginWarning, 2)
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
    default = default_metric()
    model_options.add_argument(
        "--metric", default=default, choices=names, help=f"which metric (default {default}; `semantic-iqa metrics`)"
    )
    variables = ", ".join(f"{info.name}: ${info.weights_env_var}" for info in list_metrics() if info.weights_env_var)
    model_options.add_argument(
        "--weights",
        help="weights folder or Hub repo id (default: the metric's environment variable, then its published "
        f"weights; the error says how to get weights when there are none; {variables})".replace("%", "%%"),
    )
    model_options.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    model_options.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "auto"),
        help="backbone precision: fp32 (default: exact, the same scores on every machine), bf16 (faster on GPUs and "
        "on CPUs with native bf16, scores within about 0.05), or auto (bf16 where the device does it natively: "
        "CUDA GPUs of compute capability 8.0+, CPUs with AMX or AVX512-BF16; else fp32)",
    )
    # Each metric's own scoring options (its `MetricOption`s) are added by each command after its own
    # arguments (`metric_flags.add_scoring_flags`), so that a plug-in's option can never shadow them.

    scoring.add_commands(commands, model_options)
    explaining.add_commands(commands, model_options)
    metric_modules = metric_command_modules()
    models.add_commands(commands, metric_modules)
    for module in metric_modules.values():
        if hasattr(module, "add_commands"):  # a metric's own commands (its converters) are optional
            module.add_commands(commands)
    return parser
