"""The weights folder: `config.json` plus one safetensors file per fold head.

Layout (format `semantic-iqa/dss-sqa`, version 1)::

    config.json            DSSSQAConfig.to_dict() + "fold_files" and "backbone_files",
                           each a list of {"file", "sha256"} checked on load
    README.md              model card
    heads/fold_0.safetensors ... heads/fold_{F-1}.safetensors
    structure/, semantic/  backbone folders, only for backbones stored locally (spec.path)

Fold files hold only head weights and BatchNorm statistics. Backbones are referenced by
Hub repo id + revision, or stored in a sub-folder in their library's own format.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import FORMAT_NAME, DSSSQAConfig
from .errors import InvalidOptionError, WeightsError, WeightsFormatError, WeightsIntegrityError, WeightsNotFoundError

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
HEADS_DIR = "heads"


class HubWeights(NamedTuple):
    """A weights repo on the Hugging Face Hub, pinned to a revision (tag or commit)."""

    repo_id: str
    revision: str


# Where the published model will be, pinned. `score()` without `weights=` loads it, unless
# the environment variable SEMANTIC_IQA_WEIGHTS names another folder or repo id. This repo
# does not exist yet: until it does, that call raises NoPublishedWeightsError, whose message
# names the ways to get weights (semantic_iqa.hub.no_published_weights_message).
DEFAULT_WEIGHTS = HubWeights("semantic-iqa/dss-sqa-lovif2026", "v1.0")
WEIGHTS_ENV_VAR = "SEMANTIC_IQA_WEIGHTS"

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def weights_source(
    name_or_path: str | os.PathLike | None = None, revision: str | None = None
) -> tuple[Path | None, str, str | None]:
    """Decide where weights come from, without touching the network.

    `None` means `$SEMANTIC_IQA_WEIGHTS` if set, else `DEFAULT_WEIGHTS`. An existing local
    folder always wins over a Hub repo of the same name.

    Returns:
        (folder, name, revision): `folder` is the local folder, or `None` for a Hub repo
        `name` at `revision`.
    """
    if name_or_path is not None and not str(name_or_path).strip():
        # '' would otherwise mean the current directory, silently.
        raise InvalidOptionError(
            f"weights={name_or_path!r} is empty: pass a weights folder or a Hub repo id, or None for the default"
        )
    if name_or_path is None:
        name_or_path = os.environ.get(WEIGHTS_ENV_VAR) or DEFAULT_WEIGHTS.repo_id
        if name_or_path == DEFAULT_WEIGHTS.repo_id and revision is None:
            revision = DEFAULT_WEIGHTS.revision
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve(), str(path.resolve()), None
    name = str(name_or_path)
    if path.exists() or not _REPO_ID.match(name):
        raise WeightsNotFoundError(f"weights folder not found: {name} (not a folder, and not a Hub repo id 'org/name')")
    return None, name, revision


def is_weights_folder(folder: Path) -> bool:
    """True if `folder` holds a `config.json` of this format (any version)."""
    try:
        return json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


class FolderContents(NamedTuple):
    """What `config.json` says a weights folder holds."""

    config: DSSSQAConfig
    fold_files: list[dict[str, str]]  # one {"file", "sha256"} per fold, in fold order
    backbone_files: list[dict[str, str]]  # every file of the locally stored backbones


def check_writable(folder: Path) -> None:
    """Refuse to write weights into a non-empty folder that is not already a weights folder.

    Never scatter files over (or overwrite the config.json of) something else.
    """
    if folder.is_dir() and any(folder.iterdir()) and not is_weights_folder(folder):
        raise WeightsError(f"refusing to write weights into {folder}: it is not empty and not a weights folder")


def read_config(folder: Path) -> FolderContents:
    """Parse `folder/config.json`."""
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise WeightsNotFoundError(f"weights folder {folder} has no {CONFIG_NAME}")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsFormatError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise WeightsFormatError(f"{config_path} must hold a JSON object")
    config = DSSSQAConfig.from_dict(raw)
    fold_files, backbone_files = raw.get("fold_files"), raw.get("backbone_files", [])
    if not isinstance(fold_files, list) or len(fold_files) != config.num_folds:
        raise WeightsFormatError(
            f"{config_path}: 'fold_files' must list {config.num_folds} entries (num_folds), got {fold_files!r}"
        )
    for entry in [*fold_files, *backbone_files]:
        if not (
            isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("sha256"), str)
        ):
            raise WeightsFormatError(
                f"{config_path}: file entries must be {{'file': ..., 'sha256': ...}}, got {entry!r}"
            )
    return FolderContents(config, fold_files, backbone_files)


def checked_file(folder: Path, entry: dict[str, str]) -> Path:
    """Path of one listed file, after checking it exists and has the sha256 recorded for it."""
    path = folder / entry["file"]
    if not path.is_file():
        raise WeightsNotFoundError(f"weights folder {folder} lacks the file {entry['file']}")
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise WeightsIntegrityError(
            f"{path}: sha256 is {actual} but config.json records {entry.get('sha256')}; the file is damaged or "
            "was changed: for a Hub model run `semantic-iqa download REPO_ID --force`, else export the folder again"
        )
    return path


def read_fold_tensors(folder: Path, fold_files: list[dict[str, str]]) -> list[dict[str, torch.Tensor]]:
    """Load every fold file after checking it exists and has its recorded sha256."""
    folds = []
    for entry in fold_files:
        path = checked_file(folder, entry)
        try:
            folds.append(load_file(path))
        except SafetensorError as exc:
            raise WeightsFormatError(f"{path} is not a valid safetensors file: {exc}") from None
    return folds


def write_weights(folder: Path, config: DSSSQAConfig, fold_tensors: list[dict[str, torch.Tensor]]) -> None:
    """Write the fold files, `config.json` and the model card.

    Backbone sub-folders must already be written (by their encoders): their files are hashed here.
    """
    (folder / HEADS_DIR).mkdir(parents=True, exist_ok=True)
    fold_files = []
    for fold, tensors in enumerate(fold_tensors):
        relative = f"{HEADS_DIR}/fold_{fold}.safetensors"
        # One metadata key only: safetensors orders several in random order, and equal
        # weights must give equal bytes (and sha256).
        save_file(tensors, folder / relative, metadata={"format": "pt"})
        fold_files.append({"file": relative, "sha256": sha256_file(folder / relative)})
    backbone_files = [
        {"file": path.relative_to(folder).as_posix(), "sha256": sha256_file(path)}
        for spec in (config.structure, config.semantic)
        if spec.path is not None
        for path in sorted((folder / spec.path).rglob("*"))
        if path.is_file()
    ]
    document = {**config.to_dict(), "fold_files": fold_files, "backbone_files": backbone_files}
    (folder / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_NAME).write_text(model_card(config), encoding="utf-8")


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


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
