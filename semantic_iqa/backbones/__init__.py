"""The two frozen encoders and where their weights come from.

- Structure: a timm DINOv3 ViT; the feature is the CLS token of `forward_features`
  (after the final norm).
- Semantic: a transformers `CLIPVisionModel`; the feature is `pooler_output` (the
  post-layernorm CLS token, before the visual projection). Its input is the same
  normalised square, bilinearly resized to the CLIP model's native size.

Both load from a local folder in their library's own format (timm: `config.json` +
`model.safetensors`; transformers: `save_pretrained` output, or a CLIP Hub repo). A Hub
backbone is first fetched into the Hugging Face cache by `huggingface_hub.snapshot_download`,
pinned to a revision, and then loaded from that folder, so caching, offline mode and
revisions are the hub library's. Weights are read from safetensors, or, for a transformers
repo that has none at its revision (the reference CLIP repo), from `pytorch_model.bin`
through transformers' loader with `weights_only=True`, which refuses code in the pickle.

MST-CLIPIQA's towers are at the end of the module: `ProjectedCLIPEncoder`
(`CLIPVisionModelWithProjection`, projected CLS) and `CLIPTextEncoder` (a CLIP text model
and its tokenizer, whose files travel with the model's).
"""

from .base import (
    CLIP_CONTEXT_LENGTH,
    CLIP_TOKENIZER_FILES,
    FrozenEncoder,
    ImageEncoder,
    clip_keys_for_installed,
    load_transformers_checked,
    weights_file,
)
from .text import CLIPTextEncoder, load_clip_tokenizer
from .vision import ProjectedCLIPEncoder, SemanticEncoder, StructureEncoder, TimmOutputEncoder

__all__ = [
    "CLIP_CONTEXT_LENGTH",
    "CLIP_TOKENIZER_FILES",
    "CLIPTextEncoder",
    "FrozenEncoder",
    "ImageEncoder",
    "ProjectedCLIPEncoder",
    "SemanticEncoder",
    "StructureEncoder",
    "TimmOutputEncoder",
    "clip_keys_for_installed",
    "load_clip_tokenizer",
    "load_transformers_checked",
    "weights_file",
]
