"""The model card (README.md) of a DreamSim weights folder, built by `semantic_iqa.model_cards`."""

from __future__ import annotations

from ...model_cards import backbone_lines, json_block, render_card
from .config import DreamSimConfig

LICENCES = """\
- DreamSim's code and LoRA weights: MIT licence (Fu, Tamir et al.).
- Backbones: DINO (Apache-2.0), OpenAI CLIP (MIT), OpenCLIP (MIT) and their training data's terms.
- This implementation is semantic-iqa's own."""

CITATION = """\
Stephanie Fu, Netanel Tamir, Shobhita Sundaram, Lucy Chai, Richard Zhang, Tali Dekel, Phillip
Isola. "DreamSim: Learning New Dimensions of Human Visual Similarity using Synthetic Data."
NeurIPS 2023. Please also mention the `semantic-iqa` package."""


def model_card(config: DreamSimConfig) -> str:
    """What the folder is, how to call it, its branches, provenance, licences and citation."""
    intro = f"""\
DreamSim is a full-reference perceptual distance: the embeddings of two images by an
ensemble of ViTs fine-tuned (LoRA, merged here) on human similarity judgements, compared by
cosine. The score is in [0, 2]; **lower is better** (more similar). This folder is the
`{config.model_type}` model.

```python
import semantic_iqa
metric = semantic_iqa.create_metric("dreamsim", weights="<this repo id or folder>")
metric.predict("reference.png", "distorted.png")
metric.embed(["a.png", "b.png"])  # embeddings for retrieval
```"""
    branches = ", ".join(config.branches)
    model = (
        f"{backbone_lines(config.backbone_specs())}\n"
        f"- branches, concatenated in this order: {branches}; images resized to "
        f"{config.image_size} x {config.image_size} (bicubic, aspect not kept)"
    )
    return render_card(
        title=f"DreamSim weights ({config.model_type})",
        intro=intro,
        sections={
            "Model": model,
            "Provenance": json_block(config.provenance),
            "Licences": LICENCES,
            "Citation": CITATION,
        },
        tags=["full-reference-iqa", "perceptual-similarity", "dreamsim"],
        backbones=config.backbone_specs(),
    )
