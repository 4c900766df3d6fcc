"""Labelled AI-generated-image data sets: the AGIQA-3K layout and the reference loader's CSV.

Two CSV layouts (comma-separated, a header row, fields quoted when they hold commas or
quotes; read with the `csv` module):

- AGIQA-3K `data.csv`: `name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align`.
  `labels` picks `mos_quality` or `mos_align`. Columns other than `name`, the label column
  and (for variant B) `prompt` are not used and may be absent.
- The reference code's loader: `image_name,prompt,mos`; its one label column is `mos`
  (whatever `labels` says it means: quality or alignment).

Images are named as in the name column (`.jpg`, `.png`, ...) and lie together in one folder:
beside the CSV, or in one sub-folder of the CSV's folder (the one holding most of the listed
names; the CSV's own folder wins a tie). `data_dir` is the folder holding `data.csv` (or
its only .csv), or the CSV file itself.

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

AGIQA_COLUMNS = ("name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align")
REFERENCE_COLUMNS = ("image_name", "prompt", "mos")
LABEL_COLUMNS = ("mos_quality", "mos_align")  # AGIQA-3K; the reference CSV has only "mos"
MOS_RANGE = (0.0, 5.0)
ANNOTATION_NAME = "data.csv"
_LISTED = 20  # problems spelled out in the error before "and N more"


@dataclass(frozen=True)
class AGIQASet:
    """Labelled images: `names[i]` at `paths[i]`, generated from `prompts[i]`, with MOS `mos[i]`.

    Attributes:
        mos: float64 [N] in [0, 5], higher is better, from the column `label_column`.
        labels: what the MOS measures: "mos_quality" or "mos_align".
        layout: "agiqa-3k" or "reference".
        csv_path: the annotation file read.
    """

    names: list[str]
    paths: list[Path]
    prompts: list[str]
    mos: np.ndarray
    labels: str
    label_column: str
    layout: str
    csv_path: Path

    def __len__(self) -> int:
        return len(self.names)


# long: one pass over the rows that gathers every problem of the data set, to report them all at once
def read_agiqa(data_dir: str | os.PathLike, labels: str = "mos_quality", *, need_prompts: bool = False) -> AGIQASet:
    """Read and check an AGIQA-3K-layout or reference-loader data set (see the module docstring).

    Args:
        data_dir: the folder holding `data.csv` (or its only .csv), or the CSV file itself.
        labels: "mos_quality" or "mos_align" (for the reference CSV: what its `mos` measures;
            "mos" is accepted there too and means quality).
        need_prompts: every image must have a non-empty prompt (variant B).

    Raises:
        DatasetError: listing every problem found: a CSV in neither layout, missing columns,
            an unknown label column, missing or unreadable image files, duplicate names,
            non-numeric or out-of-range MOS, empty prompts where they are needed.
    """
    table = _annotation_file(Path(data_dir))
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{table} is not a readable UTF-8 CSV file: {exc}") from None
    header = [cell.strip() for cell in rows[0]] if rows else []
    body = [(number + 2, row) for number, row in enumerate(rows[1:]) if any(cell.strip() for cell in row)]
    problems: list[str] = []
    if "image_name" in header:
        layout, name_column, label_column = "reference", "image_name", "mos"
        known_labels = (*LABEL_COLUMNS, "mos")
    elif "name" in header:
        layout, name_column, label_column = "agiqa-3k", "name", labels
        known_labels = LABEL_COLUMNS
    else:
        layout, name_column, label_column, known_labels = "", "", "", LABEL_COLUMNS
        problems.append(
            f"{table.name} is in neither known layout: its header {header!r} has no 'name' column (AGIQA-3K: "
            f"{','.join(AGIQA_COLUMNS)}) and no 'image_name' column (reference loader: {','.join(REFERENCE_COLUMNS)})"
        )
    if labels not in known_labels:
        problems.append(f"unknown label column {labels!r}: choose one of {', '.join(LABEL_COLUMNS)}")
        label_column = ""
    wanted = [c for c in (name_column, label_column, "prompt" if need_prompts else "") if c]
    absent = [c for c in wanted if c not in header] if layout else []
    if absent:
        problems.append(f"{table.name} lacks the column(s) {', '.join(absent)} (header: {','.join(header)})")
    if layout and not body:
        problems.append(f"{table.name} lists no images")
    if problems and (not layout or absent or not body):
        _raise(table, problems)  # no row can be checked

    column = {name: header.index(name) for name in {*wanted, "prompt"} if name in header}
    cell = lambda row, name: row[column[name]] if column.get(name, len(row)) < len(row) else ""  # noqa: E731
    folder = _image_folder(table.parent, [cell(row, name_column).strip() for _, row in body])
    names, prompts, scores, seen = [], [], [], {}
    for line, row in body:
        where = f"{table.name} line {line}"
        name, prompt = cell(row, name_column).strip(), cell(row, "prompt")
        score = math.nan
        if label_column:  # an unknown label column is reported once, above
            raw = cell(row, label_column).strip()
            number = finite_number(raw)
            if number is None:
                problems.append(f"{where}: {label_column} {raw!r} is not a number")
            elif not MOS_RANGE[0] <= number <= MOS_RANGE[1]:
                problems.append(f"{where}: {label_column} {number:g} is outside [0, 5]")
            else:
                score = number
        if need_prompts and not prompt.strip():
            problems.append(f"{where}: empty prompt (the prompt-anchored variant B needs one per image)")
        if not name:
            problems.append(f"{where}: empty image name")
            continue
        if name in seen:
            problems.append(f"{where}: {name} is listed again (first on line {seen[name]})")
            continue
        seen[name] = line
        path = folder / name
        if not path.is_file():
            problems.append(f"{where}: {name} is missing in {folder}")
        elif (reason := unreadable_image(path)) is not None:
            problems.append(f"{where}: {name} cannot be read ({reason})")
        names.append(name)
        prompts.append(prompt)
        scores.append(score)
    if problems:
        _raise(table, problems)
    kind = "mos_quality" if labels == "mos" else labels
    return AGIQASet(
        names, [folder / n for n in names], prompts, np.asarray(scores, np.float64), kind, label_column, layout, table
    )


def _raise(table: Path, problems: list[str]) -> None:
    shown = "; ".join(problems[:_LISTED]) + (f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else "")
    raise DatasetError(f"{len(problems)} problem(s) in data set {table}: {shown}")


def _annotation_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"data set not found: {path}")
    if (path / ANNOTATION_NAME).is_file():
        return path / ANNOTATION_NAME
    tables = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and not p.name.startswith("."))
    if len(tables) != 1:
        found = ", ".join(p.name for p in tables) or "none"
        raise DatasetError(f"{path}: expected {ANNOTATION_NAME} or one .csv annotation file (found {found})")
    return tables[0]


def _image_folder(root: Path, names: list[str]) -> Path:
    """The CSV's folder, or the one sub-folder of it holding most of the listed images."""
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]
    counts = [sum((folder / name).is_file() for name in names if name) for folder in candidates]
    return candidates[int(np.argmax(counts))]  # argmax takes the first of equal counts: the CSV's folder
