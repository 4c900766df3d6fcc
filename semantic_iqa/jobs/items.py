"""A scoring job's items: what to score, from two folders, one folder, or a manifest.

An item is a plain dict, the same for every engine (local loop, Ray Data):

- `id`: unique text. Folder jobs: the relative path without its extension
  (`"city/0001"`); manifests: the `id` column, else the row number (1 = first data row).
- the metric's image columns as absolute path strings: `ref` and `dist` (full-reference),
  `image` (no-reference);
- `prompt`, for metrics that take one.

Nothing here opens an image: a missing or corrupt file becomes a failed row at scoring time.
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, InvalidOptionError
from ..registry import MetricInfo, list_metrics

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})
MANIFEST_SUFFIXES = (".csv", ".parquet")
_SHOWN = 5  # names or problems shown in a one-line message before "..."


@dataclass
class PairedFolders:
    """Items of a REF_DIR/DIST_DIR job, and the relative paths found on one side only."""

    items: list[dict[str, str]]
    only_ref: list[str]
    only_dist: list[str]


@dataclass
class JobInputs:
    """A job's items plus what it was read from (to refuse an `--out` over any of it).

    Attributes:
        items: the items, in scoring order.
        only_ref, only_dist: relative paths present in one folder only (folder FR jobs).
        folders: the input folders (nothing may be written inside them).
        files: input files besides the images (manifest, prompts CSV).
    """

    items: list[dict[str, str]]
    only_ref: list[str] = field(default_factory=list)
    only_dist: list[str] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def image_columns(info: MetricInfo) -> list[str]:
    """The metric's per-item image inputs (`["ref", "dist"]` or `["image"]`)."""
    return [name for name in info.inputs if name != "prompt"]


def some(names: list[str]) -> str:
    """The first few of `names`, comma-separated, with "..." when there are more."""
    return ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")


def scan_images(folder: Path) -> dict[str, Path]:
    """Every image under `folder` (recursive; hidden files and folders skipped), keyed by its id.

    The id is the relative path without the extension, with "/" separators. Two files with
    one id (`a.png` and `a.jpg`) are an `InvalidInputError` naming both. Symlinked folders are
    followed; one that leads back to a folder it is inside (a loop) is skipped, with a warning.
    """
    if not folder.is_dir():
        raise InvalidInputError(f"not a folder: {folder}")
    found: dict[str, Path] = {}
    clashes: list[str] = []
    loops: list[str] = []
    ancestors = {str(folder): {_identity(folder)}}  # each folder walked -> the folders it is inside (and itself)
    for root, dirs, files in os.walk(folder, followlinks=True):
        above = ancestors.pop(root)
        kept = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            try:
                identity = _identity(Path(root, name))
            except OSError:  # gone since it was listed, or unreadable: nothing to scan there
                continue
            if identity in above:  # a symlink to a folder it is inside: following it would never end
                loops.append(Path(root, name).relative_to(folder).as_posix())
                continue
            ancestors[os.path.join(root, name)] = above | {identity}
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(root, name)
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in found:
                clashes.append(f"{found[key]} and {path}")
            else:
                found[key] = path
    if loops:
        warnings.warn(
            f"{len(loops)} symlinked folder(s) in {folder} lead back to a folder they are in "
            f"(a loop), not followed: {some(loops)}",
            stacklevel=2,
        )
    if clashes:
        raise InvalidInputError(
            f"{len(clashes)} image name(s) in {folder} have two candidates (pairs match by name without "
            f"extension): {some(clashes)}; rename or remove one of each"
        )
    return found


def _identity(path: Path) -> tuple[int, int]:
    """(device, inode) of the folder `path` leads to (through symlinks)."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def pair_folders(ref_dir: str | os.PathLike, dist_dir: str | os.PathLike) -> PairedFolders:
    """Pair two folders by relative path and file name without extension (`a.png` with `a.jpg`)."""
    ref_dir, dist_dir = Path(ref_dir).absolute(), Path(dist_dir).absolute()
    refs, dists = scan_images(ref_dir), scan_images(dist_dir)
    common = sorted(refs.keys() & dists.keys())
    if not common:
        raise InvalidInputError(
            f"no image names in common between {ref_dir} ({len(refs)} images) and {dist_dir} ({len(dists)} images);"
            " pairs match by relative path and file name without extension"
        )
    items = [{"id": key, "ref": str(refs[key]), "dist": str(dists[key])} for key in common]
    only_ref = sorted(refs[key].relative_to(ref_dir).as_posix() for key in refs.keys() - dists.keys())
    only_dist = sorted(dists[key].relative_to(dist_dir).as_posix() for key in dists.keys() - refs.keys())
    return PairedFolders(items, only_ref, only_dist)


def image_folder(folder: str | os.PathLike, prompts_csv: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """Items of a no-reference job: every image under `folder`, with its prompt when `prompts_csv` is given.

    The prompts CSV has columns `image_name,prompt` (or AGIQA's `name,prompt`); an image is
    looked up by its relative path, then its id, then its bare file name.
    """
    folder = Path(folder).absolute()
    images = scan_images(folder)
    if not images:
        raise InvalidInputError(f"no images in {folder}")
    items = [{"id": key, "image": str(path)} for key, path in sorted(images.items())]
    if prompts_csv is not None:
        prompts = _read_prompts(Path(prompts_csv))
        missing = []
        for item, path in zip(items, (images[item["id"]] for item in items), strict=True):
            keys = (path.relative_to(folder).as_posix(), item["id"], path.name)
            prompt = next((prompts[k] for k in keys if k in prompts), None)
            if prompt is None:
                missing.append(path.name)
            else:
                item["prompt"] = prompt
        if missing:
            raise InvalidInputError(f"{prompts_csv} has no prompt for {len(missing)} image(s): {some(missing)}")
    return items


def _read_prompts(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InvalidInputError(f"prompts file not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:  # binary, another encoding, NUL bytes
        raise InvalidInputError(f"prompts file {path} is not a UTF-8 CSV file ({exc}); save it as UTF-8 CSV") from None
    key = next((k for k in ("image_name", "name") if rows and k in rows[0]), None)
    if key is None or "prompt" not in rows[0]:
        raise InvalidInputError(f"{path}: needs columns image_name,prompt (or name,prompt)")
    return {row[key]: row["prompt"] for row in rows}


def read_manifest(path: str | os.PathLike, info: MetricInfo) -> list[dict[str, str]]:
    """Items of a manifest (CSV or Parquet): columns `ref`,`dist` or `image`[,`prompt`][,`id`].

    Relative paths are relative to the manifest's folder. Every problem found (missing
    columns, empty cells, duplicate ids) is listed in one `InvalidInputError`.
    """
    path = Path(path).absolute()
    rows = _manifest_rows(path)
    wanted = [*image_columns(info), *(["prompt"] if "prompt" in info.inputs else [])]
    present = set(rows[0]) if rows else set()
    missing = [name for name in wanted if name not in present]
    if not rows:
        raise InvalidInputError(f"manifest {path} has no rows")
    if missing:
        raise InvalidInputError(
            f"manifest {path} lacks column(s) {', '.join(missing)} ({info.name} needs {', '.join(wanted)}; "
            f"found {', '.join(sorted(present))})"
        )
    base = path.parent
    items, problems, seen = [], [], set()
    for number, row in enumerate(rows, start=1):
        item_id = _text(row.get("id")) or str(number)
        if item_id in seen:
            problems.append(f"row {number}: duplicate id {item_id!r}")
        seen.add(item_id)
        item = {"id": item_id}
        for name in wanted:
            value = _text(row.get(name))
            if not value:
                problems.append(f"row {number}: empty {name!r}")
            elif name == "prompt":
                item[name] = value
            else:
                item[name] = os.path.normpath(base / value)  # absolute paths stay as they are
        items.append(item)
    if problems:
        raise InvalidInputError(
            f"manifest {path}: {len(problems)} problem(s): {'; '.join(problems[:10])}"
            + ("; ..." if len(problems) > 10 else "")
        )
    return items


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise InvalidInputError(f"manifest {path}: give a .csv or .parquet file")
    if not path.is_file():
        raise InvalidInputError(f"manifest not found: {path}")
    if suffix == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets write a BOM
                return list(csv.DictReader(handle))
        except (UnicodeDecodeError, csv.Error) as exc:  # binary, another encoding, NUL bytes
            raise InvalidInputError(
                f"manifest {path} is not a UTF-8 CSV file ({exc}); save it as CSV (UTF-8) or give a Parquet manifest"
            ) from None
    from .tables import require_pyarrow

    parquet = require_pyarrow("read a Parquet manifest")
    try:
        return parquet.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow's own errors: not Parquet, truncated, ...
        raise InvalidInputError(f"manifest {path} is not a readable Parquet file: {exc}") from None


def job_items(
    info: MetricInfo,
    folders: list[str | os.PathLike] | None = None,
    manifest: str | os.PathLike | None = None,
    prompts: str | os.PathLike | None = None,
) -> JobInputs:
    """The items of a job given as folders (REF_DIR DIST_DIR, or IMAGE_DIR) or as a manifest."""
    folders = [Path(f).absolute() for f in folders or []]
    wants_prompt = "prompt" in info.inputs
    if prompts is not None and not wants_prompt:
        takers = ", ".join(other.name for other in list_metrics() if "prompt" in other.inputs) or "none registered"
        raise InvalidOptionError(f"--prompts is for metrics that take a prompt ({takers}), not {info.name}")
    if manifest is not None:
        if folders:
            raise InvalidInputError("give either folders or --manifest, not both")
        if prompts is not None:
            raise InvalidOptionError("--prompts is for folder jobs; a manifest carries its own prompt column")
        manifest = Path(manifest).absolute()
        return JobInputs(read_manifest(manifest, info), files=[manifest])
    expected = 2 if info.kind == "FR" else 1
    if len(folders) != expected:
        what = "REF_DIR DIST_DIR" if expected == 2 else "IMAGE_DIR"
        raise InvalidInputError(f"{info.name} scores {what} (or --manifest FILE); got {len(folders)} folder(s)")
    if info.kind == "FR":
        paired = pair_folders(*folders)
        return JobInputs(paired.items, paired.only_ref, paired.only_dist, folders)
    if wants_prompt and prompts is None:
        raise InvalidInputError("this metric needs each image's generation prompt: --prompts prompts.csv")
    files = [Path(prompts).absolute()] if prompts is not None else []
    return JobInputs(image_folder(folders[0], prompts), folders=folders, files=files)


def input_signature(item: dict[str, str], columns: list[str]) -> str:
    """Size and modification time of each input file of `item` ("missing" for an absent file).

    Resume compares it with the signature recorded in the result row: a changed input is scored again.
    """
    parts = []
    for name in columns:
        try:
            stat = os.stat(item[name])
        except OSError:
            parts.append("missing")
        else:
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(parts)
