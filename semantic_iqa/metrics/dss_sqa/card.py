"""The model card (README.md) of a DSS-SQA weights folder, built by `semantic_iqa.model_cards`."""

from __future__ import annotations

from ...model_cards import backbone_lines, json_block, render_card
from .config import DSSSQAConfig

LICENCES = """\
- The structure backbone is Meta's DINOv3; its weights are under the DINOv3 License, whose
  terms apply to any copy of them (including a copy stored in this folder).
- The semantic backbone is OpenAI's CLIP ViT-L/14-336 (MIT licence).
- The heads are distributed under the terms stated by whoever published this folder."""

CITATION = """\
If you use DSS-SQA, cite the DSS-SQA method ("Decoupling Structure and Semantics for
Semantic Quality Assessment", LoViF 2026 challenge on human-oriented semantic image
quality) and the challenge report, and mention the `semantic-iqa` package."""

INTRO = """\
DSS-SQA is a full-reference semantic image-quality metric: it scores whether a distorted
image still means the same as its reference, from 0 to 5, **higher is better**.

```python
import semantic_iqa
semantic_iqa.score("ref.png", "dist.png", weights="<this repo id or folder>")
```"""


def model_card(config: DSSSQAConfig) -> str:
    """The weights folder's README.md: what it is, where it came from, licences, citation.

    Training data and cross-validated figures come from `config.provenance` (keys
    `training_data` and `cross_validation`, a mapping of figure name to value).
    """
    provenance = config.provenance
    figures = provenance.get("cross_validation") or {}
    table = "\n".join(
        ["| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in figures.items())]
    )
    head = config.head
    model = (
        f"{backbone_lines(config.backbone_specs())}\n"
        f"- {config.num_folds} cross-validated heads (Linear {config.fusion_dim} -> {head.hidden_dims[0]} ->\n"
        f"  {head.hidden_dims[1]} -> {head.num_classes}); score = mean over folds of the expected class\n"
        f"- semantic gate: default `{config.gate.mode}`, thresholds {config.gate.low} / {config.gate.high}"
    )
    other = {k: v for k, v in provenance.items() if k not in ("training_data", "cross_validation")}
    return render_card(
        title="DSS-SQA weights",
        intro=INTRO,
        sections={
            "Model": model,
            "Training data": provenance.get("training_data", "Not recorded in this folder's provenance."),
            "Cross-validated figures": table if figures else "Not recorded.",
            "Provenance": json_block(other),
            "Licences": LICENCES,
            "Citation": CITATION,
        },
        tags=["full-reference-iqa", "semantic-quality", "dss-sqa"],
        backbones=config.backbone_specs(),
    )
