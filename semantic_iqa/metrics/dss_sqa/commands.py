"""DSS-SQA's part of the `semantic-iqa` command: `convert-siqav3`, its training options, `make-tiny`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...config import BackboneSpec
from ...registry import MetricInfo
from .config import REFERENCE_CONFIG


def add_commands(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert-siqav3",
        help="convert the DSS-SQA authors' fold checkpoints (.pth) into a weights folder",
        description="Convert the authors' fold checkpoints, fold 0 first, into a weights folder. "
        "The files are read with torch.load(weights_only=True), which loads tensors and plain data and runs no "
        "code; checkpoints written by the authors' train script need nothing more. Their config['model'] is "
        "checked against the reference run's settings: a setting that makes another model, or an unknown one "
        "that could, is refused with its name and value. The converted default gate is the checkpoints' "
        "(off when semantic_gate_enabled is false).",
    )
    convert.add_argument("checkpoints", nargs="+", help="fold checkpoints in fold order (fold_0/.../best.pth ...)")
    convert.add_argument("--out", required=True, help="weights folder to write")
    convert.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out that is not a dss_sqa weights folder"
    )
    convert.add_argument(
        "--hub-backbones", action="store_true", help="reference the Hub backbones instead of storing the checkpoint's"
    )
    convert.add_argument(
        "--architecture-from", help="weights folder whose stored backbones give non-reference architectures"
    )
    convert.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read files the safe loader refuses by unpickling them in full: this RUNS ARBITRARY CODE stored in "
        "the file. Use it only for files you trust",
    )
    convert.set_defaults(handler=convert_command)


def convert_command(args: argparse.Namespace) -> int:
    from .convert import convert_siqav3

    out = convert_siqav3(
        args.checkpoints,
        args.out,
        hub_backbones=args.hub_backbones,
        architecture_from=args.architecture_from,
        trust_pickle=args.trust_pickle,
        overwrite=args.overwrite,
    )
    print(f"converted {len(args.checkpoints)} fold(s) -> {out}")
    return 0


def add_train_options(group: argparse._ArgumentGroup) -> list[str]:
    """DSS-SQA's own `train` options; returns their dests (refused for other metrics)."""
    group.add_argument("--scores", help="dss_sqa: score table (.xlsx or .csv) if not the one in --data")
    group.add_argument("--folds", type=int, help="dss_sqa: cross-validation folds (default 5)")
    return ["scores", "folds"]


def train(args: argparse.Namespace, info: MetricInfo) -> int:
    from .train import Recipe
    from .train_folder import train_from_folder

    defaults = Recipe()
    recipe = Recipe(
        folds=args.folds or defaults.folds,
        epochs=args.epochs or defaults.epochs,
        seed=defaults.seed if args.seed is None else args.seed,
    )
    result = train_from_folder(
        args.data,
        args.out,
        scores_file=args.scores,
        backbones_from=args.backbones_from,
        recipe=recipe,
        cache_dir=args.cache,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    columns = ("srocc", "plcc", "final", "mae", "rmse")
    print("| fold | pairs | best epoch | " + " | ".join(c.upper() for c in columns) + " |")
    print("|---" * (3 + len(columns)) + "|")
    for row in result.summary()["per_fold"]:
        figures = " | ".join(f"{row[c]:.4f}" for c in columns)
        print(f"| {row['fold']} | {row['pairs']} | {row['best_epoch']} | {figures} |")
    pooled = " | ".join(f"{result.pooled[c]:.4f}" for c in columns)
    print(f"| pooled | {sum(len(f.held_out) for f in result.folds)} | - | {pooled} |")
    print(f"weights -> {args.out}; report -> {Path(args.out) / 'training'}")
    return 0


def reference_backbones(info: MetricInfo) -> dict[str, BackboneSpec]:
    """The two pinned backbones `train` builds on."""
    return REFERENCE_CONFIG.backbone_specs()


def make_tiny(folder: str, seed: int = 0, overwrite: bool = False) -> Path:
    from .tiny import make_tiny as write_tiny

    return write_tiny(folder, seed=seed, overwrite=overwrite)
