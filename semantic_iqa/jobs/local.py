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
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from ..outputs import check_not_input
from ..registry import MetricInfo
from ..scoring import Batch, iterate_batches
from .columns import batch_records, flatten_record, result_columns
from .embeddings import JobEmbeddings, check_embeddings_output
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
    embeddings: str | os.PathLike | None = None,
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
        embeddings: also write the embedding of each unique image of the job to this Parquet
            file (`jobs.embeddings`; metrics declaring `embeddings`), resumed and replaced as `out` is.

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
    if embeddings is not None:
        info.require_embeddings("--embeddings")
        check_embeddings_output(embeddings, out, inputs, resume=resume, overwrite=overwrite)
    with ExitStack() as files:  # closed last in, first out, however the block ends
        files.enter_context(result_lock(out))  # one writer per result file: a second run is refused
        if embeddings is not None:
            files.enter_context(result_lock(embeddings))
        fingerprints = [fingerprint] if fingerprint else model_fingerprints(metric_model, options, weights_folder)
        # The columns first: scoring one blank image checks the metric against its declaration
        # (`MetricContractError`) before the plan, the writer or a file is touched.
        columns = result_columns(info, metric_model, options)
        run = plan_run(
            info, out, fingerprints, items, resume=resume, engine="local", options=options, weights=weights,
            revision=revision, stream=stream, started=started, precision=getattr(metric_model, "precision", None),
        )  # fmt: skip
        vectors = None
        if embeddings is not None:  # opened (and checked) before the result is touched
            vectors = JobEmbeddings(embeddings, info, metric_model, items, fingerprints, run.job, resume=resume,
                                    stream=stream)  # fmt: skip
            files.callback(vectors.open().close)
        writer = ResultWriter(out, columns, fingerprints, job=run.job, resume=resume, keep=run.plan.keep)
        files.callback(writer.close)  # saves what is buffered, also before a `JobInterrupted` propagates
        try:
            _score_into(run, writer, metric_model, batch_size, workers, progress, log_every_s, stream, vectors)
            if vectors is not None:
                vectors.fill(batch_size, workers)
        except KeyboardInterrupt:
            raise run.interrupted(writer.rows_written) from None
    summary = run.summary(inputs.only_ref if inputs else (), inputs.only_dist if inputs else ())
    return summary if vectors is None else {**summary, "embeddings": vectors.summary()}


def _score_into(
    run: JobRun,
    writer: ResultWriter,
    metric_model: Any,
    batch_size: int,
    workers: int,
    progress: bool | None,
    log_every_s: float,
    stream: TextIO,
    vectors: JobEmbeddings | None = None,
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
        rows = _batch_rows(info, batch, todo, metric_model, options, vectors)
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
    vectors: JobEmbeddings | None = None,
) -> list[dict[str, Any]]:
    """The result rows of one batch, in input order: scored items and those that could not be decoded.

    Each batch's records are checked against the metric's declared fields (`batch_records`);
    with `vectors`, the same pass gives the images' embeddings, written there.
    """
    rows = {index: {"score": None, "status": " ".join(str(error).split())} for index, error in batch.failures}
    if len(batch):
        found: dict[str, Any] | None = {} if vectors is not None else None
        records = batch_records(info, metric_model, batch.images, batch.extras, options, check=True, embeddings=found)
        if vectors is not None and found is not None:
            vectors.add([todo[index][0] for index in batch.indices], found)
        for index, record in zip(batch.indices, records, strict=True):
            rows[index] = {**flatten_record(record, info.result_fields), "status": "ok"}
    for index, row in rows.items():
        item, signature = todo[index]
        row.update(item, input_signature=signature)
    return [rows[index] for index in sorted(rows)]
