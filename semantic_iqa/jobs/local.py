"""The local engine: a job scored on this machine through the one batch loop (`iterate_batches`).

Rows are written as they are scored, by this run only (`<out>.lock` is held for the run);
`resume=True` skips rows already written whose input files are unchanged and which read back
valid (`resume.plan_job`); Ctrl-C ends with `JobInterrupted` after the rows so far are saved.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import torch

from ..errors import InvalidOptionError, OutputError
from ..outputs import check_not_input, check_output_file
from ..registry import MetricInfo
from ..scoring import Batch, iterate_batches
from .items import JobInputs, image_columns
from .lock import result_lock
from .results import (
    ResultWriter,
    flatten_record,
    model_fingerprints,
    output_format,
    result_columns,
    result_exists,
    sidecar_path,
    summary,
)
from .resume import plan_job


def check_output(
    out: str | os.PathLike, inputs: JobInputs | None = None, *, resume: bool = False, overwrite: bool = False
) -> None:
    """Refuse a job's result file (`--out`) that would destroy data: over or inside an input, or an existing result.

    An existing result is replaced only with `overwrite`, or added to with `resume`.
    """
    out = Path(out)
    output_format(out)
    if resume and overwrite:
        raise InvalidOptionError("choose --resume (finish the existing result) or --overwrite (replace it), not both")
    check_output_file(out, overwrite=True, inputs=inputs, option="--out")
    check_not_input(sidecar_path(out), inputs, "--out")  # its `.job.json`, written beside it
    if result_exists(out) and not (resume or overwrite):
        raise OutputError(
            f"refusing to overwrite --out {out}: it exists; pass --resume to finish it or --overwrite to replace it"
        )


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C during a job, raised after the rows scored so far are saved.

    Attributes: `out`, `written` (rows this run wrote), `done` (items of the job now in
    `out`), `total` (items of the job).
    """

    def __init__(self, out: Path, written: int, done: int, total: int) -> None:
        super().__init__(f"interrupted: {done} of {total} items in {out}")
        self.out, self.written, self.done, self.total = out, written, done, total


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
        ResultLockedError: another run is writing `out`.
        ResultFileError: `resume` and `out` cannot be trusted (another model's, not UTF-8, not Parquet).
    """
    start = time.perf_counter()
    stream = stream or sys.stderr
    out, options = Path(out), dict(options or {})
    check_output(out, inputs, resume=resume, overwrite=overwrite)
    with result_lock(out):  # one writer per result file: a second run is refused, not interleaved
        fingerprints = [fingerprint] if fingerprint else model_fingerprints(metric_model, options, weights_folder)
        columns = result_columns(info, metric_model, options)
        images = image_columns(info)
        unit = "pair" if info.kind == "FR" else "image"
        plan = plan_job(out, fingerprints, items, images, resume=resume)
        for line in plan.warnings:
            print(f"semantic-iqa: warning: {line}", file=stream)
        todo, tally, skipped = plan.todo, plan.tally, plan.skipped
        if plan.existing:
            print(
                f"semantic-iqa: resuming {out}: {skipped} {unit}(s) done already, {len(todo)} to score"
                + (f" ({plan.changed} with changed inputs)" if plan.changed else ""),
                file=stream,
            )

        job = {"metric": info.name, "weights": weights, "revision": revision, "options": options}
        writer = ResultWriter(out, columns, fingerprints, job=job, resume=resume, keep=plan.keep)
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
        mean_score=tally.mean_score,
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
