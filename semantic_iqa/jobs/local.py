"""The local engine: a job scored on this machine through the one batch loop (`iterate_batches`).

Rows are written as they are scored; `resume=True` skips rows already written whose input
files are unchanged; Ctrl-C ends with `JobInterrupted` after the rows so far are saved.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import torch

from ..errors import InvalidInputError, InvalidOptionError
from ..registry import MetricInfo
from ..scoring import Batch, iterate_batches
from .items import JobInputs, image_columns, input_signature
from .results import (
    ResultWriter,
    flatten_record,
    model_fingerprint,
    output_format,
    read_rows,
    result_columns,
    result_exists,
    summary,
)


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C during a job, raised after the rows scored so far are saved.

    Attributes: `out`, `written` (rows this run wrote), `done` (items of the job now in
    `out`), `total` (items of the job).
    """

    def __init__(self, out: Path, written: int, done: int, total: int) -> None:
        super().__init__(f"interrupted: {done} of {total} items in {out}")
        self.out, self.written, self.done, self.total = out, written, done, total


def check_output(
    out: str | os.PathLike, inputs: JobInputs | None = None, *, resume: bool = False, overwrite: bool = False
) -> None:
    """Refuse an `out` that would destroy data: inside an input folder, over an input file, or an existing result.

    An existing result is replaced only with `overwrite`, or added to with `resume`.
    """
    out = Path(out)
    output_format(out)
    if resume and overwrite:
        raise InvalidOptionError("choose --resume (finish the existing result) or --overwrite (replace it), not both")
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot write {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise InvalidInputError(f"cannot write {out}: it is a folder")
    if inputs is not None:
        check_not_input(out, inputs, "--out")
    if result_exists(out) and not (resume or overwrite):
        raise InvalidInputError(
            f"refusing to overwrite {out}: it exists; pass --resume to finish it or --overwrite to replace it"
        )


def check_not_input(path: str | os.PathLike, inputs: JobInputs, option: str) -> None:
    """Refuse to write `path` inside an input folder or over an input file (image, manifest, prompts)."""
    target = Path(path).resolve()
    for folder in inputs.folders:
        if target.is_relative_to(folder.resolve()):
            raise InvalidInputError(f"refusing {option} {path}: it is inside the input folder {folder}")
    inputs_here = {str(f.resolve()) for f in inputs.files}
    inputs_here.update(value for item in inputs.items for key, value in item.items() if key in ("ref", "dist", "image"))
    if str(target) in inputs_here or os.path.abspath(path) in inputs_here:
        raise InvalidInputError(f"refusing {option} {path}: it is one of the job's input files")


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


class ProgressLog:
    """One line every `every_s` seconds (done, rate, ETA, failed), for runs without a terminal."""

    def __init__(self, total: int, unit: str, every_s: float, stream: TextIO) -> None:
        self.total, self.unit, self.every_s, self.stream = total, unit, every_s, stream
        self.start = self.last = time.monotonic()
        self.done = self.failed = 0

    def update(self, done: int, failed: int) -> None:
        self.done += done
        self.failed += failed
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = timedelta(seconds=round((self.total - self.done) / rate)) if rate > 0 else "?"
            print(
                f"semantic-iqa: {self.done}/{self.total} {self.unit}s scored ({100 * self.done / self.total:.0f}%), "
                f"{rate:.1f} {self.unit}s/s, ETA {eta}, {self.failed} failed",
                file=self.stream,
                flush=True,
            )


def run_job(
    info: MetricInfo,
    metric_model: Any,
    items: Sequence[Mapping[str, str]],
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int = 16,
    workers: int = 0,
    progress: bool | None = None,
    log_every_s: float = 30.0,
    options: Mapping[str, Any] | None = None,
    weights: str | None = None,
    revision: str | None = None,
    weights_folder: str | os.PathLike | None = None,
    fingerprint: str | None = None,
    inputs: JobInputs | None = None,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Score `items` with `metric_model` into `out` (.csv or .parquet); returns the `summary`.

    Args:
        info: the metric's registry entry (which columns are images, FR or NR).
        metric_model: the loaded metric (`image_transform`, `score_batch`).
        items: the job's items (`semantic_iqa.jobs.items`).
        resume: skip items already in `out` whose inputs are unchanged (same model only).
        overwrite: replace an existing `out`.
        progress: a bar counting items (`None`: a bar on a terminal, else a log line every `log_every_s`).
        options: the metric's options (e.g. `gate`), passed to `score_batch` and fingerprinted.
        weights: what the summary and the sidecar name as the weights.
        revision: the weights' revision, likewise.
        weights_folder: the folder the metric was loaded from (a cheap fingerprint).
        inputs: the job's inputs, to refuse an `out` inside them.

    Raises:
        JobInterrupted: on Ctrl-C, after the rows so far are saved.
    """
    start = time.perf_counter()
    stream = stream or sys.stderr
    out, options = Path(out), dict(options or {})
    check_output(out, inputs, resume=resume, overwrite=overwrite)
    fingerprint = fingerprint or model_fingerprint(metric_model, options, weights_folder)
    columns = result_columns(info, metric_model, options)
    images = image_columns(info)
    unit = "pair" if info.kind == "FR" else "image"

    done = read_rows(out, fingerprint) if resume and result_exists(out) else {}
    todo: list[tuple[Mapping[str, str], str]] = []
    stale: set[str] = set()
    tally = Tally()
    for item in items:
        signature = input_signature(item, images)  # taken before decoding: a later change is seen next time
        previous = done.get(item["id"])
        if previous is not None and previous.signature == signature:
            tally.add(previous.status, previous.score)
            continue
        if previous is not None:
            stale.add(item["id"])
        todo.append((item, signature))
    skipped = len(items) - len(todo)
    if done:
        print(
            f"semantic-iqa: resuming {out}: {skipped} {unit}(s) done already, {len(todo)} to score"
            + (f" ({len(stale)} with changed inputs)" if stale else ""),
            file=stream,
        )

    job = {"metric": info.name, "weights": weights, "revision": revision, "options": options}
    writer = ResultWriter(out, columns, fingerprint, job=job, resume=resume, drop=stale)
    log = ProgressLog(len(todo), unit, log_every_s, stream) if progress is None and not stream.isatty() else None
    try:
        if todo:
            batches = iterate_batches(
                {name: [item[name] for item, _ in todo] for name in info.inputs},
                images,
                metric_model.image_transform(),
                batch_size=batch_size,
                workers=workers,
                device=metric_model.device,
                progress=progress,
                unit=unit,
            )
            for batch in batches:
                rows = _batch_rows(batch, todo, metric_model, options)
                for row in rows:
                    tally.add(row["status"], row["score"])
                writer.write(rows)
                if log is not None:
                    log.update(len(rows), len(batch.failures))
    except KeyboardInterrupt:  # the `finally` saves what is buffered before this propagates
        raise JobInterrupted(out, writer.rows_written, skipped + writer.rows_written, len(items)) from None
    finally:
        writer.close()
    return summary(
        metric=info.name,
        weights=weights,
        revision=revision,
        options=options,
        out=out,
        engine="local",
        ok=tally.ok,
        failed=tally.failed,
        skipped=skipped,
        mean_score=tally.score_sum / tally.ok if tally.ok else None,
        wall_time_s=time.perf_counter() - start,
        only_ref=inputs.only_ref if inputs else (),
        only_dist=inputs.only_dist if inputs else (),
        first_error=tally.first_error,
    )


def _batch_rows(
    batch: Batch, todo: list[tuple[Mapping[str, str], str]], metric_model: Any, options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The result rows of one batch, in input order: scored items and those that could not be decoded."""
    rows = {index: {"score": None, "status": " ".join(str(error).split())} for index, error in batch.failures}
    if len(batch):
        with torch.inference_mode():
            records = metric_model.score_batch(batch.images, batch.extras, **options).to_records()
        for index, record in zip(batch.indices, records, strict=True):
            rows[index] = {**flatten_record(record), "status": "ok"}
    for index, row in rows.items():
        item, signature = todo[index]
        row.update(item, input_signature=signature)
    return [rows[index] for index in sorted(rows)]
