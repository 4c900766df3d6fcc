"""The one check every output path of the package goes through, before any model work.

Files (results, `--json`, `--report`, explanation figures and maps): an existing file is
replaced only when asked (`overwrite`), the parent folder must exist, and a folder is not
a file. Weights folders (converters, `make-tiny`, `train`, `save_pretrained`): a non-empty
folder that is not a weights folder of the same metric is written into only when asked.

Either way, an output is never one of the job's inputs, even when asked: not an input file,
not inside an input folder (for a folder output: not holding one either), compared after
resolving symlinks, and for an existing file by identity (`os.path.samestat`), which also
catches hard links and symlinked input files.

This module imports only the standard library at import time: the command line's parser
and the job modules import it cheaply.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import OutputError, WeightsOutputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    PathLike = str | os.PathLike

    class JobInputsLike(Protocol):
        """What this module reads of a job's inputs (`semantic_iqa.jobs.items.JobInputs`).

        Structural, so the core does not import the job layer above it.
        """

        items: Sequence[Mapping[str, str]]
        folders: Sequence[PathLike]
        files: Sequence[PathLike]

    # A job's inputs, or any paths (files or folders; `None` entries are skipped).
    Inputs = JobInputsLike | Iterable[PathLike | None]

_IMAGE_COLUMNS = ("ref", "dist", "image")


def _split_inputs(inputs: Inputs | None) -> tuple[list[str], list[str], list[Path]]:
    """(a few input files, the many item images of a job, input folders) of `inputs`."""
    if inputs is None:
        return [], [], []
    if hasattr(inputs, "items") and hasattr(inputs, "folders"):  # a JobInputs
        images = [value for item in inputs.items for key, value in item.items() if key in _IMAGE_COLUMNS]
        return [os.fspath(path) for path in inputs.files], images, [Path(folder) for folder in inputs.folders]
    files, folders = [], []
    for path in inputs:
        if path is None:
            continue
        if Path(path).is_dir():
            folders.append(Path(path))
        else:
            files.append(os.fspath(path))
    return files, [], folders


def _named_by(target: Path, files: list[str]) -> str | None:
    """The input of `files` that names `target` (its folder resolved through symlinks), if any.

    A job may have millions of images: only those with `target`'s file name are resolved, one
    `realpath` per folder.
    """
    name, parent, folders = target.name, str(target.parent), {}
    for file in files:
        if not file.endswith(name) or os.path.basename(file) != name:  # endswith first: it is cheap
            continue
        head = os.path.dirname(os.path.abspath(file))
        if head not in folders:
            folders[head] = os.path.realpath(head)
        if folders[head] == parent:
            return file
    return None


def _same_file(own: os.stat_result, files: list[str]) -> str | None:
    """The input of `files` that is the file `own` under another name (hard link, symlink), if any."""
    for file in files:
        try:
            if os.path.samestat(own, os.stat(file)):
                return file
        except OSError:  # a missing input: nothing of it to destroy
            continue
    return None


def check_not_input(path: PathLike, inputs: Inputs | None, option: str = "--out", *, folder: bool = False) -> None:
    """Refuse to write `path` over an input file or inside an input folder, whatever `overwrite` says.

    Args:
        path: the output file (or, with `folder`, the output folder).
        inputs: the job's inputs: a `JobInputs` (images, manifest, prompts, input folders) or paths.
        option: how the user named the output, for the message ("--out", "--json", ...).
        folder: `path` is a folder written into: also refuse one that holds an input.

    Raises:
        OutputError: naming the input `path` would destroy.
    """
    files, images, folders = _split_inputs(inputs)
    target = Path(path).resolve()  # through symlinks: a link to an input, a linked folder into an input folder
    for input_folder in folders:
        root = input_folder.resolve()
        if target == root:
            raise OutputError(f"refusing {option} {path}: it is the input folder {input_folder}")
        if target.is_relative_to(root):
            raise OutputError(f"refusing {option} {path}: it is inside the input folder {input_folder}")
        if folder and root.is_relative_to(target):
            raise OutputError(f"refusing {option} {path}: it holds the input folder {input_folder}")
    if folder:  # a folder output: few inputs (checkpoints, data set, backbones), each resolved in full
        for input_file in files:
            if Path(input_file).resolve().is_relative_to(target):
                raise OutputError(f"refusing {option} {path}: it holds the input file {input_file}")
        return
    if _named_by(target, files) or _named_by(target, images):
        raise OutputError(f"refusing {option} {path}: it is one of the job's input files")
    if not target.is_file():
        return
    # An existing file may still be an input under another name: a hard link, or an input that
    # is itself a symlink to it (same device and inode). The images are stat'ed only when the
    # file has other hard links: an image symlinked to a result or summary file is no real case.
    own = os.stat(target)
    found = _same_file(own, files) or (_same_file(own, images) if own.st_nlink > 1 else None)
    if found:
        raise OutputError(f"refusing {option} {path}: it is the job's input file {found} (linked)")


def check_output_file(
    path: PathLike, *, overwrite: bool = False, inputs: Inputs | None = None, option: str = "--out"
) -> Path:
    """Refuse an output file that cannot or must not be written; returns it as a `Path`.

    Refused: a missing parent folder, a folder, any input (always, see `check_not_input`),
    and an existing file unless `overwrite`.

    Raises:
        OutputError: naming `option`, the path and what to do.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {option} {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise OutputError(f"cannot write {option} {path}: it is a folder; give a file name")
    check_not_input(path, inputs, option)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputError(
            f"refusing to overwrite {option} {path}: it exists; pass --overwrite (overwrite=True) to replace it"
        )
    return path


def is_summary_of(path: PathLike, out: PathLike) -> bool:
    """True when `path` is a `score-dir --json` summary of the job writing `out` (a resumed job may replace it)."""
    try:
        if Path(path).stat().st_size > 64 << 20:  # no summary is this big: not read into memory
            return False
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(document, dict)
        and "ok" in document
        and Path(str(document.get("out"))).resolve() == Path(out).resolve()
    )


def check_output_folder(
    folder: PathLike,
    *,
    metric: str,
    overwrite: bool = False,
    inputs: Inputs | None = None,
    option: str = "--out",
) -> Path:
    """Refuse a weights folder that must not be written into; returns it as a `Path`.

    Written into without asking: a missing or empty folder, or a weights folder of the same
    `metric` (a re-export). Anything else non-empty (another metric's weights, someone's
    project) only with `overwrite`. Never a file, an input, or a folder holding an input.

    Raises:
        WeightsOutputError: naming the folder and what to do (a `WeightsError` and an `OutputError`).
    """
    from .weights import weights_folder_metric

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WeightsOutputError(f"cannot write {option} {folder}: it is a file, not a folder")
    try:
        check_not_input(folder, inputs, option, folder=True)
    except OutputError as exc:
        raise WeightsOutputError(str(exc)) from None
    if overwrite or not folder.is_dir() or not any(folder.iterdir()):
        return folder
    found = weights_folder_metric(folder)
    if found == metric:
        return folder
    what = "not a weights folder" if found is None else f"a weights folder of another metric ({found})"
    raise WeightsOutputError(
        f"refusing to write weights into {option} {folder}: it is not empty and {what}; "
        "pass --overwrite (overwrite=True) to write into it anyway, or give another folder"
    )
