"""The local engine: a job scored on this machine through the one batch loop (`iterate_batches`).

Rows are written as they are scored, by this run only (`<out>.lock` is held for the run);
`resume=True` skips rows already written whose input files are unchanged and which read back
valid (`resume.plan_job`); Ctrl-C ends with `JobInterrupted` after the rows so far are saved.
The planning, the counts and the summary are the shared planner's (`planner`), as for Ray.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..outputs import check_not_input
from ..registry import MetricInfo
from ..scoring import Batch, iterate_batches
from .columns import batch_records, flatten_record, result_columns
from .items import JobInputs, image_columns
from .lock import result_lock
from .planner import JobInterrupted, JobRun, ProgressLog, check_output, plan_run
from .results import ResultWriter, model_fingerprints

__all__ = ["JobInterrupted", "ProgressLog", "check_not_input", "check_output", "run_job"]


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
        options: the metric's scoring options (`MetricInfo.scoring_options`), passed to
            `score_batch` and fingerprinted.
        weights: what the summary and the sidecar name as the weights.
        revision: the weights' revision, likewise.
        weights_folder: the folder the metric was loaded from (a cheap fingerprint).
        inputs: the job's inputs, to refuse an `out` inside them.

    Raises:
        JobInterrupted: on Ctrl-C, after the rows so far are saved.
        ResultLockedError: another run is writing `out`.
        ResultFileError: `resume` and `out` cannot be trusted (another model's, not UTF-8, not Parquet).
        MetricContractError: the metric's records differ from its declared result fields.
    """
    started = time.perf_counter()
    stream = stream or sys.stderr
    out, options = Path(out), dict(options or {})
    check_output(out, inputs, resume=resume, overwrite=overwrite)
    with result_lock(out):  # one writer per result file: a second run is refused, not interleaved
        fingerprints = [fingerprint] if fingerprint else model_fingerprints(metric_model, options, weights_folder)
        # The columns first: scoring one blank image checks the metric against its declaration
        # (`MetricContractError`) before the plan, the writer or a file is touched.
        columns = result_columns(info, metric_model, options)
        run = plan_run(
            info, out, fingerprints, items, resume=resume, engine="local", options=options, weights=weights,
            revision=revision, stream=stream, started=started,
        )  # fmt: skip
        writer = ResultWriter(out, columns, fingerprints, job=run.job, resume=resume, keep=run.plan.keep)
        try:
            _score_into(run, writer, metric_model, batch_size, workers, progress, log_every_s, stream)
        except KeyboardInterrupt:  # the `finally` saves what is buffered before this propagates
            raise run.interrupted(writer.rows_written) from None
        finally:
            writer.close()
    return run.summary(inputs.only_ref if inputs else (), inputs.only_dist if inputs else ())


def _score_into(
    run: JobRun,
    writer: ResultWriter,
    metric_model: Any,
    batch_size: int,
    workers: int,
    progress: bool | None,
    log_every_s: float,
    stream: TextIO,
) -> None:
    """Score the run's items to do through the one batch loop, writing and counting each batch's rows."""
    todo, info = run.todo, run.info
    if not todo:
        return
    log = ProgressLog(len(todo), info.unit, log_every_s, stream) if progress is None and not stream.isatty() else None
    batches = iterate_batches(
        {name: [item[name] for item, _ in todo] for name in info.inputs},
        image_columns(info),
        metric_model.image_transform(),
        batch_size=batch_size,
        workers=workers,
        device=metric_model.device,
        progress=progress,
        unit=info.unit,
    )
    options = run.job["options"]
    for batch in batches:
        rows = _batch_rows(info, batch, todo, metric_model, options)
        run.count(rows)
        writer.write(rows)
        if log is not None:
            log.update(len(rows), len(batch.failures))


def _batch_rows(
    info: MetricInfo,
    batch: Batch,
    todo: list[tuple[Mapping[str, str], str]],
    metric_model: Any,
    options: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The result rows of one batch, in input order: scored items and those that could not be decoded.

    Each batch's records are checked against the metric's declared fields (`batch_records`).
    """
    rows = {index: {"score": None, "status": " ".join(str(error).split())} for index, error in batch.failures}
    if len(batch):
        records = batch_records(info, metric_model, batch.images, batch.extras, options, check=True)
        for index, record in zip(batch.indices, records, strict=True):
            rows[index] = {**flatten_record(record, info.result_fields), "status": "ok"}
    for index, row in rows.items():
        item, signature = todo[index]
        row.update(item, input_signature=signature)
    return [rows[index] for index in sorted(rows)]
