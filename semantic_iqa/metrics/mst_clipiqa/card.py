"""The model card (README.md) of an MST-CLIPIQA weights folder."""

from __future__ import annotations

import json

from .config import MSTCLIPIQAConfig


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
    backbones = "\n".join(
        f"- {role}: `{spec.name}`, "
        + (f"stored in `{spec.path}/`" if spec.path else f"from the Hub repo `{spec.repo_id}` @ `{spec.revision}`")
        for role, spec in config.backbone_specs().items()
    )
    provenance = json.dumps(config.provenance, indent=2, sort_keys=True)
    return f"""---
library_name: semantic-iqa
tags: [image-quality-assessment, no-reference-iqa, ai-generated-images, mst-clipiqa]
license: other
---

# MST-CLIPIQA weights (variant {config.variant})

MST-CLIPIQA is a no-reference quality metric for AI-generated images: two frozen CLIP image
towers at two patch sizes, a gated fusion, and a text-anchored head. Variant
{config.variant} scores {"how well an image shows its generation prompt" if prompt else "image quality"};
the score is {scale}. **Higher is better.**

```python
import semantic_iqa
metric = semantic_iqa.create_metric("{name}", weights="<this repo id or folder>")
{call}
```

## Model

{backbones}
- gated fusion {config.embed_dim} -> {config.hidden_dim} -> {config.embed_dim}; head: {
        "8-head cross-attention to the prompt's CLIP token states" if prompt else "five quality templates"
    }

## Provenance

```json
{provenance}
```

## Licences

- CLIP weights: OpenAI, MIT licence.
- The method's reference code is Apache-2.0; this implementation is semantic-iqa's own.
- The trained layers are distributed under the terms stated by whoever published this folder.

## Citation

"Decoupling Semantics from Distortions: Multi-Scale Two-Stream Vision-Language Alignment for
AI-Generated Image Quality Assessment" (MST-CLIPIQA, arXiv 2606.16799, 2026); mention the
`semantic-iqa` package.
"""
