"""Labelled pair data sets: the LoViF layout, and two folders plus a score table.

A data set folder holds a reference folder (`Ref`, `ref`, `reference`), a distorted folder
(`Dist`, `dist`, `distorted`) with the same file names, and a score table: the first
worksheet of an .xlsx (LoViF's `Train_scores.xlsx`) or a .csv, column A = image name (with
or without its extension), column B = score in [0, 5], an optional header row.

Everything is checked before any compute, and every problem is reported at once.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data_checks import finite_number, unreadable_image
from ...errors import DatasetError

REF_FOLDERS = ("Ref", "ref", "reference", "Reference")
DIST_FOLDERS = ("Dist", "dist", "distorted", "Distorted")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SCORE_RANGE = (0.0, 5.0)
_LISTED = 20  # problems spelled out in the error before "and N more"


@dataclass(frozen=True)
class PairSet:
    """Labelled pairs: `names[i]` is scored `scores[i]`, reference `ref_paths[i]`, distorted `dist_paths[i]`."""

    names: list[str]
    ref_paths: list[Path]
    dist_paths: list[Path]
    scores: np.ndarray  # float64, in [0, 5]

    def __len__(self) -> int:
        return len(self.names)


def read_pairs(data_dir: str | os.PathLike, scores_file: str | os.PathLike | None = None) -> PairSet:
    """Read and check a labelled data set folder (see the module docstring).

    Raises:
        DatasetError: listing every problem found (missing files on either side, duplicate
            names, non-numeric or out-of-range scores, unreadable images).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"data set folder not found: {root}")
    ref_dir, dist_dir = _subfolder(root, REF_FOLDERS), _subfolder(root, DIST_FOLDERS)
    table = Path(scores_file) if scores_file is not None else _score_table(root)
    rows = _read_table(table)
    if rows and finite_number(rows[0][2]) is None:
        first = _resolve_name(str(rows[0][1]).strip(), ref_dir, dist_dir)
        if not ((ref_dir / first).is_file() or (dist_dir / first).is_file()):
            rows = rows[1:]  # a header row such as "picture_name, Score", not a pair

    problems: list[str] = []
    names, scores, seen = [], [], {}
    for line, raw_name, raw_score in rows:
        name = _resolve_name(str(raw_name).strip(), ref_dir, dist_dir)
        where = f"{table.name} line {line}"
        score = finite_number(raw_score)
        if score is None:
            problems.append(f"{where}: score {raw_score!r} is not a number")
        elif not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
            problems.append(f"{where}: score {score:g} is outside [0, 5]")
        if name in seen:
            problems.append(f"{where}: {name} is listed again (first on line {seen[name]})")
            continue
        seen[name] = line
        for folder in (ref_dir, dist_dir):
            path = folder / name
            if not path.is_file():
                problems.append(f"{where}: {name} is missing in {folder.name}/")
            elif (reason := unreadable_image(path)) is not None:
                problems.append(f"{where}: {folder.name}/{name} cannot be read ({reason})")
        names.append(name)
        scores.append(score if score is not None else math.nan)
    if not rows:
        problems.append(f"{table.name} lists no pairs")
    if problems:
        shown = "; ".join(problems[:_LISTED]) + (
            f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
        )
        raise DatasetError(f"{len(problems)} problem(s) in data set {root}: {shown}")
    return PairSet(names, [ref_dir / n for n in names], [dist_dir / n for n in names], np.asarray(scores, np.float64))


def _subfolder(root: Path, candidates: tuple[str, ...]) -> Path:
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"{root} has no {' / '.join(candidates[:3])} folder")


def _score_table(root: Path) -> Path:
    tables = sorted(p for p in root.iterdir() if p.suffix.lower() in (".xlsx", ".csv") and not p.name.startswith("."))
    if len(tables) != 1:
        found = ", ".join(p.name for p in tables) or "none"
        raise DatasetError(f"{root}: expected one .xlsx or .csv score table (found {found}); name it with --scores")
    return tables[0]


def _read_table(path: Path) -> list[tuple[int, object, object]]:
    """(line number, column A, column B) of every non-empty row."""
    if not path.is_file():
        raise DatasetError(f"score table not found: {path}")
    if path.suffix.lower() == ".xlsx":
        try:
            import openpyxl
        except ImportError:
            raise DatasetError("reading .xlsx score tables needs openpyxl: pip install openpyxl") from None
        try:
            sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
            raw = [tuple(row[:2]) + (None,) * (2 - len(row[:2])) for row in sheet.iter_rows(values_only=True)]
        except Exception as exc:  # openpyxl raises many types for damaged files
            raise DatasetError(f"cannot read {path}: {exc}") from None
    else:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            raw = [tuple(row[:2]) + (None,) * (2 - len(row[:2])) for row in csv.reader(handle)]
    return [(i + 1, a, b) for i, (a, b) in enumerate(raw) if a not in (None, "") or b not in (None, "")]


def _resolve_name(name: str, ref_dir: Path, dist_dir: Path) -> str:
    """Names may come without their extension (LoViF tables do both): add the one on disk."""
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return name
    for suffix in IMAGE_SUFFIXES:
        if (dist_dir / (name + suffix)).is_file() or (ref_dir / (name + suffix)).is_file():
            return name + suffix
    return name
