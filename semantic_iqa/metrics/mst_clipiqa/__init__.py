"""MST-CLIPIQA: no-reference quality of AI-generated images, optionally anchored to their prompt.

Two frozen CLIP image towers (ViT-B/32 "coarse", ViT-B/16 "fine") are fused by a learnt
gate; variant A scores against five quality templates (1..5, higher is better), variant B
attends to the generation prompt and regresses the training set's MOS. See
/work/shared/reference/mst-clipiqa.md for the behaviour reproduced.

- `config.py`: `MSTCLIPIQAConfig` (JSON form, reference backbones and sizes).
- `preprocess.py`: shorter side to 224 + centre crop (PIL reference path, torch path).
- `text.py`: CLIP's tokenizer from open_clip's vocabulary, prompt cleaning and truncation.
- `layers.py`: the gated fusion and the two heads (the trained layers).
- `model.py`: the `MSTCLIPIQA` metric: encoders + layers, scoring, head tensors I/O.
- `card.py`: the model card of a weights folder.
- `tiny.py`: random models of the real classes for tests and benchmarks.
- `convert.py`: the authors' checkpoint -> `MSTCLIPIQA`.
- `data.py`: AGIQA-3K's `data.csv` (and the authors' loader CSV), every problem listed at once.
- `features.py`, `recipe.py`, `train.py`, `training_report.py`: the reference recipe on cached
  frozen-encoder features, the 80/20 split, the report.
- `commands.py`: its part of the `semantic-iqa` command.

The names below are imported on first use (PEP 562), so `commands` and `config` load
without torch or the backbone libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_attributes

if TYPE_CHECKING:
    from .config import MSTCLIPIQAConfig
    from .convert import convert_mst_checkpoint, convert_mst_state_dict, load_mst_checkpoint
    from .model import MSTCLIPIQA, MSTCLIPIQAOutput
    from .preprocess import (
        load_short_side_center_cropped,
        resize_short_side_center_crop_pil,
        resize_short_side_center_crop_tensor,
    )
    from .text import build_clip_tokenizer, tokenize_prompts, write_clip_tokenizer_files
    from .tiny import build_random_mst_clipiqa

# Public name -> the sub-module that defines it; imported on first use.
_LAZY = {
    "MSTCLIPIQA": ".model",
    "MSTCLIPIQAConfig": ".config",
    "MSTCLIPIQAOutput": ".model",
    "build_clip_tokenizer": ".text",
    "build_random_mst_clipiqa": ".tiny",
    "convert_mst_checkpoint": ".convert",
    "convert_mst_state_dict": ".convert",
    "load_mst_checkpoint": ".convert",
    "load_short_side_center_cropped": ".preprocess",
    "resize_short_side_center_crop_pil": ".preprocess",
    "resize_short_side_center_crop_tensor": ".preprocess",
    "tokenize_prompts": ".text",
    "write_clip_tokenizer_files": ".text",
}

__all__ = [
    "MSTCLIPIQA",
    "MSTCLIPIQAConfig",
    "MSTCLIPIQAOutput",
    "build_clip_tokenizer",
    "build_random_mst_clipiqa",
    "convert_mst_checkpoint",
    "convert_mst_state_dict",
    "load_mst_checkpoint",
    "load_short_side_center_cropped",
    "resize_short_side_center_crop_pil",
    "resize_short_side_center_crop_tensor",
    "tokenize_prompts",
    "write_clip_tokenizer_files",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
