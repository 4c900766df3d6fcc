"""MST-CLIPIQA written out by hand, in float64, from the authors' tensor names: the tests' reference.

Nothing here calls the package's fusion, heads or attention: the gated fusion, the
template head (cosine, temperature, softmax, expectation) and the cross-attention (from the
packed in_proj / out_proj weights, split into heads by hand) are re-derived from
/work/shared/reference/mst-clipiqa.md. Only the CLIP towers themselves are run with
transformers, as the reference does.
"""

from __future__ import annotations

import math

import open_clip
import torch
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from semantic_iqa.metrics.mst_clipiqa.tiny import RANDOM_PRESETS

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=torch.float64).view(1, 3, 1, 1)
TEMPLATES = [f"a photo with {q} quality" for q in ("bad", "poor", "fair", "good", "perfect")]
END = 49407
TINY = RANDOM_PRESETS["tiny"]
_OPEN_CLIP = open_clip.tokenizer.SimpleTokenizer()


def open_clip_ids(prompt: str) -> torch.Tensor:
    """[1, L] ids of one prompt by open_clip's tokenizer, no padding (CLIP's own truncation to 77)."""
    row = _OPEN_CLIP([prompt], context_length=77)[0].tolist()
    return torch.tensor([row[: row.index(END) + 1]])


def _linear(x: torch.Tensor, tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return x @ tensors[name + ".weight"].double().T + tensors[name + ".bias"].double()


def image_features(towers: dict, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f_c, f_f) as float64 from the two transformers towers (run in their dtype), CLIP normalisation here."""
    normalised = ((pixels.double() - MEAN) / STD).to(next(towers["coarse"].parameters()).dtype)
    with torch.no_grad():
        return tuple(towers[r](pixel_values=normalised).image_embeds.double() for r in ("coarse", "fine"))


def fuse(f_c: torch.Tensor, f_f: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    h = torch.relu(_linear(torch.cat([f_c, f_f], dim=-1), t, "gff.W_h"))
    g = torch.sigmoid(_linear(h, t, "gff.W_g"))
    return g * _linear(f_c, t, "gff.W_c") + (1 - g) * _linear(f_f, t, "gff.W_f"), g


def template_head(z: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(score [B], probabilities [B, 5]) of variant A."""
    text = t["head.text_features"].double()  # stored normalised: used as is, as the reference does
    cosines = (z / z.norm(dim=-1, keepdim=True)) @ text.T
    logits = t["head.temperature"].double().reshape(()) * cosines
    weights = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
    probabilities = weights / weights.sum(dim=-1, keepdim=True)
    return (probabilities * torch.arange(1.0, 6.0, dtype=torch.float64)).sum(dim=-1), probabilities


def cross_attention_head(
    z: torch.Tensor, keys: list[torch.Tensor], t: dict[str, torch.Tensor], heads: int
) -> torch.Tensor:
    """Variant B's score [B]; `keys[i]` [L_i, D] are the token states image i attends to (all of them)."""
    dim = z.shape[-1]
    packed_w, packed_b = t["head.cross_attn.in_proj_weight"].double(), t["head.cross_attn.in_proj_bias"].double()
    (w_q, w_k, w_v), (b_q, b_k, b_v) = packed_w.split(dim), packed_b.split(dim)
    head_dim = dim // heads
    scores = []
    for z_i, states in zip(z, keys, strict=True):
        states = states.double()
        q = (z_i @ w_q.T + b_q).view(heads, head_dim)
        k = (states @ w_k.T + b_k).view(-1, heads, head_dim)
        v = (states @ w_v.T + b_v).view(-1, heads, head_dim)
        logits = torch.einsum("hd,lhd->hl", q, k) / math.sqrt(head_dim)
        weights = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        attended = _linear(torch.einsum("hl,lhd->hd", weights, v).reshape(dim), t, "head.cross_attn.out_proj")
        anchored = z_i + t["head.alpha"].double().reshape(()) * attended
        u = _linear(anchored, t, "head.W_1")
        gelu = 0.5 * u * (1 + torch.erf(u / math.sqrt(2.0)))
        scores.append(_linear(gelu + _linear(anchored, t, "head.W_2"), t, "head.w_o").reshape(()))
    return torch.stack(scores)


def prompt_states(text_model: torch.nn.Module, prompt: str) -> torch.Tensor:
    """[L, D] last_hidden_state of one prompt alone (batch size 1: no padding), open_clip's ids."""
    with torch.no_grad():
        return text_model(input_ids=open_clip_ids(prompt)).last_hidden_state[0]


def authors_names(model_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`MSTCLIPIQA.head_tensors()` under the authors' names (fusion. -> gff.)."""
    return {("gff." + k[len("fusion.") :] if k.startswith("fusion.") else k): v for k, v in model_tensors.items()}


def _transformers4_keys(module: torch.nn.Module, level: str) -> dict[str, torch.Tensor]:
    """A tower's state_dict as transformers 4 wrote it: every tensor under `level`, position ids saved."""
    state = {}
    for key, value in module.state_dict().items():
        top = key.split(".")[0]
        state[key if top in (level.rstrip("."), "visual_projection", "text_projection") else level + key] = (
            value.clone()
        )
    config = module.config
    if level == "vision_model.":
        positions = (config.image_size // config.patch_size) ** 2 + 1
    else:
        positions = config.max_position_embeddings
    state[level + "embeddings.position_ids"] = torch.arange(positions)[None]
    return state


def authors_checkpoint(variant: str, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.nn.Module]]:
    """A random authors'-format state_dict at the tiny sizes (transformers-4 key names) and its towers."""
    torch.manual_seed(seed)
    towers: dict[str, torch.nn.Module] = {
        role: CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY[role], initializer_factor=10.0)).eval()
        for role in ("coarse", "fine")
    }
    text_class = CLIPTextModelWithProjection if variant == "A" else CLIPTextModel
    towers["text"] = text_class(CLIPTextConfig(**TINY["text"])).eval()
    dim, hidden = TINY["embed_dim"], TINY["hidden_dim"]
    state = {}
    for prefix, role, level in (
        ("mstfe.encoder_coarse.", "coarse", "vision_model."),
        ("mstfe.encoder_fine.", "fine", "vision_model."),
        ("head.text_encoder.", "text", "text_model."),
    ):
        state.update({prefix + k: v for k, v in _transformers4_keys(towers[role], level).items()})
    for name, (rows, cols) in {
        "W_h": (hidden, 2 * dim),
        "W_g": (dim, hidden),
        "W_c": (dim, dim),
        "W_f": (dim, dim),
    }.items():
        state[f"gff.{name}.weight"] = torch.randn(rows, cols) / math.sqrt(cols) * 2
        state[f"gff.{name}.bias"] = torch.randn(rows) * 0.1
    if variant == "A":
        state["head.temperature"] = torch.tensor(40.0)
        state["head.quality_scores"] = torch.arange(1.0, 6.0)
        with torch.no_grad():
            embeds = torch.cat([towers["text"](input_ids=open_clip_ids(p)).text_embeds for p in TEMPLATES])
        state["head.text_features"] = embeds / embeds.norm(dim=-1, keepdim=True)
    else:
        state["head.alpha"] = torch.tensor(3.0)
        state["head.cross_attn.in_proj_weight"] = torch.randn(3 * dim, dim) / math.sqrt(dim)
        state["head.cross_attn.in_proj_bias"] = torch.randn(3 * dim) * 0.1
        state["head.cross_attn.out_proj.weight"] = torch.randn(dim, dim) / math.sqrt(dim) * 3
        state["head.cross_attn.out_proj.bias"] = torch.randn(dim) * 0.1
        for name, rows in (("W_1", dim), ("W_2", dim), ("w_o", 1)):
            state[f"head.{name}.weight"] = torch.randn(rows, dim) / math.sqrt(dim)
            state[f"head.{name}.bias"] = torch.randn(rows) * 0.1
    return state, towers


def reference_scores(
    tensors: dict[str, torch.Tensor],
    towers: dict,
    pixels: torch.Tensor,
    prompts: list[str] | None = None,
    heads: int = 8,
) -> torch.Tensor:
    """float64 scores [B] of the reference model given by authors'-named tensors and transformers towers."""
    z, _ = fuse(*image_features(towers, pixels), tensors)
    if prompts is None:
        return template_head(z, tensors)[0]
    return cross_attention_head(z, [prompt_states(towers["text"], p) for p in prompts], tensors, heads)
