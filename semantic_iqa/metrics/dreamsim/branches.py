"""DreamSim's branches: which ViT each one is, which feature it gives, and how its input is normalised.

Read from the authors' code (`dreamsim` 0.2.1, `model.py`, `feature_extraction/*.py`):

- DINO ViT-B/16: the CLS token of block 11 (the last block) BEFORE the final LayerNorm
  (the authors hook the block's output), ImageNet mean/std, GELU, LayerNorm eps 1e-6.
- CLIP (OpenAI) and OpenCLIP ViTs: converted by the authors into DINO's layout, with
  `pos_drop` replaced by a LayerNorm (CLIP's `ln_pre`), every LayerNorm at eps 1e-5, and the
  feature `norm(x)[:, 0] @ proj` (512-d). OpenAI CLIP uses QuickGELU, OpenCLIP GELU. Both
  normalise with OpenAI CLIP's mean/std (the OpenCLIP models are the LAION-400M ones, trained so).

Each branch is a timm `VisionTransformer` of the architecture below: timm's layout IS DINO's
(`blocks.N.attn.qkv`, `blocks.N.mlp.fc1`, ...), CLIP's `ln_pre` is timm's `norm_pre`, and the
projection is timm's `head` (weight = proj^T, bias 0). The DINO branch is built with
`final_norm=False`, so the model's own output is the pre-norm CLS token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...config import CLIP_MEAN, CLIP_STD
from ...errors import InvalidOptionError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Branch:
    """One backbone of DreamSim.

    name: the authors' model_type ("dino_vitb16", "clip_vitb32", ...).
    role: "dino", "clip" or "open_clip": the weights folder's backbone entry of this branch.
    architecture: the timm architecture; `model_args` are the arguments that make its output
        the branch's feature (and the reference sizes).
    feature_dim: width of the feature.
    """

    name: str
    role: str
    architecture: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    model_args: dict[str, Any] = field(default_factory=dict)


_DINO_ARGS = {"final_norm": False, "num_classes": 0, "global_pool": "token"}
_CLIP_ARGS = {"num_classes": 512, "global_pool": "token"}

BRANCHES: dict[str, Branch] = {
    "dino_vitb16": Branch("dino_vitb16", "dino", "vit_base_patch16_224", 768, IMAGENET_MEAN, IMAGENET_STD, _DINO_ARGS),
    "clip_vitb16": Branch(
        "clip_vitb16", "clip", "vit_base_patch16_clip_quickgelu_224", 512, CLIP_MEAN, CLIP_STD, _CLIP_ARGS
    ),
    "clip_vitb32": Branch(
        "clip_vitb32", "clip", "vit_base_patch32_clip_quickgelu_224", 512, CLIP_MEAN, CLIP_STD, _CLIP_ARGS
    ),
    "open_clip_vitb16": Branch(
        "open_clip_vitb16", "open_clip", "vit_base_patch16_clip_224", 512, CLIP_MEAN, CLIP_STD, _CLIP_ARGS
    ),
    "open_clip_vitb32": Branch(
        "open_clip_vitb32", "open_clip", "vit_base_patch32_clip_224", 512, CLIP_MEAN, CLIP_STD, _CLIP_ARGS
    ),
}

# The models the authors published weights for (`dreamsim(dreamsim_type=...)`), by their
# name: the branches, concatenated in this order, and the LoRA adapter folder of the release.
MODEL_TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    "ensemble": (("dino_vitb16", "clip_vitb16", "open_clip_vitb16"), "ensemble_lora"),
    "dino_vitb16": (("dino_vitb16",), "dino_vitb16_single_lora"),
    "clip_vitb32": (("clip_vitb32",), "clip_vitb32_single_lora"),
    "open_clip_vitb32": (("open_clip_vitb32",), "open_clip_vitb32_single_lora"),
}


def branch(name: str) -> Branch:
    """The branch called `name`; `InvalidOptionError` naming the known ones otherwise."""
    if name not in BRANCHES:
        raise InvalidOptionError(f"unknown DreamSim branch {name!r}; known: {', '.join(BRANCHES)}")
    return BRANCHES[name]


def model_type_branches(model_type: str) -> tuple[Branch, ...]:
    """The branches of one of the authors' published models ("ensemble", "dino_vitb16", ...)."""
    if model_type not in MODEL_TYPES:
        raise InvalidOptionError(
            f"unknown DreamSim model type {model_type!r}; the published ones are {', '.join(MODEL_TYPES)}"
        )
    return tuple(BRANCHES[name] for name in MODEL_TYPES[model_type][0])
