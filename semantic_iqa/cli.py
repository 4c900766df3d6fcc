"""The `semantic-iqa` command: score a pair, score two folders, make a tiny test model.

Errors a user can fix (bad files, options, weights) exit with status 2 and one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .api import load_model
from .errors import InvalidInputError, InvalidOptionError, SemanticIQAError
from .metrics.dss_sqa.config import GATE_MODES, REFERENCE_CONFIG
from .scoring import iterate_batches

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})
_LISTED_NAMES = 5  # names shown in a one-line warning before "..."


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (status 2) rather than usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="semantic-iqa", description="DSS-SQA semantic image quality (0-5, higher = better).")
    parser.add_argument("--version", action="version", version=f"semantic-iqa {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    model_options = _OneLineParser(add_help=False)
    model_options.add_argument(
        "--weights",
        help="weights folder or Hub repo id (default: $SEMANTIC_IQA_WEIGHTS, else the published model, "
        "which is not published yet: the error says how to get weights)",
    )
    model_options.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    model_options.add_argument("--gate", default="hard", choices=GATE_MODES, help="semantic gate mode (default hard)")
    model_options.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16"), help="backbone precision (bf16: faster on GPUs)"
    )

    score = commands.add_parser("score", parents=[model_options], help="score one pair and print it")
    score.add_argument("ref", help="reference image")
    score.add_argument("dist", help="distorted image")
    score.add_argument("--json", action="store_true", help="print score, fold_scores, fold_std, cos_sim, gated")
    score.set_defaults(handler=_score)

    score_dir = commands.add_parser(
        "score-dir", parents=[model_options], help="score every file name present in both folders"
    )
    score_dir.add_argument("ref_dir", help="folder of reference images")
    score_dir.add_argument("dist_dir", help="folder of distorted images (same file names)")
    score_dir.add_argument("--out", required=True, help="CSV file to write, one row per pair")
    score_dir.add_argument("--json", action="store_true", help="also write the results as JSON beside --out")
    score_dir.add_argument("--batch-size", type=_positive_int, default=16, help="pairs per backbone pass")
    score_dir.add_argument(
        "--workers", type=_non_negative_int, default=min(4, os.cpu_count() or 1), help="image decoding processes"
    )
    score_dir.set_defaults(handler=_score_dir)

    download = commands.add_parser(
        "download", help="fetch a model (weights and Hub backbones) into the Hugging Face cache, for offline use"
    )
    download.add_argument(
        "name", nargs="?", help="Hub repo id or weights folder (default: the published model, not published yet)"
    )
    download.add_argument("--revision", help="branch, tag or commit of the weights repo")
    download.add_argument("--force", action="store_true", help="download again even if cached (repairs damage)")
    download.add_argument(
        "--reference-backbones",
        action="store_true",
        help="fetch only the two reference backbones at their pinned revisions (what `train` builds on)",
    )
    download.set_defaults(handler=_download)

    info = commands.add_parser("info", help="show what of a model is cached: revisions, sizes, hashes (offline)")
    info.add_argument(
        "name", nargs="?", help="Hub repo id or weights folder (default: the published model, not published yet)"
    )
    info.add_argument("--revision", help="branch, tag or commit of the weights repo")
    info.set_defaults(handler=_info)

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
    convert.set_defaults(handler=_convert)

    train = commands.add_parser(
        "train", help="train the fold heads on a labelled data set (LoViF layout) from cached features"
    )
    train.add_argument("--data", required=True, help="data set folder: Ref/, Dist/ and a score table")
    train.add_argument("--scores", help="score table (.xlsx or .csv) if not the one in --data")
    train.add_argument("--out", required=True, help="weights folder to write (plus a training/ report)")
    train.add_argument(
        "--backbones-from",
        metavar="NAME_OR_PATH",
        help="weights folder or Hub repo whose backbones the heads are trained on (default: the reference "
        "backbones from the Hub, pinned: timm/vit_base_patch16_dinov3.lvd1689m, openai/clip-vit-large-patch14-336)",
    )
    train.add_argument("--weights", dest="backbones_from", help=argparse.SUPPRESS)  # the 0.1 name
    train.add_argument("--folds", type=_positive_int, default=5)
    train.add_argument("--epochs", type=_positive_int, default=10)
    train.add_argument("--seed", type=int, default=3407)
    train.add_argument("--cache", help="feature cache folder (default: ~/.cache/semantic-iqa/features)")
    train.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    train.add_argument("--batch-size", type=_positive_int, default=16, help="images per backbone pass (extraction)")
    train.add_argument("--workers", type=_non_negative_int, default=min(4, os.cpu_count() or 1))
    train.set_defaults(handler=_train)

    tiny = commands.add_parser("make-tiny", help="write a tiny random weights folder (real classes) for tests")
    tiny.add_argument("dir", help="folder to write")
    tiny.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tiny.set_defaults(handler=_make_tiny)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `semantic-iqa` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # weight-loading bars would bury the output
    try:
        return args.handler(args)
    except (SemanticIQAError, OSError) as exc:  # OSError: unwritable output, disk full, ...
        print(f"semantic-iqa: error: {exc}", file=sys.stderr)
        return 2


def _score(args: argparse.Namespace) -> int:
    model = load_model(args.weights, args.device, args.precision)
    record = model.predict(args.ref, args.dist, gate=args.gate).to_records()[0]
    print(json.dumps(record) if args.json else f"{record['score']:.4f}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from .hub import prefetch, prefetch_backbones
    from .registry import metric_info

    if args.reference_backbones and (args.name or args.revision):
        raise InvalidOptionError("--reference-backbones takes no NAME or --revision")
    if args.reference_backbones:
        parts = prefetch_backbones(REFERENCE_CONFIG.backbone_specs(), force=args.force)
    else:
        parts = prefetch(args.name, args.revision, force=args.force, info=metric_info("dss_sqa"))
    for what, folder in parts:
        print(f"{what}: {folder}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from .hub import describe
    from .registry import metric_info

    print("\n".join(describe(args.name, args.revision, info=metric_info("dss_sqa"))))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .metrics.dss_sqa.convert import convert_siqav3

    out = convert_siqav3(
        args.checkpoints,
        args.out,
        hub_backbones=args.hub_backbones,
        architecture_from=args.architecture_from,
        trust_pickle=args.trust_pickle,
    )
    print(f"converted {len(args.checkpoints)} fold(s) -> {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .metrics.dss_sqa.train import Recipe, train_from_folder

    result = train_from_folder(
        args.data,
        args.out,
        scores_file=args.scores,
        backbones_from=args.backbones_from,
        recipe=Recipe(folds=args.folds, epochs=args.epochs, seed=args.seed),
        cache_dir=args.cache,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
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


def _make_tiny(args: argparse.Namespace) -> int:
    from .metrics.dss_sqa.tiny import make_tiny

    print(make_tiny(args.dir, seed=args.seed))
    return 0


def _score_dir(args: argparse.Namespace) -> int:
    ref_dir, dist_dir, out = Path(args.ref_dir), Path(args.dist_dir), Path(args.out)
    ref_names, dist_names = _image_names(ref_dir), _image_names(dist_dir)
    names = sorted(ref_names & dist_names)
    only_ref, only_dist = sorted(ref_names - dist_names), sorted(dist_names - ref_names)
    if not names:
        raise InvalidInputError(
            f"no image file names in common between {ref_dir} ({len(ref_names)} images) "
            f"and {dist_dir} ({len(dist_names)} images); pairs are matched by identical file names"
        )
    for folder, lonely in ((ref_dir, only_ref), (dist_dir, only_dist)):
        if lonely:
            print(
                f"semantic-iqa: warning: {len(lonely)} file(s) only in {folder}, not scored: {_some(lonely)}",
                file=sys.stderr,
            )
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot write {out}: folder {out.parent} does not exist")
    if args.json and out.suffix.lower() == ".json":
        raise InvalidInputError(f"--out {out} would be overwritten by the --json output; give the CSV a .csv name")

    model = load_model(args.weights, args.device, args.precision)
    fold_columns = [f"fold_{k}" for k in range(model.config.num_folds)]
    records: list[dict[str, Any]] = []
    columns = {"ref": [ref_dir / n for n in names], "dist": [dist_dir / n for n in names], "name": names}
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["name", "score", "fold_std", "cos_sim", "gated", *fold_columns, "error"])
        writer.writeheader()
        for batch in iterate_batches(
            columns,
            ("ref", "dist"),
            model.image_transform(),
            batch_size=args.batch_size,
            workers=args.workers,
            device=model.device,
            progress=None,  # a bar on a terminal only
            unit="pair",
        ):
            rows = {index: {"name": names[index], "error": str(error)} for index, error in batch.failures}
            if len(batch):
                with torch.inference_mode():
                    scored = model.score_batch(batch.images, batch.extras, gate=args.gate).to_records()
                for index, record in zip(batch.indices, scored, strict=True):
                    rows[index] = {"name": names[index], **record, "error": ""}
            for index in sorted(rows):  # the batch's pairs in input order
                records.append(rows[index])
                writer.writerow(_csv_row(rows[index], fold_columns))
            handle.flush()  # rows already scored survive an interruption

    if args.json:
        document = {
            "weights": args.weights,
            "gate": args.gate,
            "pairs": records,
            "only_in_ref": only_ref,
            "only_in_dist": only_dist,
        }
        out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in records if r["error"]]
    scores = [r["score"] for r in records if not r["error"]]
    if scores:
        print(f"scored {len(scores)} pair(s), mean score {sum(scores) / len(scores):.4f} -> {out}")
    if failed:
        print(
            f"semantic-iqa: error: {len(failed)} of {len(records)} pair(s) could not be scored "
            f"(first: {failed[0]['error']}); see the error column of {out}",
            file=sys.stderr,
        )
        return 2
    return 0


def _csv_row(record: dict[str, Any], fold_columns: list[str]) -> dict[str, Any]:
    row = {key: record.get(key, "") for key in ("name", "score", "fold_std", "cos_sim", "gated", "error")}
    row.update(zip(fold_columns, record.get("fold_scores", [""] * len(fold_columns)), strict=True))
    return row


def _image_names(folder: Path) -> set[str]:
    if not folder.is_dir():
        raise InvalidInputError(f"not a folder: {folder}")
    return {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED_NAMES])
    return shown + (", ..." if len(names) > _LISTED_NAMES else "")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
