"""The weights folder: `config.json` plus one safetensors file per fold head.

Layout (format `semantic-iqa/dss-sqa`, version 1)::

    config.json            DSSSQAConfig.to_dict() + "fold_files": [{"file", "sha256"}, ...]
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

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import FORMAT_NAME, DSSSQAConfig
from .errors import WeightsFormatError, WeightsIntegrityError, WeightsNotFoundError

CONFIG_NAME = "config.json"
HEADS_DIR = "heads"

# The published model. `score()` without `weights=` uses it; SEMANTIC_IQA_WEIGHTS overrides it.
DEFAULT_REPO_ID = "semantic-iqa/dss-sqa"
DEFAULT_REVISION = "main"
WEIGHTS_ENV_VAR = "SEMANTIC_IQA_WEIGHTS"

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_weights(name_or_path: str | os.PathLike | None = None, revision: str | None = None) -> Path:
    """Local folder of a weights folder path or a Hub repo id (downloaded into the HF cache).

    `None` means `$SEMANTIC_IQA_WEIGHTS` if set, else the published default model. An
    existing local folder always wins over a Hub repo of the same name.
    """
    if name_or_path is None:
        name_or_path = os.environ.get(WEIGHTS_ENV_VAR) or DEFAULT_REPO_ID
        if name_or_path == DEFAULT_REPO_ID and revision is None:
            revision = DEFAULT_REVISION
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    name = str(name_or_path)
    if path.exists() or not _REPO_ID.match(name):
        raise WeightsNotFoundError(f"weights folder not found: {name} (not a folder, and not a Hub repo id 'org/name')")
    from .hub import snapshot

    return snapshot(name, revision=revision, what="weights")


def is_weights_folder(folder: Path) -> bool:
    """True if `folder` holds a `config.json` of this format (any version)."""
    try:
        return json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def read_config(folder: Path) -> tuple[DSSSQAConfig, list[dict[str, str]]]:
    """Parse `folder/config.json` -> (config, fold file entries)."""
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
    fold_files = raw.get("fold_files")
    if not isinstance(fold_files, list) or len(fold_files) != config.num_folds:
        raise WeightsFormatError(
            f"{config_path}: 'fold_files' must list {config.num_folds} entries (num_folds), got {fold_files!r}"
        )
    return config, fold_files


def read_fold_tensors(folder: Path, fold_files: list[dict[str, str]]) -> list[dict[str, torch.Tensor]]:
    """Load every fold file after checking it exists and has its recorded sha256."""
    folds = []
    for entry in fold_files:
        path = folder / entry["file"]
        if not path.is_file():
            raise WeightsNotFoundError(f"weights folder {folder} lacks the fold file {entry['file']}")
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            raise WeightsIntegrityError(
                f"{path}: sha256 is {actual} but config.json records {entry.get('sha256')}; the file is "
                "damaged or was changed: download or export the weights folder again"
            )
        try:
            folds.append(load_file(path))
        except SafetensorError as exc:
            raise WeightsFormatError(f"{path} is not a valid safetensors file: {exc}") from None
    return folds


def write_weights(folder: Path, config: DSSSQAConfig, fold_tensors: list[dict[str, torch.Tensor]]) -> None:
    """Write the fold files and `config.json` (backbone sub-folders are written by their encoders)."""
    (folder / HEADS_DIR).mkdir(parents=True, exist_ok=True)
    fold_files = []
    for fold, tensors in enumerate(fold_tensors):
        relative = f"{HEADS_DIR}/fold_{fold}.safetensors"
        save_file(tensors, folder / relative, metadata={"format": "pt", "fold": str(fold)})
        fold_files.append({"file": relative, "sha256": sha256_file(folder / relative)})
    document = {**config.to_dict(), "fold_files": fold_files}
    (folder / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
