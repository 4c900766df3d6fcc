"""The result table of a scoring job: its columns, the model fingerprint, writing and reading it back.

One row per item: `id`, the input columns (paths, prompt), `score` (empty for a failed
row, never a missing key), `status` (`ok` or the error text), the metric's declared result
fields (`MetricInfo.result_fields`: scalars first, then each list of floats spread over
`<column_prefix>_0`, `_1`, ...), and `input_signature` (size and mtime of each input file).
A sidecar `<out>.job.json` records which model wrote the rows (metric, weights, options,
fingerprint, package version), so a resumed job never mixes the results of two models.
What a resumed job keeps of the rows already there (`read_rows`) is decided in `resume`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import InvalidInputError, ResultFileError
from .columns import batch_records, default_kind, flatten_record, result_columns, text_columns
from .csv_table import AGAIN
from .fingerprints import (
    Fingerprints,
    model_fingerprint,
    model_fingerprints,
    weights_fingerprint,
    weights_fingerprints,
)
from .tables import CsvTable, ParquetTable, parts_dir

__all__ = [
    "Fingerprints",
    "ResultWriter",
    "batch_records",
    "check_fingerprint",
    "flatten_record",
    "model_fingerprint",
    "model_fingerprints",
    "open_table",
    "output_format",
    "repair_result",
    "result_columns",
    "result_exists",
    "sidecar_path",
    "summary",
    "text_columns",
    "weights_fingerprint",
    "weights_fingerprints",
]

FORMATS = {".csv": "csv", ".parquet": "parquet"}


def output_format(out: str | os.PathLike) -> str:
    """The result format, "csv" or "parquet", from the file's suffix; anything else is refused."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(f"--out {out}: give a .csv or .parquet file name")
    return FORMATS[suffix]


def sidecar_path(out: str | os.PathLike) -> Path:
    """`<out>.job.json`: which model, weights and options wrote the rows of `out`."""
    return Path(f"{out}.job.json")


def result_exists(out: str | os.PathLike) -> bool:
    """True when `out` holds results already (the file, or unmerged Parquet parts of a killed run)."""
    return Path(out).exists() or parts_dir(out).exists()


def open_table(
    out: str | os.PathLike, kinds: Mapping[str, str] | None = None, *, text: Collection[str] | None = None
) -> CsvTable | ParquetTable:
    """The table of result `out` (CSV or Parquet, by its suffix); `kinds` (column -> kind) are needed to write.

    A CSV table escapes the text columns (kind "str", or `text`: `text_columns(info)`) against
    formula injection; without either, those of an existing file's header are taken by their names.
    """
    out = Path(out)
    if output_format(out) == "parquet":
        return ParquetTable(out, kinds)
    if text is not None:
        return CsvTable(out, text)
    if kinds is None:
        kinds = {name: default_kind(name) for name in CsvTable(out).header() or []}
    return CsvTable(out, [name for name, kind in kinds.items() if kind == "str"])


def check_fingerprint(out: str | os.PathLike, fingerprint: str | Iterable[str]) -> None:
    """Refuse (`ResultFileError`) to add to `out` unless its sidecar records `fingerprint` (or one of them)."""
    accepted = (fingerprint,) if isinstance(fingerprint, str) else fingerprint  # `in` stops at the first match
    sidecar = sidecar_path(out)
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, not UTF-8, not JSON
        recorded = None
    if not isinstance(recorded, dict):
        raise ResultFileError(
            f"cannot resume {out}: {sidecar} is missing or unreadable, so which model wrote it is unknown; {AGAIN}"
        )
    if recorded.get("fingerprint") not in accepted:
        raise ResultFileError(
            f"refusing to resume {out}: it holds results of another model or options (metric "
            f"{recorded.get('metric')}, weights {recorded.get('weights')}, options {recorded.get('options')}); "
            "mixing them would make the scores incomparable: use --overwrite or another --out"
        )


class ResultWriter:
    """Writes result rows as they are scored, so an interruption loses nothing finished.

    CSV: appended and flushed once per `write`. Parquet: rows go to part files under
    `<out>.parts/` (one every `part_seconds`, and on `close`), merged into `out` by `close`.

    Args:
        out: the result file (.csv or .parquet).
        columns: column names in order, or a mapping name -> kind from `result_columns`.
        fingerprint: the model fingerprint, recorded in the sidecar.
        fmt: "csv" or "parquet" (default: from the suffix).
        job: more to record in the sidecar (metric, weights, revision, options).
        fingerprint: the model fingerprint, recorded in the sidecar (several: the first is recorded,
            and a result recording any of them may be resumed).
        resume: keep the rows already in `out` (refused when its sidecar has another fingerprint).
        keep: with `resume`, keep only the rows at these positions (`resume.ResumePlan.keep`: the
            file is rewritten without the others); `None` keeps every row.
        drop: ids whose rows are removed first (inputs changed: they are scored again).
        metadata: Parquet only: key-value pairs kept in the file's schema.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        columns: Sequence[str] | Mapping[str, str],
        fingerprint: str | Iterable[str],
        fmt: str | None = None,
        *,
        job: Mapping[str, Any] | None = None,
        resume: bool = False,
        keep: Collection[int] | None = None,
        drop: Collection[str] = frozenset(),
        part_seconds: float = 2.0,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.out = Path(out)
        self.fmt = fmt or output_format(out)
        kinds = dict(columns) if isinstance(columns, Mapping) else {name: default_kind(name) for name in columns}
        self.columns = list(kinds)
        resumed = resume and result_exists(self.out)
        if resumed:
            check_fingerprint(self.out, fingerprint)
        else:
            self.discard()
            recorded = fingerprint if isinstance(fingerprint, str) else next(iter(fingerprint))
            document = {**(job or {}), "fingerprint": recorded, "package_version": __version__}
            document.update(format=self.fmt, columns=self.columns)
            sidecar_path(self.out).write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        if self.fmt == "csv":
            text = [name for name, kind in kinds.items() if kind == "str"]
            self.table: CsvTable | ParquetTable = CsvTable(self.out, text)
        else:
            self.table = ParquetTable(self.out, kinds, part_seconds=part_seconds, metadata=metadata)
        if resumed and drop:
            dropped = set(drop)
            keep = [p for p, _, row in self.table.entries(["id"]) if row and (keep is None or p in keep)
                    and str(row["id"]) not in dropped]  # fmt: skip
        self.table.open(self.columns, keep=resumed, positions=keep if resumed else None)
        self.rows_written = 0

    def discard(self) -> None:
        """Remove an earlier result of this name (its file, parts and sidecar)."""
        for path in (self.out, sidecar_path(self.out)):
            path.unlink(missing_ok=True)
        ParquetTable.remove_parts(self.out)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append rows (dicts; missing keys are written empty) and make them durable."""
        self.table.write([{name: row.get(name) for name in self.columns} for row in rows])
        self.rows_written += len(rows)

    def close(self) -> None:
        """Flush what is buffered; Parquet: merge the parts into `out`."""
        self.table.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_result(out: str | os.PathLike, keep: Collection[int], text: Collection[str] | None = None) -> None:
    """Rewrite an existing result with only the rows at `keep` (`resume.ResumePlan.keep`), without a writer.

    For a resumed job with nothing left to score, whose file still needs rows removed;
    `text`: its text columns (`text_columns(info)`), escaped again in a CSV file.
    """
    open_table(out, text=text).rewrite(keep)


def summary(
    *,
    metric: str,
    weights: str | None,
    revision: str | None,
    options: Mapping[str, Any],
    out: str | os.PathLike,
    engine: str,
    precision: str | None = None,
    ok: int,
    failed: int,
    skipped: int,
    mean_score: float | None,
    wall_time_s: float,
    only_ref: Sequence[str] = (),
    only_dist: Sequence[str] = (),
    first_error: str | None = None,
) -> dict[str, Any]:
    """The job's summary (what `score-dir` prints and writes with `--json`).

    `ok` and `failed` count the whole result (rows of earlier runs included); `skipped`
    counts the items an earlier run had done; `mean_score` is over every `ok` row; `precision`
    is the backbones' as resolved ("fp32" or "bf16"; `None` where the engine did not say).
    """
    return {
        "metric": metric,
        "weights": weights,
        "revision": revision,
        "options": {k: v for k, v in options.items() if v is not None},
        "precision": precision,
        "package_version": __version__,
        "engine": engine,
        "out": str(out),
        "total": ok + failed,
        "ok": ok,
        "failed": failed,
        "skipped": skipped,
        "mean_score": mean_score,
        "first_error": first_error,
        "wall_time_s": round(wall_time_s, 3),
        "only_in_ref": list(only_ref),
        "only_in_dist": list(only_dist),
    }
