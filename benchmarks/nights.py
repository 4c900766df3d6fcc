"""NIGHTS 2AFC (DreamSim's benchmark), read from its published layout and scored as its authors do.

Layout (the data set's README): `nights/ref/XXX/YYY.png`, `nights/distort/XXX/YYY_0.png` and
`YYY_1.png`, and `nights/data.csv` with the header
`id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet` (paths relative
to `nights/`; folders and files numbered with gaps). As in the authors' loader (`TwoAFCDataset`):
only rows with `votes >= 6` are kept, and `right_vote` is the target p, the SHARE (in [0, 1], not
a count) of the people who found the right distortion closer; the authors' training code rounds
it to {0, 1} and counts `p >= 0.5` as "right". Splits: train, val, test; test is also reported
apart for the ImageNet categories (`is_imagenet`) and the others.

Score (the authors' `score_nights_dataset`): with d0 = distance(ref, left), d1 = distance(ref,
right), per triplet `(d0 < d1) * (1 - p) + (d1 < d0) * p + (d0 == d1) * 0.5`, averaged. A metric
enters as a distance by the direction of its row (ours: their registry entry): a higher-is-better
score as its negative. Hard accuracy (agreement with the majority, ties half) is the same formula
with p rounded as the authors' training code does.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.bench_metric import BenchMetric
from benchmarks.published import PUBLISHED_NIGHTS
from semantic_iqa.errors import DatasetError
from semantic_iqa.evaluation import two_afc
from semantic_iqa.registry import list_metrics

COLUMNS = ("id", "left_vote", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet")
SPLITS = ("train", "val", "test")
MIN_VOTES = 6  # the authors keep the triplets with at least 6 (unanimous) votes
TEST_IMAGENET = "test (ImageNet)"
TEST_OTHER = "test (not ImageNet)"
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
SHOWN = 10  # problems listed in an error message; the rest are counted


@dataclass(frozen=True)
class NightsData:
    """The kept triplets (votes >= 6) of the chosen splits, in data.csv's order."""

    root: Path
    ids: tuple[str, ...]
    ref: tuple[Path, ...]
    left: tuple[Path, ...]
    right: tuple[Path, ...]
    p: np.ndarray  # right_vote: the share of people who found the right distortion closer
    split: np.ndarray  # "train" / "val" / "test"
    is_imagenet: np.ndarray  # bool
    dropped: int  # rows of data.csv with fewer than MIN_VOTES votes (all splits)

    def __len__(self) -> int:
        return len(self.ids)

    def groups(self) -> dict[str, np.ndarray]:
        """Report group -> row mask: each split present, and test by `is_imagenet` where both kinds occur."""
        masks = {split: self.split == split for split in SPLITS if (self.split == split).any()}
        if "test" in masks:
            for name, mask in ((TEST_IMAGENET, self.is_imagenet), (TEST_OTHER, ~self.is_imagenet)):
                if (masks["test"] & mask).any():
                    masks[name] = masks["test"] & mask
        return masks


def nights_root(folder: Path) -> Path:
    """The folder holding data.csv: `folder` itself or its `nights/` (as the download unpacks)."""
    for root in (folder, folder / "nights"):
        if (root / "data.csv").is_file():
            return root
    raise DatasetError(
        f"NIGHTS: no data.csv in {folder} (nor in {folder / 'nights'}); pass the folder that holds "
        "data.csv, ref/ and distort/ (the unpacked NIGHTS download)"
    )


def read_nights(folder: Path, splits: tuple[str, ...] = ("test",)) -> NightsData:
    """The triplets of `splits` with votes >= 6, every problem of data.csv listed in one `DatasetError`.

    Raises DatasetError for: no data.csv, a header without the published columns, values that
    cannot be read (votes, right_vote outside [0, 1], an unknown split, is_imagenet not a boolean,
    a path outside the data set), a chosen split without any kept triplet, and missing image files.
    """
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise DatasetError(f"NIGHTS: unknown split(s) {unknown or '(none)'}; choose from {', '.join(SPLITS)}")
    root = nights_root(folder)
    table = root / "data.csv"
    rows = _read_table(table)
    kept, dropped, problems = _parse_rows(root, rows)
    if problems:
        raise DatasetError(_listed(f"NIGHTS: {len(problems)} problem(s) in {table}", problems))
    data = NightsData(
        root,
        tuple(r[0] for r in kept),
        tuple(r[1] for r in kept),
        tuple(r[2] for r in kept),
        tuple(r[3] for r in kept),
        np.asarray([r[4] for r in kept], dtype=np.float64),
        np.asarray([r[5] for r in kept], dtype=object),
        np.asarray([r[6] for r in kept], dtype=bool),
        dropped,
    )
    data = _select(data, splits, table)
    missing = [str(path) for path in dict.fromkeys((*data.ref, *data.left, *data.right)) if not path.is_file()]
    if missing:
        raise DatasetError(_listed(f"NIGHTS: {len(missing)} image file(s) named in {table} are missing", missing))
    return data


def _read_table(table: Path) -> list[dict[str, str]]:
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            absent = [column for column in COLUMNS if column not in header]
            if absent:
                raise DatasetError(
                    f"NIGHTS: {table} has the header {','.join(header) or '(empty)'}: column(s) "
                    f"{', '.join(absent)} missing; the published data.csv starts with {','.join(COLUMNS)}"
                )
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"NIGHTS: {table} is not a readable UTF-8 CSV file: {exc}") from None


def _parse_rows(root: Path, rows: list[dict[str, str]]) -> tuple[list[tuple], int, list[str]]:
    """(kept rows as (id, ref, left, right, p, split, is_imagenet), dropped count, problems)."""
    kept, problems, dropped = [], [], 0
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"line {line} (id {(row.get('id') or '').strip() or '?'})"
        before = len(problems)
        votes = _number(row.get("votes"))
        if votes is None:
            problems.append(f"{where}: votes {row.get('votes')!r} is not a number")
            continue
        if votes < MIN_VOTES:
            dropped += 1
            continue
        p = _number(row.get("right_vote"))
        if p is None or not 0.0 <= p <= 1.0:
            problems.append(f"{where}: right_vote {row.get('right_vote')!r} is not a share in [0, 1]")
        split = (row.get("split") or "").strip()
        if split not in SPLITS:
            problems.append(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
        imagenet = BOOLEANS.get((row.get("is_imagenet") or "").strip().lower())
        if imagenet is None:
            problems.append(f"{where}: is_imagenet {row.get('is_imagenet')!r} is not True/False")
        paths = [_inside(root, row.get(column), column, where, problems) for column in COLUMNS[4:7]]
        if len(problems) == before:
            kept.append((row["id"].strip(), *paths, p, split, imagenet))
    return kept, dropped, problems


def _number(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _inside(root: Path, text: str | None, column: str, where: str, problems: list[str]) -> Path:
    """`root / text`, a problem noted unless it is a relative path that stays inside `root`."""
    relative = Path((text or "").strip())
    if not relative.parts or relative.is_absolute() or ".." in relative.parts:
        problems.append(f"{where}: {column} {text!r} is not a path relative to the data set folder")
    return root / relative


def _select(data: NightsData, splits: tuple[str, ...], table: Path) -> NightsData:
    counts = {split: int((data.split == split).sum()) for split in SPLITS}
    empty = [split for split in splits if counts[split] == 0]
    if empty:
        raise DatasetError(
            f"NIGHTS: split(s) {', '.join(empty)} of {table} have no triplet with votes >= {MIN_VOTES} "
            f"(kept per split: {counts}; {data.dropped} row(s) with fewer votes dropped); choose another split"
        )
    mask = np.isin(data.split.astype(str), list(splits))
    index = np.flatnonzero(mask)
    pick = lambda values: tuple(values[i] for i in index)  # noqa: E731
    return replace(
        data,
        ids=pick(data.ids),
        ref=pick(data.ref),
        left=pick(data.left),
        right=pick(data.right),
        p=data.p[mask],
        split=data.split[mask],
        is_imagenet=data.is_imagenet[mask],
    )


def _listed(title: str, items: list[str]) -> str:
    shown = "; ".join(items[:SHOWN])
    more = f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{title}: {shown}{more}"


# -- scores ----------------------------------------------------------------------------------
def group_figures(d_left: np.ndarray, d_right: np.ndarray, p: np.ndarray, groups: dict[str, np.ndarray]) -> dict:
    """Per report group: the 2AFC score (%), its triplet count and hard accuracy (%)."""
    soft = two_afc(d_left, d_right, p)
    hard = two_afc(d_left, d_right, (np.asarray(p) >= 0.5).astype(np.float64))  # p rounded: the majority
    return {
        group: {
            "2afc": 100 * float(soft[mask].mean()),
            "triplets": int(mask.sum()),
            "hard_accuracy": 100 * float(hard[mask].mean()),
        }
        for group, mask in groups.items()
    }


def not_run(metrics: list[BenchMetric], weight_flags: dict[str, str]) -> dict[str, str]:
    """Registered metrics without a NIGHTS row, with the reason (read from their registry entries)."""
    present = {m.registry_name for m in metrics if m.registry_name}
    reasons = {}
    for info in list_metrics():
        if info.name in present:
            continue
        if info.kind != "FR":
            reasons[info.title] = (
                "no-reference: it scores one image alone, while NIGHTS asks which of two distortions is "
                "closer to a reference, so it has no distance to compare"
            )
        elif info.name in weight_flags:
            reasons[info.title] = f"no weights given ({weight_flags[info.name]})"
    return reasons


def run_nights(data: NightsData, metrics: list[BenchMetric], weight_flags: dict[str, str]) -> dict:
    """Every metric on the triplets of `data`: figures per group, the data set's counts, and what was not run."""
    groups = data.groups()
    scores = {}
    for metric in metrics:
        start = time.perf_counter()
        d_left = metric.distance(list(data.ref), list(data.left))
        d_right = metric.distance(list(data.ref), list(data.right))
        scores[metric.name] = {
            **group_figures(d_left, d_right, data.p, groups),
            "seconds": time.perf_counter() - start,
        }
    skipped = not_run(metrics, weight_flags)
    for title, reason in skipped.items():
        print(f"NIGHTS: {title} skipped: {reason}")
    return {
        "root": str(data.root),
        "triplets": len(data),
        "dropped_fewer_votes": data.dropped,
        "groups": list(groups),
        "scores": scores,
        "skipped": skipped,
    }


def report_lines(result: dict, metrics: list[dict], labels: dict[str, str]) -> list[str]:
    """The report.md section: ours per group, the published figures beside, and what was skipped."""
    groups = result["groups"]
    lines = [
        f"## NIGHTS 2AFC ({result['triplets']} triplets with votes >= {MIN_VOTES}; "
        f"{result['dropped_fewer_votes']} row(s) with fewer votes dropped), 2AFC score %",
        "",
        "| metric | " + " | ".join(groups) + " | hard acc. (the same columns) |",
        "|---" * (len(groups) + 2) + "|",
    ]
    for metric in metrics:
        r = result["scores"].get(metric["name"])
        if r:
            cells = [f"{r[g]['2afc']:.1f}" for g in groups]
            hard = " / ".join(f"{r[g]['hard_accuracy']:.1f}" for g in groups)
            lines.append(f"| {labels[metric['name']]} | " + " | ".join(cells) + f" | {hard} |")
    lines += [
        "",
        "Distances enter as they are; a higher-is-better score as its negative (the row's direction; "
        "for our metrics their registry entry's).",
        "",
        "Published (DreamSim README, the authors' trained models; not computed here):",
        "",
        "| source | val | test |",
        "|---|---|---|",
    ]
    for entry in PUBLISHED_NIGHTS:
        lines.append(f"| {entry['source']} | {entry['figures']['val']} | {entry['figures']['test']} |")
    lines.append("")
    for title, reason in result["skipped"].items():
        lines.append(f"- {title}: skipped: {reason}.")
    return [*lines, ""]
