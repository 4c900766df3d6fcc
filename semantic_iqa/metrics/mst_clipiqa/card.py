"""The model card (README.md) of an MST-CLIPIQA weights folder, built by `semantic_iqa.model_cards`."""

from __future__ import annotations

from ...model_cards import backbone_lines, json_block, render_card
from .config import MSTCLIPIQAConfig

LICENCES = """\
- CLIP weights: OpenAI, MIT licence.
- The method's reference code is Apache-2.0; this implementation is semantic-iqa's own.
- The trained layers are distributed under the terms stated by whoever published this folder."""

CITATION = """\
"Decoupling Semantics from Distortions: Multi-Scale Two-Stream Vision-Language Alignment for
AI-Generated Image Quality Assessment" (MST-CLIPIQA, arXiv 2606.16799, 2026); mention the
`semantic-iqa` package."""


def model_card(config: MSTCLIPIQAConfig) -> str:
    """What the folder is, how to call it, its backbones, provenance, licences and citation."""
    prompt = config.variant == "B"
    call = (
        'metric.predict(["image.png"], prompts=["the generation prompt"])'
        if prompt
        else 'metric.predict(["image.png"])'
    )
    name = "mst_clipiqa_prompt" if prompt else "mst_clipiqa"
    scale = (
        "an unbounded regression on the training labels' scale (e.g. AGIQA-3K `mos_align`)"
        if prompt
        else "the expected quality level in [1, 5]"
    )
    scores = "how well an image shows its generation prompt" if prompt else "image quality"
    intro = f"""\
MST-CLIPIQA is a no-reference quality metric for AI-generated images: two frozen CLIP image
towers at two patch sizes, a gated fusion, and a text-anchored head. Variant
{config.variant} scores {scores}; the score is {scale}. **Higher is better.**

```python
import semantic_iqa
metric = semantic_iqa.create_metric("{name}", weights="<this repo id or folder>")
{call}
```"""
    head = "8-head cross-attention to the prompt's CLIP token states" if prompt else "five quality templates"
    model = (
        f"{backbone_lines(config.backbone_specs(), with_library=False)}\n"
        f"- gated fusion {config.embed_dim} -> {config.hidden_dim} -> {config.embed_dim}; head: {head}"
    )
    return render_card(
        title=f"MST-CLIPIQA weights (variant {config.variant})",
        intro=intro,
        sections={
            "Model": model,
            "Provenance": json_block(config.provenance),
            "Licences": LICENCES,
            "Citation": CITATION,
        },
        tags=["no-reference-iqa", "ai-generated-images", "mst-clipiqa"],
        backbones=config.backbone_specs(),
    )
