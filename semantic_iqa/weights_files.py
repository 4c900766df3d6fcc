"""Where a weights folder's files may be: inside the folder, links followed, and each one listed.

A weights folder is untrusted input: `config.json` vouches for its files by their sha256,
so every file loading reads must be one it lists, and must be in the folder. A name like
`../other/semantic`, or a link from inside the folder to somewhere else, would otherwise
load files no recorded sha256 covers. Names are checked as written when `config.json` is
parsed (`semantic_iqa.config_fields.RelativePath`); here, on disk, with links followed.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from .errors import WeightsIntegrityError, WeightsNotFoundError


def containment_root(folder: Path) -> Path:
    """The folder that the files of weights folder `folder` must resolve into, links followed.

    `folder` itself; for a snapshot in the Hugging Face cache (`models--org--name/snapshots/
    <commit>`), that repo's cache entry: huggingface_hub stores each file once in its `blobs/`
    and links it from the snapshot.
    """
    real = folder.resolve()
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--"):
        return real.parent.parent
    return real


def inside_folder(folder: Path, name: str) -> Path:
    """`folder / name`, after checking that it stays inside the folder once links are followed.

    Raises:
        WeightsIntegrityError: it leads out of the folder.
    """
    path = folder / name
    real = path.resolve()
    if not real.is_relative_to(containment_root(folder)):
        raise WeightsIntegrityError(
            f"{path} leads to {real}, outside the weights folder {folder}: a weights folder holds its own files "
            "(copy them in rather than link them) or references a backbone on the Hub by repo_id and revision"
        )
    return path


def check_stored_backbone(folder: Path, sub_folder: str, listed: Collection[str]) -> None:
    """Check that a stored backbone's sub-folder is inside `folder` and holds only files in `listed`.

    The backbone libraries (timm, transformers) read whatever files they find in the
    sub-folder, so an unlisted file there is read without any sha256 check.

    Args:
        folder: the weights folder.
        sub_folder: the backbone's `path` in `config.json`.
        listed: the `file` names of `backbone_files` (their sha256 is checked elsewhere).

    Raises:
        WeightsNotFoundError: the sub-folder is missing.
        WeightsIntegrityError: it, or a file or folder in it, leads out of `folder`, or a file is not listed.
    """
    listed = {PurePosixPath(name).as_posix() for name in listed}
    root = inside_folder(folder, sub_folder)
    if not root.is_dir():
        raise WeightsNotFoundError(f"weights folder {folder} lacks the backbone folder {sub_folder}/")
    for current, dirs, files in os.walk(root):  # links to folders are listed in `dirs`, never entered
        for name in sorted([*dirs, *files]):
            path = Path(current) / name
            if path.is_symlink() and path.is_dir():
                raise WeightsIntegrityError(
                    f"{path} is a link to a folder: a stored backbone holds its files themselves, each listed "
                    "in config.json's backbone_files; copy them in"
                )
            if name in files and path.relative_to(folder).as_posix() not in listed:
                raise WeightsIntegrityError(
                    f"{path} is not listed in config.json's backbone_files, so no sha256 vouches for it, yet the "
                    "backbone library would read it: remove it, or export the weights folder again"
                )
