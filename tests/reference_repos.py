"""The two reference backbone repos in the file layouts their Hub repos really have, for tests.

- `timm/vit_base_patch16_dinov3.lvd1689m`: timm's Hub format, written by timm's own
  `save_for_hf`: `config.json` (`architecture`, `num_classes`, `num_features`,
  `pretrained_cfg`, and `model_args` where the sizes differ from the architecture's),
  `model.safetensors`, `README.md`.
- `openai/clip-vit-large-patch14-336` at its `main` commit: a whole `CLIPModel` (text and
  vision towers) in ONE `pytorch_model.bin` (no safetensors file), a `config.json` in the
  legacy layout OpenAI's repos still carry (full `text_config` / `vision_config` with the
  transformers-4.16 keys, `text_config_dict: null`, `vision_config_dict: null`),
  `preprocessor_config.json`, the tokenizer files and a TensorFlow copy (`tf_model.h5`) that
  the loader must not download.

The sizes are parameters (tiny for CI, the reference sizes for the slow rehearsal); the
weights are random. The loader must take the sizes from these configs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import timm
import torch
from transformers import CLIPConfig, CLIPModel

DINO_REPO = "timm/vit_base_patch16_dinov3.lvd1689m"
CLIP_REPO = "openai/clip-vit-large-patch14-336"

TINY_DINO = {"embed_dim": 48, "depth": 2, "num_heads": 2}
TINY_CLIP_VISION = {
    "hidden_size": 40,
    "intermediate_size": 80,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 336,
    "patch_size": 28,
}
TINY_CLIP_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_PROJECTION = 24

FULL_DINO: dict[str, Any] = {}  # the architecture's own sizes: ViT-B/16, 768-d
FULL_CLIP_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
}
FULL_CLIP_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
FULL_PROJECTION = 768

# The keys every sub-config of a transformers-4.16 `config.json` carried (OpenAI's CLIP repos).
_LEGACY_KEYS: dict[str, Any] = {
    "_name_or_path": "",
    "add_cross_attention": False,
    "architectures": None,
    "attention_dropout": 0.0,
    "bad_words_ids": None,
    "chunk_size_feed_forward": 0,
    "cross_attention_hidden_size": None,
    "decoder_start_token_id": None,
    "diversity_penalty": 0.0,
    "do_sample": False,
    "dropout": 0.0,
    "early_stopping": False,
    "encoder_no_repeat_ngram_size": 0,
    "finetuning_task": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "hidden_act": "quick_gelu",
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "is_decoder": False,
    "is_encoder_decoder": False,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "layer_norm_eps": 1e-05,
    "length_penalty": 1.0,
    "max_length": 20,
    "min_length": 0,
    "no_repeat_ngram_size": 0,
    "num_beam_groups": 1,
    "num_beams": 1,
    "num_return_sequences": 1,
    "output_attentions": False,
    "output_hidden_states": False,
    "output_scores": False,
    "prefix": None,
    "problem_type": None,
    "pruned_heads": {},
    "remove_invalid_values": False,
    "repetition_penalty": 1.0,
    "return_dict": True,
    "return_dict_in_generate": False,
    "sep_token_id": None,
    "task_specific_params": None,
    "temperature": 1.0,
    "tie_encoder_decoder": False,
    "tie_word_embeddings": True,
    "tokenizer_class": None,
    "top_k": 50,
    "top_p": 1.0,
    "torch_dtype": None,
    "torchscript": False,
    "transformers_version": "4.16.0.dev0",
    "use_bfloat16": False,
}
_PREPROCESSOR = {
    "crop_size": 336,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 336,
}


def write_dinov3_repo(folder: Path, sizes: dict[str, Any] = TINY_DINO, seed: int = 0) -> Path:
    """A random timm DINOv3 ViT in timm's Hub layout (timm's own writer)."""
    torch.manual_seed(seed)
    model = timm.create_model("vit_base_patch16_dinov3", pretrained=False, num_classes=0, **sizes)
    timm.models.save_for_hf(model, str(folder), model_args=dict(sizes) or None, safe_serialization=True)
    (folder / "README.md").write_text("---\nlicense: other\nlibrary_name: timm\n---\n# vit_base_patch16_dinov3\n")
    return folder


def openai_clip_config(vision: dict[str, Any], text: dict[str, Any], projection_dim: int) -> dict[str, Any]:
    """`config.json` in the legacy layout of OpenAI's CLIP repos, with the given sizes."""
    text_config = {
        **_LEGACY_KEYS,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "projection_dim": projection_dim,
        "vocab_size": 49408,
        **text,
    }
    vision_config = {
        **_LEGACY_KEYS,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
        "model_type": "clip_vision_model",
        "projection_dim": projection_dim,
        **vision,
    }
    return {
        "_name_or_path": CLIP_REPO,
        "architectures": ["CLIPModel"],
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clip",
        "projection_dim": projection_dim,
        "text_config": text_config,
        "text_config_dict": None,
        "transformers_version": None,
        "vision_config": vision_config,
        "vision_config_dict": None,
    }


def write_clip_repo(
    folder: Path,
    vision: dict[str, Any] = TINY_CLIP_VISION,
    text: dict[str, Any] = TINY_CLIP_TEXT,
    projection_dim: int = TINY_PROJECTION,
    seed: int = 0,
) -> Path:
    """A random whole CLIP model in the layout of openai/clip-vit-large-patch14-336 at `main`."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    # A larger init spreads the random features, so different images give different scores.
    model = CLIPModel(
        CLIPConfig(
            text_config=text, vision_config={**vision, "initializer_factor": 10.0}, projection_dim=projection_dim
        )
    )
    state = model.state_dict()
    # The 2022 checkpoint also stored the position-id buffers (persistent then).
    state["vision_model.embeddings.position_ids"] = torch.arange(
        (vision["image_size"] // vision["patch_size"]) ** 2 + 1
    )[None]
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    torch.save(state, folder / "pytorch_model.bin")
    config = openai_clip_config(vision, text, projection_dim)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "preprocessor_config.json").write_text(json.dumps(_PREPROCESSOR, indent=2) + "\n")
    # Files the real repo holds that a vision backbone never needs: they must not be fetched.
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_text("{}\n" if name.endswith(".json") else "#version: 0.2\n")
    (folder / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(4096))
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# CLIP ViT-L/14 at 336 px\n")
    return folder


UNNEEDED_CLIP_FILES = ("tf_model.h5", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json")
