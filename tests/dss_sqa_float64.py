"""DSS-SQA's score of one pair, recomputed in float64 without any of the package's code.

What a trained weights folder and its two Hub backbones give, read with timm, transformers,
safetensors and the Hugging Face cache layout directly, and computed as the reference
(`shared/reference/dss-sqa.md`) describes it: resize-pad-square to 224 with PIL bicubic, CLIP
normalisation for both branches, the DINOv3 CLS token after the final norm, CLIP's
`pooler_output` on a bilinear 336 px copy, the 5377-style fusion in its order, each fold's
Linear-BatchNorm-SiLU-Linear-SiLU-Linear head in eval mode, the gate, the expected class, and
the mean over folds. A bug in the package's preprocessing, feature choice, fusion, heads,
gate or ensemble moves its float32 score away from this one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPVisionModel


@dataclass
class Float64Score:
    """One pair's figures, as `semantic-iqa score --json` names them."""

    score: float
    fold_scores: list[float]
    cos_sim: float
    gated: bool


def snapshot(hub_cache: Path, spec: dict) -> Path:
    """The Hugging Face cache folder of a backbone `{"repo_id", "revision"}` (a commit hash)."""
    return hub_cache / f"models--{spec['repo_id'].replace('/', '--')}" / "snapshots" / spec["revision"]


def pixels(path: Path, size: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """Longer side to `size` (PIL bicubic), centred on black, to [0, 1] and normalised: [1, 3, size, size] float64."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    nw, nh = max(1, round(w * size / max(w, h))), max(1, round(h * size / max(w, h)))
    resized = np.asarray(image.resize((nw, nh), Image.Resampling.BICUBIC), dtype=np.float64) / 255.0
    canvas = torch.zeros(3, size, size, dtype=torch.float64)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[:, top : top + nh, left : left + nw] = torch.from_numpy(resized).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(3, 1, 1)
    return ((canvas - mean_t) / std_t)[None]


def dinov3(folder: Path) -> torch.nn.Module:
    """The timm model of a repo in timm's Hub layout (`config.json` + `model.safetensors`), float64, eval."""
    config = json.loads((folder / "config.json").read_text())
    model_args = {"num_classes": config.get("num_classes", 0), **config.get("model_args", {})}
    model = timm.create_model(config["architecture"], pretrained=False, **model_args)
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=True)
    return model.double().eval()


def clip_vision(folder: Path) -> CLIPVisionModel:
    """The vision tower of a whole CLIP repo (`config.json` + `pytorch_model.bin`), float64, eval."""
    model = CLIPVisionModel(CLIPConfig.from_pretrained(folder).vision_config)
    whole = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    own = model.state_dict()
    nested = any(key.startswith("vision_model.") for key in own)  # transformers 4 kept that level, 5 does not
    tower = {
        (key if nested else key[len("vision_model.") :]): value
        for key, value in whole.items()
        if key.startswith("vision_model.")
    }
    tower = {key: value for key, value in tower.items() if key in own or not key.endswith("position_ids")}
    model.load_state_dict(tower, strict=True)
    return model.double().eval()


def head_logits(fold: dict[str, torch.Tensor], fused: torch.Tensor, eps: float) -> torch.Tensor:
    """Linear -> BatchNorm1d (running statistics) -> SiLU -> Linear -> SiLU -> Linear; dropout is off in eval."""
    t = {name: value.double() for name, value in fold.items()}
    x = fused @ t["linear1.weight"].T + t["linear1.bias"]
    x = (x - t["norm.running_mean"]) / torch.sqrt(t["norm.running_var"] + eps) * t["norm.weight"] + t["norm.bias"]
    x = F.silu(x)
    x = F.silu(x @ t["linear2.weight"].T + t["linear2.bias"])
    return x @ t["linear3.weight"].T + t["linear3.bias"]


def gate_logits(logits: torch.Tensor, cos: float, gate: dict) -> tuple[torch.Tensor, bool]:
    """The reference gate of the config's default mode: hard veto below `low`, soft shift up to `high`."""
    mode, low, high = gate["mode"], gate["low"], gate["high"]
    if mode in ("hard", "soft") and cos < low:
        vetoed = torch.full_like(logits, -gate["hard_logit"])
        vetoed[..., 0] = gate["hard_logit"]
        return vetoed, True
    if mode == "soft" and cos < high:
        delta = gate["soft_strength"] * min(max((high - cos) / (high - low), 0.0), 1.0)
        shifted = logits - delta
        shifted[..., 0] = logits[..., 0] + delta
        return shifted, True
    return logits, False


@torch.no_grad()
def float64_score(weights: Path, hub_cache: Path, ref: Path, dist: Path) -> Float64Score:
    """Score `ref`/`dist` with the weights folder `weights` and its backbones from the Hub cache `hub_cache`."""
    config = json.loads((weights / "config.json").read_text())
    pre = config["preprocess"]
    x_r, x_d = (pixels(path, pre["image_size"], pre["mean"], pre["std"]) for path in (ref, dist))
    structure = dinov3(snapshot(hub_cache, config["structure"]))
    s_r, s_d = structure.forward_features(x_r)[:, 0], structure.forward_features(x_d)[:, 0]
    clip = clip_vision(snapshot(hub_cache, config["semantic"]))
    side = clip.config.image_size

    def semantic(x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        return clip(pixel_values=up).pooler_output

    c_r, c_d = semantic(x_r), semantic(x_d)
    cos = F.cosine_similarity(c_r, c_d, dim=1)
    product = (c_r / c_r.norm(dim=1, keepdim=True)) * (c_d / c_d.norm(dim=1, keepdim=True))
    fused = torch.cat([s_r, s_d, (s_r - s_d).abs(), c_r, (c_r - c_d).abs(), product, cos[:, None]], dim=1)

    fold_scores, gated = [], False
    for entry in config["head_files"]:
        logits = head_logits(load_file(weights / entry["file"]), fused, config["head"]["norm_eps"])
        logits, gated = gate_logits(logits, float(cos), config["gate"])
        classes = torch.arange(logits.shape[-1], dtype=torch.float64)
        fold_scores.append(float((logits.softmax(dim=-1) * classes).sum()))
    return Float64Score(float(np.mean(fold_scores)), fold_scores, float(cos), gated)
