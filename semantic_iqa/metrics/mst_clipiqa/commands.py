"""MST-CLIPIQA's part of the `semantic-iqa` command: `convert-mst-clipiqa`, training options, `make-tiny`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...config import BackboneSpec
from ...errors import ConversionError
from ...registry import MetricInfo
from .config import REFERENCE_BACKBONES, VARIANTS


def add_commands(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert-mst-clipiqa",
        help="convert an MST-CLIPIQA authors'-format state_dict (.pth) into a weights folder",
        description="Convert `best_model_variant_{A|B}.pth` (a bare state_dict, or one under "
        "'model_state_dict') into a weights folder. The file is read with torch.load(weights_only=True), "
        "which loads tensors and runs no code. Every key is checked: missing, unexpected or mis-shaped "
        "tensors are refused, all listed.",
    )
    convert.add_argument("checkpoint", help="the authors' .pth file")
    convert.add_argument("--variant", required=True, choices=VARIANTS, help="A: quality templates; B: prompt")
    convert.add_argument("--out", required=True, help="weights folder to write")
    convert.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out that is no mst_clipiqa weights folder"
    )
    convert.add_argument(
        "--hub-backbones",
        action="store_true",
        help="reference the pinned Hub CLIP repos instead of storing the checkpoint's encoders (they were frozen)",
    )
    convert.add_argument(
        "--architecture-from",
        help="MST-CLIPIQA weights folder whose stored encoders give non-reference tower sizes (tests, tiny models)",
    )
    convert.set_defaults(handler=convert_command)


def convert_command(args: argparse.Namespace) -> int:
    from ...outputs import check_output_folder
    from .convert import convert_mst_checkpoint
    from .model import MSTCLIPIQA

    inputs = [args.checkpoint, args.architecture_from]  # checked before the checkpoint is read
    check_output_folder(args.out, metric=MSTCLIPIQA.name, overwrite=args.overwrite, inputs=inputs)
    model = convert_mst_checkpoint(args.checkpoint, args.variant, **_architecture(args.architecture_from))
    if args.hub_backbones:
        model.config = replace(model.config, **REFERENCE_BACKBONES)
    out = model.save_pretrained(args.out, overwrite=args.overwrite)
    print(f"converted variant {args.variant} -> {out}")
    return 0


def _architecture(folder: str | None) -> dict[str, Any]:
    """Tower sizes (and tokenizer) from a weights folder's stored encoders, for the converter."""
    if folder is None:
        return {}
    from ...backbones import load_clip_tokenizer

    root = Path(folder)
    options: dict[str, Any] = {}
    for role in ("coarse", "fine", "text"):
        path = root / role / "config.json"
        if path.is_file():
            options[f"{role}_config"] = _own_sizes(json.loads(path.read_text()))
    if "coarse_config" not in options or "fine_config" not in options:
        raise ConversionError(f"--architecture-from {folder}: needs stored coarse/ and fine/ encoders")
    if (root / "text").is_dir():
        options["tokenizer"] = load_clip_tokenizer(root / "text")
    return options


def _own_sizes(config: dict[str, Any]) -> dict[str, Any]:
    # A saved transformers config also carries bookkeeping keys that are not model settings.
    return {
        k: v
        for k, v in config.items()
        if k not in ("architectures", "model_type", "transformers_version", "dtype", "torch_dtype")
    }


def add_train_options(group: argparse._ArgumentGroup) -> list[str]:
    """MST-CLIPIQA's own `train` options; returns their dests (refused for other metrics)."""
    group.add_argument(
        "--labels", choices=("mos_quality", "mos_align"), help="mst_clipiqa: the AGIQA-3K label column to train on"
    )
    group.add_argument(
        "--variant", dest="mst_variant", choices=VARIANTS, help="mst_clipiqa: A or B (default: by metric)"
    )
    return ["labels", "mst_variant"]


def train(args: argparse.Namespace, info: MetricInfo) -> int:
    from .train import Recipe, train_from_folder

    defaults = Recipe()
    recipe = replace(
        defaults,
        epochs=args.epochs or defaults.epochs,
        seed=defaults.seed if args.seed is None else args.seed,
    )
    variant = args.mst_variant or info.options.get("variant")
    labels = args.labels or ("mos_align" if variant == "B" else "mos_quality")
    result = train_from_folder(
        args.data,
        args.out,
        labels=labels,
        variant=variant,
        backbones_from=args.backbones_from,
        recipe=recipe,
        cache_dir=args.cache,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    print(json.dumps(result.summary(), indent=2))
    print(f"weights -> {args.out}; report -> {Path(args.out) / 'training'}")
    return 0


def reference_backbones(info: MetricInfo) -> dict[str, BackboneSpec]:
    """The pinned CLIP repos training builds on (the text tower is patch32's, one repo with coarse)."""
    return dict(REFERENCE_BACKBONES)


def make_tiny(folder: str, seed: int = 0, variant: str = "A", overwrite: bool = False) -> Path:
    from .tiny import build_random_mst_clipiqa

    return build_random_mst_clipiqa(variant, "tiny", seed=seed).save_pretrained(folder, overwrite=overwrite)
