"""The model card (README.md) of a DSS-SQA weights folder."""

from __future__ import annotations

import json

from .config import DSSSQAConfig


def model_card(config: DSSSQAConfig) -> str:
    """The weights folder's README.md: what it is, where it came from, licences, citation.

    Training data and cross-validated figures come from `config.provenance` (keys
    `training_data` and `cross_validation`, a mapping of figure name to value).
    """
    provenance = config.provenance
    figures = provenance.get("cross_validation") or {}
    figure_rows = "\n".join(f"| {name} | {value} |" for name, value in figures.items())
    backbones = "\n".join(
        f"- {role}: `{spec.name}` ({spec.library}), "
        + (f"stored in `{spec.path}/`" if spec.path else f"from the Hub repo `{spec.repo_id}` @ `{spec.revision}`")
        for role, spec in (("structure", config.structure), ("semantic", config.semantic))
    )
    other = {k: v for k, v in provenance.items() if k not in ("training_data", "cross_validation")}
    return f"""---
library_name: semantic-iqa
tags: [image-quality-assessment, full-reference-iqa, semantic-quality, dss-sqa]
license: other
---

# DSS-SQA weights

DSS-SQA is a full-reference semantic image-quality metric: it scores whether a distorted
image still means the same as its reference, from 0 to 5, **higher is better**.

```python
import semantic_iqa
semantic_iqa.score("ref.png", "dist.png", weights="<this repo id or folder>")
```

## Model

{backbones}
- {config.num_folds} cross-validated heads (Linear {config.fusion_dim} -> {config.head.hidden_dims[0]} ->
  {config.head.hidden_dims[1]} -> {config.head.num_classes}); score = mean over folds of the expected class
- semantic gate: default `{config.gate.mode}`, thresholds {config.gate.low} / {config.gate.high}

## Training data

{provenance.get("training_data", "Not recorded in this folder's provenance.")}

## Cross-validated figures

{"| figure | value |" + chr(10) + "|---|---|" + chr(10) + figure_rows if figure_rows else "Not recorded."}

## Provenance

```json
{json.dumps(other, indent=2, sort_keys=True)}
```

## Licences

- The structure backbone is Meta's DINOv3; its weights are under the DINOv3 License, whose
  terms apply to any copy of them (including a copy stored in this folder).
- The semantic backbone is OpenAI's CLIP ViT-L/14-336 (MIT licence).
- The heads are distributed under the terms stated by whoever published this folder.

## Citation

If you use DSS-SQA, cite the DSS-SQA method ("Decoupling Structure and Semantics for
Semantic Quality Assessment", LoViF 2026 challenge on human-oriented semantic image
quality) and the challenge report, and mention the `semantic-iqa` package.
"""
