"""Model cards (the README.md of a weights folder), built with `huggingface_hub.ModelCard`.

Every metric's card has the same frame: Hub metadata (`ModelCardData`: library name, tags,
licence, pipeline tag if any), a title, a warning when the backbones are random, then the
metric's own sections. A metric's `model_card()` gives the parts as data
(`render_card(...)`); the YAML header is written by huggingface_hub, as the Hub reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .config import BackboneSpec

LIBRARY_NAME = "semantic-iqa"
BASE_TAGS = ("image-quality-assessment",)


def random_backbones(backbones: Mapping[str, BackboneSpec]) -> list[str]:
    """The roles whose backbone has random weights: its name says so, as every tiny builder names them
    (e.g. "CLIPVisionModel (tiny, random)")."""
    return [role for role, spec in backbones.items() if "random" in spec.name.lower()]


def backbone_lines(backbones: Mapping[str, BackboneSpec], with_library: bool = True) -> str:
    """One Markdown bullet per backbone: its name (and library), and where its weights are."""
    lines = []
    for role, spec in backbones.items():
        library = f" ({spec.library})" if with_library else ""
        where = f"stored in `{spec.path}/`" if spec.path else f"from the Hub repo `{spec.repo_id}` @ `{spec.revision}`"
        lines.append(f"- {role}: `{spec.name}`{library}, {where}")
    return "\n".join(lines)


def json_block(value: Any) -> str:
    """`value` as an indented JSON code block (provenance)."""
    return f"```json\n{json.dumps(value, indent=2, sort_keys=True)}\n```"


def render_card(
    *,
    title: str,
    intro: str,
    sections: Mapping[str, str],
    tags: Sequence[str],
    backbones: Mapping[str, BackboneSpec],
    license: str = "other",
    pipeline_tag: str | None = None,
) -> str:
    """The README.md text: `ModelCardData` metadata, `# title`, a random-weights warning, `intro`, `## sections`.

    Args:
        title: the card's heading.
        intro: the paragraphs under it (what the metric scores, how to call it).
        sections: heading -> Markdown body, in order.
        tags: Hub tags besides "image-quality-assessment".
        backbones: the folder's backbones by role; random ones are announced at the top.
        license: a Hub licence id ("other" when the terms are the publisher's or mixed).
        pipeline_tag: the Hub pipeline tag, if one fits the metric.
    """
    from huggingface_hub import ModelCard, ModelCardData  # imported when a folder is written, not at import

    data = ModelCardData(
        library_name=LIBRARY_NAME, tags=[*BASE_TAGS, *tags], license=license, pipeline_tag=pipeline_tag
    )
    parts = [f"# {title}"]
    random = random_backbones(backbones)
    if random:
        parts.append(
            f"> **Random weights**: the {' and '.join(random)} backbone{'s' if len(random) > 1 else ''} of this "
            "folder are random (a tiny model for tests and demonstrations): its scores mean nothing."
        )
    parts.append(intro.strip())
    parts.extend(f"## {heading}\n\n{body.strip()}" for heading, body in sections.items())
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(parts) + "\n")
    return str(card)
