"""Turn the MST-CLIPIQA authors' checkpoint into an `MSTCLIPIQA` module.

The authors save `model.state_dict()` with `torch.save` (their eval script instead reads
`{"model_state_dict": ...}`; both are accepted). Its keys:

    mstfe.encoder_coarse.*   CLIPVisionModelWithProjection (ViT-B/32): vision_model.*, visual_projection.weight
    mstfe.encoder_fine.*     CLIPVisionModelWithProjection (ViT-B/16)
    gff.W_h|W_g|W_c|W_f.weight|bias
    variant A: head.temperature, head.quality_scores ([1..5]), head.text_features (5 x 512),
               head.text_encoder.* (CLIPTextModelWithProjection: text_model.*, text_projection.weight)
    variant B: head.alpha, head.cross_attn.in_proj_weight|in_proj_bias|out_proj.weight|out_proj.bias,
               head.W_1.*, head.W_2.*, head.w_o.*, head.text_encoder.* (CLIPTextModel: text_model.*)

The towers' key names are those of transformers 4, which wrote the files; they are renamed
to the installed transformers' names (`backbones.clip_keys_for_installed`). A variant-A
model keeps the checkpoint's `text_features` and drops its text tower (only used to check
that the stored features are the tower's, recorded in the provenance). The file is read
with `torch.load(weights_only=True)`: a file that needs the full unpickler is refused.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ...backbones import CLIPTextEncoder, ProjectedCLIPEncoder, clip_keys_for_installed
from ...checkpoints import load_checkpoint
from ...config import BackboneSpec
from ...errors import ConversionError
from .config import (
    REFERENCE_BACKBONES,
    REFERENCE_COARSE_CONFIG,
    REFERENCE_FINE_CONFIG,
    REFERENCE_TEXT_CONFIG,
    MSTCLIPIQAConfig,
    check_variant,
)
from .model import MSTCLIPIQA
from .text import build_clip_tokenizer

# Authors' prefix of each tower -> our encoder role.
TOWER_PREFIXES = {"coarse": "mstfe.encoder_coarse.", "fine": "mstfe.encoder_fine.", "text": "head.text_encoder."}
# Authors' prefix of the trained parts -> ours (the layer names below the prefix are the same).
HEAD_PREFIXES = {"gff.": "fusion.", "head.": "head."}
SCALAR_TENSORS = ("head.temperature", "head.alpha")  # stored as [] or [1]; ours are []


def load_mst_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict in an authors' `.pth` file (bare or under `model_state_dict`), loaded safely.

    Raises:
        ConversionError: missing file, a file the safe loader refuses (objects other than
            tensors and plain containers, e.g. code), or no state_dict of tensors inside.
    """
    path = Path(path)
    raw = load_checkpoint(path)
    return _state_dict_in(raw, str(path))


def _state_dict_in(raw: Any, name: str) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict) and isinstance(raw.get("model_state_dict"), dict):
        raw = raw["model_state_dict"]
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ConversionError(
            f"{name}: not an MST-CLIPIQA state_dict (a dict of tensors, or one under 'model_state_dict')"
        )
    return raw


# long: the checklist of the authors' tensors (towers, head, shapes), every problem gathered into one error
def convert_mst_state_dict(
    state_dict: dict[str, Any],
    variant: str,
    *,
    coarse_config: dict[str, Any] | None = None,
    fine_config: dict[str, Any] | None = None,
    text_config: dict[str, Any] | None = None,
    tokenizer: Any | None = None,
    source: str = "state_dict",
) -> MSTCLIPIQA:
    """An `MSTCLIPIQA` (eval mode, CPU, float32) holding the authors' tensors.

    Args:
        state_dict: the authors' state_dict, bare or as `{"model_state_dict": ...}`.
        variant: "A" (templates) or "B" (prompt-anchored): which head the checkpoint has.
        coarse_config: `CLIPVisionConfig` values of the coarse tower (default: the reference ViT-B/32).
        fine_config: the same for the fine tower (default: the reference ViT-B/16).
        text_config: `CLIPTextConfig` values of the text tower (default: the reference B/32 text model).
        tokenizer: CLIP tokenizer (default: CLIP's, built from open_clip's vocabulary file,
            the same vocabulary as the Hub repo's).
        source: name of the checkpoint in error messages and provenance.

    Raises:
        ConversionError: missing or unexpected keys (all listed), tensors of the wrong shape,
            or `head.quality_scores` other than [1, 2, 3, 4, 5].
    """
    variant = check_variant(variant)
    state = _state_dict_in(state_dict, source)
    tokenizer = tokenizer if tokenizer is not None else build_clip_tokenizer()
    coarse = ProjectedCLIPEncoder.build(**(coarse_config or REFERENCE_COARSE_CONFIG))
    fine = ProjectedCLIPEncoder.build(**(fine_config or REFERENCE_FINE_CONFIG))
    text = CLIPTextEncoder.build(tokenizer, with_projection=variant == "A", **(text_config or REFERENCE_TEXT_CONFIG))
    config = MSTCLIPIQAConfig(
        variant=variant,
        coarse=BackboneSpec("transformers", REFERENCE_BACKBONES["coarse"].name, path="coarse"),
        fine=BackboneSpec("transformers", REFERENCE_BACKBONES["fine"].name, path="fine"),
        text=BackboneSpec("transformers", REFERENCE_BACKBONES["text"].name, path="text"),
        embed_dim=coarse.feature_dim,
        hidden_dim=_hidden_dim(state, source),
    )
    model = MSTCLIPIQA(config, coarse, fine, text if variant == "B" else None)

    towers = {"coarse": coarse, "fine": fine, "text": text}
    problems: list[str] = []
    claimed: set[str] = set()
    for role, encoder in towers.items():
        prefix = TOWER_PREFIXES[role]
        theirs = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        claimed.update(prefix + k for k in theirs)
        try:
            result = encoder.model.load_state_dict(clip_keys_for_installed(encoder.model, theirs), strict=False)
        except RuntimeError as exc:  # size mismatches raise even when not strict
            problems += [f"{prefix}: {line.strip()}" for line in str(exc).splitlines()[1:] if line.strip()]
            continue
        problems += [f"missing {prefix}{k}" for k in result.missing_keys]
        problems += [f"unexpected {prefix}{k}" for k in result.unexpected_keys]

    head = {}
    for key, value in state.items():
        if key in claimed:
            continue
        ours = next((HEAD_PREFIXES[p] + key[len(p) :] for p in HEAD_PREFIXES if key.startswith(p)), None)
        if ours is None:
            problems.append(f"unexpected {key}")
            continue
        head[ours] = value.reshape(()) if key in SCALAR_TENSORS and value.numel() == 1 else value
    expected = model.head_tensors()
    theirs_name = {ours: theirs for theirs, ours in HEAD_PREFIXES.items()}
    for name in sorted(set(expected) - set(head)):
        problems.append(f"missing {_authors_name(name, theirs_name)}")
    for name in sorted(set(head) - set(expected)):
        problems.append(f"unexpected {_authors_name(name, theirs_name)}")
    for name in sorted(set(head) & set(expected)):
        if head[name].shape != expected[name].shape:
            problems.append(
                f"{_authors_name(name, theirs_name)} has shape {tuple(head[name].shape)}, "
                f"expected {tuple(expected[name].shape)}"
            )
    if problems:
        raise ConversionError(
            f"{source} is not an MST-CLIPIQA variant-{variant} checkpoint of the expected sizes: "
            f"{len(problems)} problem(s): " + "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else "")
        )
    if "head.quality_scores" in head and not torch.equal(head["head.quality_scores"].float(), torch.arange(1.0, 6.0)):
        raise ConversionError(
            f"{source}: head.quality_scores must be [1, 2, 3, 4, 5], got {head['head.quality_scores'].tolist()}"
        )
    model.load_head_tensors(head)
    provenance: dict[str, Any] = {"converted_from": source, "authors_variant": variant}
    if variant == "A":
        provenance["text_features_max_deviation"] = _template_deviation(model, text)
    model.config = replace(model.config, provenance=provenance)
    return model.eval()


def convert_mst_checkpoint(path: str | os.PathLike, variant: str, **options: Any) -> MSTCLIPIQA:
    """`load_mst_checkpoint` + `convert_mst_state_dict` (options as there)."""
    return convert_mst_state_dict(load_mst_checkpoint(path), variant, source=str(path), **options)


def _hidden_dim(state: dict[str, torch.Tensor], source: str) -> int:
    weight = state.get("gff.W_h.weight")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ConversionError(f"{source} has no gff.W_h.weight matrix: not an MST-CLIPIQA checkpoint")
    return int(weight.shape[0])


def _authors_name(name: str, theirs_name: dict[str, str]) -> str:
    part, rest = name.split(".", 1)
    return theirs_name[part + "."] + rest


@torch.no_grad()
def _template_deviation(model: MSTCLIPIQA, text: CLIPTextEncoder) -> float:
    """Largest difference between the stored template features and the checkpoint's text tower's."""
    stored = model.head.text_features.clone()
    recomputed = model.compute_text_features(text).clone()
    model.head.text_features.copy_(stored)  # keep the checkpoint's own features
    return float((stored - recomputed).abs().max())
