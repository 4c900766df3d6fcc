"""The weights folder, for every metric: `config.json`, safetensors head files, backbones.

Layout (format `semantic-iqa`, version 2)::

    config.json     {"format": "semantic-iqa", "format_version": 2, "metric": NAME,
                     ...the metric's settings..., "head_files": [...], "backbone_files": [...]}
                    where each file entry is {"file", "sha256"}, checked on every load
    README.md       model card
    heads/*.safetensors       the trained tensors (DSS-SQA: one file per fold)
    <role>/                   a backbone stored locally, in its library's own format

Version 1 folders (`"format": "semantic-iqa/dss-sqa"`, `fold_files`) are DSS-SQA folders
and still load. Backbones not stored locally are referenced by Hub repo id + revision in the
metric's settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config_fields import RelativePath, Text, parse_fields
from .errors import (
    InvalidOptionError,
    WeightsConfigError,
    WeightsFormatError,
    WeightsIntegrityError,
    WeightsNotFoundError,
)
from .weights_files import check_stored_backbone, inside_folder

FORMAT_NAME = "semantic-iqa"
FORMAT_VERSION = 2
LEGACY_FORMAT = ("semantic-iqa/dss-sqa", 1)  # version 1: DSS-SQA only, "fold_files"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
HEADS_DIR = "heads"
_ENVELOPE = ("format", "format_version", "metric", "head_files", "fold_files", "backbone_files")

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# config.json is read whole: a real one is a few kB (settings, one line per listed file), so
# 16 MB is far beyond any, and a bigger file is not read into memory at all.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# A file entry of head_files / backbone_files: a path inside the folder and its sha256.
FILE_ENTRY_FIELDS = {"file": RelativePath(), "sha256": Text(64, 64, r"[0-9a-f]{64}", "a sha256 (64 hex digits)")}


def weights_source(name_or_path: str | os.PathLike, revision: str | None = None) -> tuple[Path | None, str, str | None]:
    """Decide where named weights come from, without touching the network.

    An existing local folder always wins over a Hub repo of the same name.

    Returns:
        (folder, name, revision): `folder` is the local folder, or `None` for a Hub repo
        `name` at `revision`.
    """
    if not str(name_or_path).strip():
        # '' would otherwise mean the current directory, silently.
        raise InvalidOptionError(
            f"weights={name_or_path!r} is empty: pass a weights folder or a Hub repo id, or None for the default"
        )
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
        found = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return False
    return found in (FORMAT_NAME, LEGACY_FORMAT[0])


class FolderContents(NamedTuple):
    """What `config.json` says a weights folder holds."""

    metric: str  # registry name of the metric
    settings: dict[str, Any]  # the metric's own settings, for its config class's from_dict
    head_files: list[dict[str, str]]  # {"file", "sha256"} per head part, in order
    backbone_files: list[dict[str, str]]  # every file of the locally stored backbones


def _legacy_metric() -> str:
    """The metric of a version-1 folder: it names none, because it predates every metric but the default."""
    from .registry import default_metric

    return default_metric()


def weights_folder_metric(folder: Path) -> str | None:
    """The metric a weights folder holds (a version-1 folder: the default metric's); `None` if it is not one."""
    try:
        if (folder / CONFIG_NAME).stat().st_size > MAX_CONFIG_BYTES:  # not one of ours; not read into memory
            return None
        raw = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") not in (FORMAT_NAME, LEGACY_FORMAT[0]):
        return None
    metric = raw.get("metric", _legacy_metric() if raw.get("format") == LEGACY_FORMAT[0] else None)
    return metric if isinstance(metric, str) else None


def read_folder(folder: Path) -> FolderContents:
    """Parse `folder/config.json` (format version 2, or a version-1 folder of the default metric)."""
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise WeightsNotFoundError(f"weights folder {folder} has no {CONFIG_NAME}")
    size = config_path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise WeightsFormatError(
            f"{config_path} is {size:,} bytes; a weights config.json is a few kB (at most {MAX_CONFIG_BYTES:,} "
            "read, MAX_CONFIG_BYTES): this is not one"
        )
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WeightsFormatError(f"{config_path} is not valid JSON: {str(exc) or 'nested too deep'}") from None
    if not isinstance(raw, dict):
        raise WeightsFormatError(f"{config_path} must hold a JSON object")
    found = (raw.get("format"), raw.get("format_version"))
    if found == LEGACY_FORMAT:
        metric, head_files = _legacy_metric(), raw.get("fold_files")
    elif found[0] in (FORMAT_NAME, LEGACY_FORMAT[0]):
        if found[1] != FORMAT_VERSION:
            raise WeightsFormatError(
                f"{config_path} has format_version {found[1]!r}; this semantic-iqa reads versions 1 and "
                f"{FORMAT_VERSION}: upgrade semantic-iqa or re-export the weights"
            )
        metric, head_files = raw.get("metric"), raw.get("head_files")
    else:
        raise WeightsFormatError(f"{config_path} is not a {FORMAT_NAME} weights config (format={found[0]!r})")
    if not isinstance(metric, str):
        raise WeightsFormatError(f"{config_path} does not say which metric it holds ('metric')")
    backbone_files = raw.get("backbone_files", [])
    if not isinstance(head_files, list) or not isinstance(backbone_files, list):
        raise WeightsFormatError(f"{config_path}: 'head_files' and 'backbone_files' must be lists")
    heads_key = "fold_files" if found == LEGACY_FORMAT else "head_files"
    for key, entries in ((heads_key, head_files), ("backbone_files", backbone_files)):
        for index, entry in enumerate(entries):
            if not (
                isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("sha256"), str)
            ):
                raise WeightsFormatError(
                    f"{config_path}: file entries must be {{'file': ..., 'sha256': ...}}, got {entry!r}"
                )
            try:  # a path inside the folder ("../x" loaded from outside it) and a real sha256
                parse_fields(FILE_ENTRY_FIELDS, entry, prefix=f"{key}[{index}].")
            except WeightsConfigError as exc:
                raise exc.in_file(config_path) from None
    settings = {key: value for key, value in raw.items() if key not in _ENVELOPE}
    return FolderContents(metric, settings, head_files, backbone_files)


def checked_file(folder: Path, entry: dict[str, str]) -> Path:
    """Path of one listed file, after checking it exists, lies in `folder` and has the sha256 recorded for it."""
    path = inside_folder(folder, entry["file"])
    if not path.is_file():
        raise WeightsNotFoundError(f"weights folder {folder} lacks the file {entry['file']}")
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise WeightsIntegrityError(
            f"{path}: sha256 is {actual} but config.json records {entry.get('sha256')}; the file is damaged or "
            "was changed: for a Hub model run `semantic-iqa download REPO_ID --force`, else export the folder again"
        )
    return path


def check_folder_files(folder: Path, contents: FolderContents, stored: Iterable[str]) -> None:
    """Check every file that loading the folder will read, before anything is built from them.

    Every listed file (heads, backbones) lies inside the folder and has its recorded sha256;
    every stored backbone sub-folder (`stored`: the backbones' `path`s) lies inside it too and
    holds listed files only, since the backbone libraries read whatever they find there.

    Raises:
        WeightsNotFoundError: a listed file or a stored backbone's sub-folder is missing.
        WeightsIntegrityError: a file has another sha256, is not listed, or a link leads out.
    """
    for entry in [*contents.head_files, *contents.backbone_files]:
        checked_file(folder, entry)
    listed = {entry["file"] for entry in contents.backbone_files}
    for sub_folder in stored:
        check_stored_backbone(folder, sub_folder, listed)


def read_head_files(folder: Path, head_files: list[dict[str, str]]) -> list[dict[str, torch.Tensor]]:
    """Load every head file after checking it exists and has its recorded sha256."""
    parts = []
    for entry in head_files:
        path = checked_file(folder, entry)
        try:
            parts.append(load_file(path))
        except SafetensorError as exc:
            raise WeightsFormatError(f"{path} is not a valid safetensors file: {exc}") from None
    return parts


def write_folder(
    folder: Path,
    metric: str,
    settings: dict[str, Any],
    head_parts: dict[str, dict[str, torch.Tensor]],
    backbone_dirs: list[str],
    card: str,
) -> None:
    """Write the head files, `config.json` and the model card into `folder`.

    Args:
        metric: registry name of the metric.
        settings: the metric's JSON-ready settings (its config's `to_dict()`).
        head_parts: file stem -> tensors, written as `heads/<stem>.safetensors` in this order.
        backbone_dirs: sub-folders holding locally stored backbones, already written: hashed here.
        card: the README.md text.
    """
    if head_parts:  # a metric without trained heads (e.g. LoRA merged into its backbones) gets no empty folder
        (folder / HEADS_DIR).mkdir(parents=True, exist_ok=True)
    head_files = []
    for stem, tensors in head_parts.items():
        relative = f"{HEADS_DIR}/{stem}.safetensors"
        # One metadata key only: safetensors orders several in random order, and equal
        # weights must give equal bytes (and sha256).
        save_file(tensors, folder / relative, metadata={"format": "pt"})
        head_files.append({"file": relative, "sha256": sha256_file(folder / relative)})
    backbone_files = [
        {"file": path.relative_to(folder).as_posix(), "sha256": sha256_file(path)}
        for sub_folder in backbone_dirs
        for path in sorted((folder / sub_folder).rglob("*"))
        if path.is_file()
    ]
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "metric": metric,
        **settings,
        "head_files": head_files,
        "backbone_files": backbone_files,
    }
    (folder / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (folder / CARD_NAME).write_text(card, encoding="utf-8")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
