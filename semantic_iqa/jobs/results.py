"""The result table of a scoring job: its columns, the model fingerprint, writing and reading it back.

One row per item: `id`, the input columns (paths, prompt), `score` (empty for a failed
row, never a missing key), `status` (`ok` or the error text), the metric's other figures
flattened (`fold_0`..., `p_0`...), and `input_signature` (size and mtime of each input file).
A sidecar `<out>.job.json` records which model wrote the rows (metric, weights, options,
fingerprint, package version), so a resumed job never mixes the results of two models.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image

from .._version import __version__
from ..errors import InvalidInputError
from ..registry import MetricInfo
from ..weights import read_folder
from .items import image_columns
from .tables import CsvTable, ParquetTable, parts_dir

FORMATS = {".csv": "csv", ".parquet": "parquet"}
_LIST_COLUMNS = {"fold_scores": "fold", "probabilities": "p"}  # list-valued figures -> fold_0, p_0, ...
_TEXT_COLUMNS = ("id", "ref", "dist", "image", "prompt")


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


def flatten_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A metric's record with list figures spread over numbered columns (fold_scores -> fold_0...)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, (list, tuple)):
            flat.update({f"{_LIST_COLUMNS.get(key, key)}_{i}": v for i, v in enumerate(value)})
        else:
            flat[key] = value
    return flat


def result_columns(info: MetricInfo, metric: Any, options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The result table's columns, in order, with their kind ("str", "float", "bool", "int").

    The metric's own figures come from scoring one blank image (cheap, and right for any
    registered metric): scalar figures first, then the list figures spread over columns.
    """
    blank = metric.image_transform()(Image.new("RGB", (32, 32)))
    images = {name: blank.unsqueeze(0).to(metric.device) for name in image_columns(info)}
    extras = {"prompt": ["a photo"]} if "prompt" in info.inputs else {}
    with torch.inference_mode():
        record = metric.score_batch(images, extras, **(options or {})).to_records()[0]
    scalars = {k: v for k, v in record.items() if k != "score" and not isinstance(v, (list, tuple))}
    lists = flatten_record({k: v for k, v in record.items() if isinstance(v, (list, tuple))})
    columns = {"id": "str", **dict.fromkeys(info.inputs, "str"), "score": "float", "status": "str"}
    for name, value in {**scalars, **lists}.items():
        columns[name] = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "float"
    columns["input_signature"] = "str"
    return columns


def weights_fingerprint(
    folder: str | os.PathLike, *, precision: str = "fp32", options: Mapping[str, Any] | None = None
) -> str:
    """sha256 over a weights folder's metric, settings and recorded file hashes, plus precision and options.

    Cheap (reads `config.json` only) and equal to `model_fingerprint(metric, options, folder)`.
    """
    contents = read_folder(Path(folder))
    digest = hashlib.sha256(_describe(contents.metric, contents.settings, precision, options))
    for entry in [*contents.head_files, *contents.backbone_files]:
        digest.update(f"{entry['file']}={entry['sha256']}\n".encode())
    return digest.hexdigest()


def model_fingerprint(
    metric: Any, options: Mapping[str, Any] | None = None, weights_folder: str | os.PathLike | None = None
) -> str:
    """sha256 identifying what produces the scores: metric, settings, weights, precision, options.

    With the folder the metric was loaded from, its recorded sha256s stand for the tensors
    (a `from_pretrained` load has checked them); otherwise every tensor's bytes are hashed.
    """
    if weights_folder is not None:
        return weights_fingerprint(weights_folder, precision=metric.precision, options=options)
    digest = hashlib.sha256(_describe(metric.name, metric.config.to_dict(), metric.precision, options))
    for name, tensor in sorted(metric.state_dict().items()):
        flat = tensor.detach().reshape(-1).cpu().contiguous()
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _describe(name: str, settings: Mapping[str, Any], precision: str, options: Mapping[str, Any] | None) -> bytes:
    chosen = {k: v for k, v in (options or {}).items() if v is not None}  # None = the metric's default
    text = json.dumps([name, settings, precision, chosen], sort_keys=True, default=str)
    return text.encode()


class DoneRow(NamedTuple):
    """What resume needs of a row already written."""

    signature: str
    status: str
    score: float | None


def read_rows(out: str | os.PathLike, fingerprint: str) -> dict[str, DoneRow]:
    """Every complete row of an existing result, by id, after checking it was written by the same model.

    Raises `InvalidInputError` when `out` has no sidecar or another model's fingerprint.
    """
    out = Path(out)
    check_fingerprint(out, fingerprint)
    table = CsvTable(out) if output_format(out) == "csv" else ParquetTable(out)
    rows = {}
    for row in table.rows(("id", "input_signature", "status", "score")):
        score = row["score"]
        rows[str(row["id"])] = DoneRow(row["input_signature"] or "", row["status"] or "", _float(score))
    return rows


def check_fingerprint(out: Path, fingerprint: str) -> None:
    """Refuse (`InvalidInputError`) to add to `out` unless its sidecar records `fingerprint`."""
    sidecar = sidecar_path(out)
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidInputError(
            f"cannot resume {out}: {sidecar} is missing or unreadable, so which model wrote it is unknown; "
            "use --overwrite to start again or another --out"
        ) from None
    if recorded.get("fingerprint") != fingerprint:
        raise InvalidInputError(
            f"refusing to resume {out}: it holds results of another model or options (metric "
            f"{recorded.get('metric')}, weights {recorded.get('weights')}, options {recorded.get('options')}); "
            "mixing them would make the scores incomparable: use --overwrite or another --out"
        )


def read_done(out: str | os.PathLike, fingerprint: str) -> dict[str, str]:
    """id -> input signature of every row already in `out` (checked against `fingerprint`)."""
    return {key: row.signature for key, row in read_rows(out, fingerprint).items()}


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


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
        resume: keep the rows already in `out` (refused when its sidecar has another fingerprint).
        drop: ids whose rows are removed first (inputs changed: they are scored again).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        columns: Sequence[str] | Mapping[str, str],
        fingerprint: str,
        fmt: str | None = None,
        *,
        job: Mapping[str, Any] | None = None,
        resume: bool = False,
        drop: set[str] | frozenset[str] = frozenset(),
        part_seconds: float = 2.0,
    ) -> None:
        self.out = Path(out)
        self.fmt = fmt or output_format(out)
        kinds = dict(columns) if isinstance(columns, Mapping) else {name: _default_kind(name) for name in columns}
        self.columns = list(kinds)
        keep = resume and result_exists(self.out)
        if keep:
            check_fingerprint(self.out, fingerprint)
        else:
            self.discard()
            document = {**(job or {}), "fingerprint": fingerprint, "package_version": __version__}
            document.update(format=self.fmt, columns=self.columns)
            sidecar_path(self.out).write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        if self.fmt == "csv":
            self.table: CsvTable | ParquetTable = CsvTable(self.out)
        else:
            self.table = ParquetTable(self.out, kinds, part_seconds=part_seconds)
        self.table.open(self.columns, keep=keep, drop=drop)
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


def _default_kind(name: str) -> str:
    return "str" if name in (*_TEXT_COLUMNS, "status", "input_signature") else "float"


def summary(
    *,
    metric: str,
    weights: str | None,
    revision: str | None,
    options: Mapping[str, Any],
    out: str | os.PathLike,
    engine: str,
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
    counts the items an earlier run had done; `mean_score` is over every `ok` row.
    """
    return {
        "metric": metric,
        "weights": weights,
        "revision": revision,
        "options": {k: v for k, v in options.items() if v is not None},
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
