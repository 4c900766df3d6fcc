"""`semantic-iqa metrics`, `download`, `info`, `make-tiny` and `train`: the plumbing around a metric's weights.

`make-tiny` and `train` hand over to the metric's own sub-package (`commands.make_tiny`,
`commands.add_train_options` / `commands.train`), so each metric keeps its recipe.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from types import ModuleType

from ..errors import InvalidOptionError
from ..registry import ENTRY_POINT_GROUP, MetricInfo, default_metric, list_metrics, metric_info
from .arg_types import DEFAULT_WORKERS, non_negative_int, positive_int
from .metric_flags import add_entry_selectors, select_entry


# long: a table of argparse flags, one add_argument each; splitting it would only scatter the table
def add_commands(commands: argparse._SubParsersAction, metric_modules: dict[str, ModuleType]) -> None:
    names, default = [info.name for info in list_metrics()], default_metric()
    listing = commands.add_parser(
        "metrics", help="list the metrics (built-in and plug-ins): FR/NR, which way is better, score range"
    )
    listing.add_argument(
        "--verbose", "-v", action="store_true", help="also each metric's inputs, options and result fields"
    )
    listing.set_defaults(handler=metrics_command)

    download = commands.add_parser(
        "download", help="fetch a model (weights and Hub backbones) into the Hugging Face cache, for offline use"
    )
    download.add_argument("name", nargs="?", help="Hub repo id or weights folder (default: the metric's published)")
    download.add_argument("--metric", default=default, choices=names, help=f"whose default weights ({default})")
    download.add_argument("--revision", help="branch, tag or commit of the weights repo")
    download.add_argument("--force", action="store_true", help="download again even if cached (repairs damage)")
    download.add_argument(
        "--reference-backbones",
        action="store_true",
        help="fetch only the metric's reference backbones at their pinned revisions (what `train` builds on)",
    )
    download.set_defaults(handler=download_command, metric_modules=metric_modules)

    info = commands.add_parser("info", help="show what of a model is cached: revisions, sizes, hashes (offline)")
    info.add_argument("name", nargs="?", help="Hub repo id or weights folder (default: the metric's published)")
    info.add_argument("--metric", default=default, choices=names, help=f"whose default weights ({default})")
    info.add_argument("--revision", help="branch, tag or commit of the weights repo")
    info.set_defaults(handler=info_command)

    tiny = commands.add_parser("make-tiny", help="write a tiny random weights folder (real classes) for tests")
    tiny.add_argument("dir", help="folder to write")
    tiny.add_argument("--metric", default=default, choices=names, help=f"which metric (default {default})")
    tiny.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tiny.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty DIR that is not a weights folder of the metric"
    )
    selectors = add_entry_selectors(tiny)  # --KEY VALUE: the entry of the same class with that fixed option
    tiny.set_defaults(handler=make_tiny_command, selectors=selectors)

    train = commands.add_parser(
        "train", help="train a metric's heads on a labelled data set from cached backbone features"
    )
    train.add_argument("--metric", default=default, choices=names, help=f"which metric (default {default})")
    train.add_argument("--data", required=True, help="the data set folder (its layout depends on the metric)")
    train.add_argument("--out", required=True, help="weights folder to write (plus a training/ report)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out that is not a weights folder of the metric (never an input)",
    )
    train.add_argument(
        "--backbones-from",
        metavar="NAME_OR_PATH",
        help="weights folder or Hub repo whose backbones the heads are trained on (default: the metric's "
        "reference backbones from the Hub, at pinned commits)",
    )
    train.add_argument("--weights", dest="backbones_from", help=argparse.SUPPRESS)  # the 0.1 name
    train.add_argument("--epochs", type=positive_int, help="default: the metric's recipe (10 or 20)")
    train.add_argument("--seed", type=int, help="default: the metric's recipe (3407 or 42)")
    train.add_argument("--cache", help="feature cache folder (default: ~/.cache/semantic-iqa/features)")
    train.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    train.add_argument("--batch-size", type=positive_int, default=16, help="images per backbone pass (extraction)")
    train.add_argument("--workers", type=non_negative_int, default=DEFAULT_WORKERS)
    own_options = {}
    for package, module in metric_modules.items():
        if hasattr(module, "add_train_options"):  # a metric without a training recipe has none
            group = train.add_argument_group(f"{package.rpartition('.')[2]} options")
            own_options[package] = module.add_train_options(group)
    train.set_defaults(handler=train_command, metric_modules=metric_modules, own_options=own_options)


def metrics_command(args: argparse.Namespace) -> int:
    """`semantic-iqa metrics`: one line per registered metric and the package providing it."""
    providers = _providers()
    for info in list_metrics():
        ends = zip(info.score_range, ("-inf", "inf"), strict=True)
        low, high = (f"{value:g}" if value is not None else unbounded for value, unbounded in ends)
        better = "higher" if info.higher_is_better else "lower"
        source = providers.get(info.name, "registered at run time")
        print(f"{info.name:20s} {info.kind}  [{low}, {high}], {better} is better  {info.summary}  [{source}]")
        if args.verbose:
            print("\n".join(f"    {line}" for line in _details(info)))
    return 0


def _providers() -> dict[str, str]:
    """Registry name -> "distribution version" of the package whose entry point registered it.

    Loading an entry point again costs nothing (its module is imported already); one that
    cannot be loaded was reported by the registry (a `PluginWarning`) and is left out here.
    """
    registered = {id(info): info.name for info in list_metrics()}
    providers = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception:  # reported once already, by the registry
            continue
        dist = f"{entry.dist.metadata['Name']} {entry.dist.version}" if entry.dist is not None else "unknown package"
        for info in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            if id(info) in registered:  # the entry the registry kept (not one refused as a taken name)
                providers[registered[id(info)]] = dist
    return providers


def _details(info: MetricInfo) -> list[str]:
    """`metrics --verbose`: the declaration of `info`, for people."""
    lines = [f"inputs: {', '.join(info.inputs)}"]
    for option in info.scoring_options:
        choices = f" {{{', '.join(map(str, option.choices))}}}" if option.choices else ""
        lines.append(f"option {option.flag} ({option.type.__name__}{choices}): {option.help}")
    lines += [f"field {field.name} ({field.type}): {field.meaning}" for field in info.result_fields]
    lines += [f"embeddings (--embeddings FILE.parquet): {info.embeddings}"] if info.embeddings else []
    fixed = ", ".join(f"{key}={value}" for key, value in info.options.items())
    return lines + ([f"fixed options: {fixed}"] if fixed else [])


def _commands_module(args: argparse.Namespace, info: MetricInfo, what: str) -> ModuleType:
    """The metric's own `commands` module, or one line saying it has none (`what` it would give)."""
    module = args.metric_modules.get(info.target.partition(":")[0])
    if module is None:
        raise InvalidOptionError(f"{info.name} has no {what} (its package has no `commands` module)")
    return module


def download_command(args: argparse.Namespace) -> int:
    from ..offline import prefetch, prefetch_backbones

    info = metric_info(args.metric)
    if args.reference_backbones and (args.name or args.revision):
        raise InvalidOptionError("--reference-backbones takes no NAME or --revision")
    if args.reference_backbones:
        module = _commands_module(args, info, "reference backbones to fetch")
        if not hasattr(module, "reference_backbones"):
            raise InvalidOptionError(f"{info.name} has no reference backbones to fetch (--reference-backbones)")
        parts = prefetch_backbones(module.reference_backbones(info), info, force=args.force)
    else:
        parts = prefetch(args.name, args.revision, force=args.force, info=info)
    for what, folder in parts:
        print(f"{what}: {folder}")
    return 0


def info_command(args: argparse.Namespace) -> int:
    from ..offline import describe

    print("\n".join(describe(args.name, args.revision, info=metric_info(args.metric))))
    return 0


def make_tiny_command(args: argparse.Namespace) -> int:
    """`semantic-iqa make-tiny`: the entry's tiny random model (`MetricInfo.tiny`), saved as a weights folder."""
    info = select_entry(metric_info(args.metric), args, args.selectors)
    if info.tiny is None:
        raise InvalidOptionError(f"{info.name} has no tiny model (its registry entry names no `tiny` builder)")
    print(info.build_tiny(seed=args.seed).save_pretrained(args.dir, overwrite=args.overwrite))
    return 0


def train_command(args: argparse.Namespace) -> int:
    info = metric_info(args.metric)
    package = info.target.partition(":")[0]
    module = _commands_module(args, info, "training recipe for `semantic-iqa train`")
    if not hasattr(module, "train"):
        raise InvalidOptionError(f"{info.name} has no training recipe for `semantic-iqa train`")
    for other, dests in args.own_options.items():
        used = [d for d in dests if other != package and getattr(args, d) is not None]
        if used:
            flags = ", ".join("--" + d.replace("_", "-") for d in used)
            raise InvalidOptionError(f"{flags}: not an option of {info.name}'s training")
    return module.train(args, info)
