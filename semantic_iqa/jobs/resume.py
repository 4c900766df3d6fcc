"""What a resumed job keeps of the rows already in its result file, for every engine.

The rows are read back and checked (`scan_result`); then `plan_job` decides, per item,
whether its row stands or the item is scored (again):

- a row that is malformed (a CSV line with the wrong number of fields, an unbalanced quote),
  has no id or status, or is `ok` with a score that is not a finite number is left out, and
  its item scored again; every such row is named in one warning (line or row numbers);
- of several rows with one id, the last valid one stands, the others are removed;
- a row whose input files changed (size or mtime) is removed and its item scored again;
- a row of an item no longer in the job (its input deleted, or left out of the manifest) is
  removed, so that the file and the summary agree.

A file that cannot be trusted as a whole (not UTF-8, not Parquet, another model's, other
columns) is a `ResultFileError` instead (`tables`, `csv_table`, `results.check_fingerprint`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .columns import default_kind
from .items import input_signature, some
from .results import check_fingerprint, open_table, result_exists
from .tables import CsvTable

_KEY_COLUMNS = ("id", "input_signature", "status", "score")
_SHOWN = 10  # rejected rows named in the warning before "..."
_FIGURE = r"(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf)|True|False|)"
_FIGURES = re.compile(rf"{_FIGURE}(?:,{_FIGURE})*")  # what `str(float)`, `str(bool)` and `None` write


class DoneRow(NamedTuple):
    """What resume needs of a row already written."""

    signature: str
    status: str
    score: float | None


@dataclass
class ResultScan:
    """The rows of an existing result, checked.

    Attributes:
        rows: the valid rows by id (of an id written twice, the last valid one).
        positions: id -> the position of that row (as the tables number them).
        total: rows read, valid or not (a torn last CSV line is not counted).
        rejected: (where, why) of each row left out, e.g. ("line 7", "score 'abc' is not a number").
        duplicates: rows left out because a later row has the same id.
    """

    rows: dict[str, DoneRow] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    total: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0


def scan_result(
    out: str | os.PathLike, fingerprint: str | Iterable[str], text: Collection[str] | None = None
) -> ResultScan:
    """Read and check every row of the result `out` after checking which model wrote it (`check_fingerprint`).

    `text`: the columns holding text (`columns.text_columns(info)`); every other column must
    read back as a number or a flag. Default: the contract's input and bookkeeping columns.
    """
    check_fingerprint(out, fingerprint)
    table = open_table(out, text=text)
    header = (table.header() or []) if isinstance(table, CsvTable) else []  # CSV only: numbers there are text
    text = set(text) if text is not None else {name for name in header if default_kind(name) == "str"}
    figures = [name for name in header if name not in text]
    scan = ResultScan()
    for position, where, row in table.entries([*_KEY_COLUMNS, *figures]):
        scan.total += 1
        problem = "not a well-formed row" if row is None else _problem(row, figures)
        if problem is not None:
            scan.rejected.append((where, problem))
            continue
        key = str(row["id"])
        if key in scan.rows:
            scan.duplicates += 1
        scan.rows[key] = DoneRow(str(row["input_signature"] or ""), str(row["status"]), _number(row["score"]))
        scan.positions[key] = position
    return scan


def read_rows(out: str | os.PathLike, fingerprint: str | Iterable[str]) -> dict[str, DoneRow]:
    """Every valid row of an existing result, by id, after checking which model wrote it.

    Damaged and duplicate rows are left out (`scan_result` lists them).

    Raises:
        ResultFileError: `out` has no sidecar, another model's fingerprint, or cannot be read.
    """
    return scan_result(out, fingerprint).rows


def read_done(out: str | os.PathLike, fingerprint: str | Iterable[str]) -> dict[str, str]:
    """id -> input signature of every valid row already in `out` (checked against `fingerprint`)."""
    return {key: row.signature for key, row in read_rows(out, fingerprint).items()}


def _number(value: Any) -> float | None:
    """A score cell as a float (`None` when empty); `ValueError` when it is not a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _problem(row: Mapping[str, Any], figures: Sequence[str]) -> str | None:
    """Why a row read back cannot stand, or `None`."""
    if row["id"] in (None, ""):
        return "no id"
    status = row["status"]
    if status in (None, ""):
        return "no status"
    # Every figure read back from CSV text must be a number (or empty, or a flag). One regular
    # expression over them all first: this runs for every row of a file of millions.
    if figures and not _FIGURES.fullmatch(",".join(row[name] or "" for name in figures)):
        for name in figures:
            if row[name] not in ("", "True", "False") and not _is_number(row[name]):
                return f"{name} {row[name]!r} is not a number"
    score = row["score"]
    if score is None or score == "":
        return "ok but no score" if status == "ok" else None
    if not _is_number(score):
        return f"score {score!r} is not a number"
    if status == "ok" and not math.isfinite(float(score)):
        return f"score is {float(score)}"
    return None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


@dataclass
class Tally:
    """Counts of a job's rows (earlier runs' included) and what the summary reports of them."""

    ok: int = 0
    failed: int = 0
    score_sum: float = 0.0
    first_error: str | None = None

    def add(self, status: str, score: float | None) -> None:
        if status == "ok" and score is not None:
            self.ok += 1
            self.score_sum += score
        else:
            self.failed += 1
            self.first_error = self.first_error or status

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.ok if self.ok else None


@dataclass
class ResumePlan:
    """What a job scores, and what it keeps of an existing result.

    Attributes:
        todo: (item, input signature) of each item to score, in the job's order.
        tally: the counts of the rows kept.
        existing: rows found in the result (0: a new job).
        skipped: items whose row stands.
        changed: items scored again because an input changed.
        keep: positions of the rows to keep (the file is rewritten without the others), or
            `None` to keep the file as it is.
        warnings: lines to show the user (damaged rows, rows removed).
    """

    todo: list[tuple[Mapping[str, str], str]]
    tally: Tally
    existing: int = 0
    skipped: int = 0
    changed: int = 0
    keep: set[int] | None = None
    warnings: list[str] = field(default_factory=list)


def plan_job(
    out: str | os.PathLike,
    fingerprint: str | Iterable[str],
    items: Sequence[Mapping[str, str]],
    images: Sequence[str],
    *,
    resume: bool,
    text: Collection[str] | None = None,
) -> ResumePlan:
    """Decide which items to score and which rows of `out` stand (all items are scored without `resume`).

    `images`: the items' image columns (their files' signatures); `text`: as for `scan_result`.
    """
    scan = scan_result(out, fingerprint, text) if resume and result_exists(out) else ResultScan()
    plan = ResumePlan(todo=[], tally=Tally(), existing=scan.total)
    standing: set[str] = set()
    for item in items:
        signature = input_signature(item, list(images))  # taken before decoding: a later change is seen next time
        previous = scan.rows.get(item["id"])
        if previous is not None and previous.signature == signature:
            plan.tally.add(previous.status, previous.score)
            standing.add(item["id"])
            continue
        plan.changed += previous is not None
        plan.todo.append((item, signature))
    plan.skipped = len(items) - len(plan.todo)
    plan.warnings = _warnings(Path(out), scan, scan.rows.keys() - {item["id"] for item in items})
    keep = {scan.positions[key] for key in standing}
    plan.keep = keep if len(keep) < scan.total else None
    return plan


def _warnings(out: Path, scan: ResultScan, gone: Collection[str]) -> list[str]:
    lines = []
    if scan.rejected:
        named = ", ".join(f"{where} ({why})" for where, why in scan.rejected[:_SHOWN])
        more = ", ..." if len(scan.rejected) > _SHOWN else ""
        lines.append(f"{out}: {len(scan.rejected)} damaged row(s) left out, their items scored again: {named}{more}")
    if scan.duplicates:
        lines.append(f"{out}: {scan.duplicates} duplicate row(s) removed (of each id, the last valid row is kept)")
    if gone:
        lines.append(
            f"{out}: {len(gone)} row(s) of items no longer in the job removed (input deleted or left out): "
            + some(sorted(gone))
        )
    return lines
