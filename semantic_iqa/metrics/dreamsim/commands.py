"""DreamSim's part of the `semantic-iqa` command: `convert-dreamsim`.

Plain Python at import time (the parser is built without torch); the converter is imported
when the command runs.
"""

from __future__ import annotations

import argparse

from .branches import MODEL_TYPES


def add_commands(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert-dreamsim",
        help="convert the DreamSim authors' release (zip or its unpacked folder) into a weights folder",
        description="Convert the DreamSim authors' release, the zip as downloaded (dreamsim_ensemble_checkpoint.zip, "
        "...) or the folder it was unpacked into (their cache_dir), into a weights folder: the backbones as timm "
        "ViTs with the peft LoRA adapter merged in (W + alpha/r B A). Every file is read with "
        "torch.load(weights_only=True), which loads tensors and plain data and runs no code. The DINO backbone is "
        "the one the authors' code loads through torch.hub (dino_vitbase16_pretrain.pth): --dino-backbone, or that "
        "file under checkpoints/ in the folder, or else the teacher of the release's DINO training checkpoint "
        "(the same tensors).",
    )
    convert.add_argument("checkpoint", help="the release zip, or the folder it was unpacked into")
    convert.add_argument("--out", required=True, help="weights folder to write")
    convert.add_argument(
        "--model-type",
        choices=list(MODEL_TYPES),
        help="which model of the release (default: the one whose *_lora adapter folder it holds)",
    )
    convert.add_argument(
        "--dino-backbone", help="DINO ViT-B/16 backbone file (dino_vitbase16_pretrain.pth from torch.hub)"
    )
    convert.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out that is not a dreamsim weights folder"
    )
    convert.set_defaults(handler=convert_command)


def convert_command(args: argparse.Namespace) -> int:
    from .convert import convert_dreamsim

    out = convert_dreamsim(
        args.checkpoint,
        args.out,
        model_type=args.model_type,
        dino_backbone=args.dino_backbone,
        overwrite=args.overwrite,
    )
    print(f"converted {args.checkpoint} -> {out}")
    return 0
