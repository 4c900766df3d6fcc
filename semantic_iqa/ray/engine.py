"""`run_ray_job`: a score-dir job through `ray.data`, resumable, written by the driver."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import ray
import ray.data

from ..errors import InvalidInputError, InvalidOptionError
from ..hub import locate_weights, resolve_weights
from ..jobs.items import JobInputs, image_columns, read_manifest
from ..jobs.local import JobInterrupted, ProgressLog, check_output
from ..jobs.lock import result_lock
from ..jobs.results import ResultWriter, repair_result, result_columns, summary, weights_fingerprints
from ..jobs.resume import plan_job
from ..registry import MetricInfo, create_metric
from .address import check_ray_address
from .cluster import _connected, _quiet_ray_data, plan_actors
from .scorer import (
    _BATCHES_PER_BLOCK,
    _MAX_BLOCKS,
    ROW_COLUMN,
    ImageDecoder,
    PairScorer,
    _check_reference_cache,
)


def run_ray_job(
    info: MetricInfo,
    weights: str | os.PathLike | None,
    options: Mapping[str, Any] | None,
    items: Sequence[Mapping[str, str]] | str | os.PathLike,
    out: str | os.PathLike,
    *,
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int = 16,
    num_actors: int | None = None,
    progress: bool | None = None,
    decode: str = "auto",
    precision: str = "fp32",
    revision: str | None = None,
    reference_cache: int = 0,
    log_every_s: float = 30.0,
    on_rows: Callable[[int, int], None] | None = None,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Score a job's items on Ray Data into `out` (.parquet or .csv), as the local engine would; returns its summary.

    Args:
        info: the metric's registry entry.
        weights: weights folder or Hub repo id (`None`: the metric's default). On a cluster, a
            folder must be readable at the same path on every node; a Hub repo is fetched by each
            node at the revision this machine resolved.
        options: the metric's scoring options (e.g. `{"gate": "hard"}`).
        items: the job's items (`semantic_iqa.jobs.items`: `id`, image paths, `prompt`), or a
            manifest file (CSV or Parquet) to read them from.
        out: the result file; Parquet parts go to `<out>.parts/` while it runs.
        address: a Ray cluster to join ("auto", "ray://head:10001", "head:6379"); `None`: the
            instance this process is connected to, else a new local one, stopped at the end.
        resume: skip the items already in `out` (same model only; changed inputs are scored again).
        overwrite: replace an existing `out`.
        batch_size: items per `score_batch` call.
        num_actors: at most this many scoring actors (default: see `plan_actors`).
        progress: a bar counting items (`None`: a bar on a terminal, else a line every `log_every_s`).
        decode: where images are decoded: "auto", "actor" or "stage" (see `plan_actors`).
        precision: backbone precision in the actors, "fp32" or "bf16".
        revision: the Hub revision of `weights`.
        reference_cache: reference features kept per scoring actor (DSS-SQA; 0 = off): a
            reference that comes back is encoded once per actor. Sort the items by `ref` so that
            a reference's pairs fall in the same blocks, and so in the same actor.
        on_rows: called after each batch of rows is saved, with (rows saved by this run, rows to do).
        stream: where messages and progress lines go (default stderr).

    Raises:
        JobInterrupted: on Ctrl-C (or a `KeyboardInterrupt` from `on_rows`), after the rows so far are saved.
        ResultLockedError: another run is writing `out` (`<out>.lock`, held for the whole job).
        InvalidOptionError, ClusterConnectionError: an `address` of no accepted form, or one that
            cannot be reached (`address.check_ray_address`), in seconds and before any work.
    """
    start = time.perf_counter()
    stream = stream or sys.stderr
    out, options = Path(out), dict(options or {})
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidOptionError(f"batch_size must be a positive integer, got {batch_size!r}")
    if address is not None:
        check_ray_address(address)  # before any work: a wrong address fails in seconds, not minutes
    if isinstance(items, (str, os.PathLike)):
        manifest = Path(items).absolute()
        items = read_manifest(manifest, info)
        check_output(out, JobInputs(items, files=[manifest]), resume=resume, overwrite=overwrite)
    else:
        items = list(items)
        check_output(out, JobInputs(items), resume=resume, overwrite=overwrite)  # not over an input image
    if not items:
        raise InvalidInputError("the job has no items")
    if reference_cache:
        _check_reference_cache(info)

    folder, name, hub_revision, on_hub = _weights(info, weights, revision)
    fingerprints = weights_fingerprints(folder, precision=precision, options=options)
    images = image_columns(info)
    unit = "pair" if info.kind == "FR" else "image"
    with result_lock(out):  # one writer per result file: a second run is refused, not interleaved
        job_plan = plan_job(out, fingerprints, items, images, resume=resume)  # refuses another model's rows
        for line in job_plan.warnings:
            print(f"semantic-iqa: warning: {line}", file=stream)
        tally, skipped = job_plan.tally, job_plan.skipped
        todo = [
            {**{name: item[name] for name in ("id", *info.inputs)}, "input_signature": signature}
            for item, signature in job_plan.todo
        ]
        if job_plan.existing:
            print(
                f"semantic-iqa: resuming {out}: {skipped} {unit}(s) done already, {len(todo)} to score"
                + (f" ({job_plan.changed} with changed inputs)" if job_plan.changed else ""),
                file=stream,
            )
        if not todo and job_plan.keep is not None:  # nothing to score, but rows to remove: no Ray needed
            repair_result(out, job_plan.keep)

        written = 0
        if todo:
            # The driver loads the metric once, on its CPU: the result columns (exactly the local
            # engine's) and, for a decode stage, the picklable image transform come from it.
            local_model = create_metric(info.name, folder, device="cpu", precision=precision)
            columns = result_columns(info, local_model, options)
            transform = local_model.image_transform()
            del local_model
            job = {"metric": info.name, "weights": name, "revision": hub_revision, "options": options, "engine": "ray"}
            writer: ResultWriter | None = None
            # Hub weights on a cluster: each node fetches the commit resolved here. Otherwise the
            # folder (a local instance shares this machine's files; a cluster needs it on every node).
            from_hub = on_hub and (address is not None or ray.is_initialized())
            scorer_args = {
                "metric": info.name,
                "weights": name if from_hub else str(folder),
                "options": options,
                "precision": precision,
                "revision": hub_revision if from_hub else None,
                "reference_cache": reference_cache,
            }
            try:
                with _connected(address) as where, _quiet_ray_data():
                    resources = ray.cluster_resources()
                    plan = plan_actors(resources.get("CPU", 1), resources.get("GPU", 0), num_actors, decode)
                    print(f"semantic-iqa: {len(todo)} {unit}(s) on {where}: {plan.note}", file=stream, flush=True)
                    dataset = _job_dataset(todo, batch_size)
                    if plan.decode_stage:
                        # A pool of CPU actors, not tasks: Ray Data fuses a task stage into the
                        # actors after it when their resource requests match (CPU-only nodes), and
                        # the decoding would silently move back into the scoring actors.
                        dataset = dataset.map_batches(
                            ImageDecoder,
                            fn_constructor_kwargs={"transform": transform, "image_columns": images},
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=plan.decode_actors),
                            num_cpus=1,
                            batch_size=batch_size,
                            batch_format="numpy",
                        )
                    # Ray Data restarts a killed scoring actor and runs its unfinished batches again
                    # (its defaults for actor pools: max_restarts=-1, max_task_retries=-1).
                    scored = dataset.map_batches(
                        PairScorer,
                        fn_constructor_kwargs={**scorer_args, "threads": plan.threads},
                        compute=ray.data.ActorPoolStrategy(size=plan.num_actors),
                        num_gpus=plan.num_gpus,
                        num_cpus=plan.num_cpus,
                        batch_size=batch_size,
                        batch_format="numpy",
                    )
                    # Opened once Ray is up: a cluster that cannot be reached leaves an earlier result as it was.
                    writer = ResultWriter(out, columns, fingerprints, job=job, resume=resume, keep=job_plan.keep)
                    counts = _save_rows(scored, writer, todo, unit, progress, log_every_s, stream, on_rows)
                    written = counts.rows
                    tally.ok, tally.failed = tally.ok + counts.ok, tally.failed + counts.failed
                    tally.score_sum += counts.score_sum
                    tally.first_error = tally.first_error or counts.first_error
            except KeyboardInterrupt:  # the `finally` saves what arrived before this propagates
                written = writer.rows_written if writer is not None else 0
                raise JobInterrupted(out, written, skipped + written, len(items)) from None
            finally:
                if writer is not None:
                    writer.close()
            if written != len(todo):  # Ray Data raises when a task fails for good; this is a last guard
                raise RuntimeError(f"Ray returned {written} of {len(todo)} rows; resume to score the rest")
    return summary(
        metric=info.name,
        weights=name,
        revision=hub_revision,
        options=options,
        out=out,
        engine="ray",
        ok=tally.ok,
        failed=tally.failed,
        skipped=skipped,
        mean_score=tally.mean_score,
        wall_time_s=time.perf_counter() - start,
        first_error=tally.first_error,
    )


def _weights(
    info: MetricInfo, weights: str | os.PathLike | None, revision: str | None
) -> tuple[Path, str, str | None, bool]:
    """(local folder, name, revision, whether from the Hub) of the job's weights, as the sidecar records them.

    A Hub repo is fetched here once; its snapshot folder's name is the commit the actors load.
    """
    local, name, revision = locate_weights(weights, revision, info)
    if local is not None:
        return local.absolute(), str(local.absolute()), None, False
    folder = resolve_weights(name, revision, info)
    if folder.parent.name == "snapshots":  # the Hub cache layout: the folder is named by its commit
        revision = folder.name
    return folder, name, revision, True


def _job_dataset(todo: list[dict[str, Any]], batch_size: int) -> ray.data.Dataset:
    """The items to score as a Ray dataset held in the object store (no read tasks; no shared file system needed)."""
    rows_per_block = max(batch_size * _BATCHES_PER_BLOCK, math.ceil(len(todo) / _MAX_BLOCKS))
    rows_per_block = math.ceil(rows_per_block / batch_size) * batch_size  # whole batches per block
    tables = []
    for first in range(0, len(todo), rows_per_block):
        chunk = todo[first : first + rows_per_block]
        table = pa.Table.from_pylist(chunk)
        tables.append(table.append_column(ROW_COLUMN, pa.array(range(first, first + len(chunk)), pa.int64())))
    return ray.data.from_arrow(tables)


@dataclass
class _Counts:
    rows: int = 0
    ok: int = 0
    failed: int = 0
    score_sum: float = 0.0
    first_error: str | None = None
    repeated: int = 0  # rows that arrived a second time (a retried task), not saved again


def _save_rows(
    scored: ray.data.Dataset,
    writer: ResultWriter,
    todo: list[dict[str, Any]],
    unit: str,
    progress: bool | None,
    log_every_s: float,
    stream: TextIO,
    on_rows: Callable[[int, int], None] | None,
) -> _Counts:
    """Write the scored rows as they arrive, each job row once (a retried task may deliver a row twice)."""
    from tqdm.auto import tqdm

    counts = _Counts()
    seen = np.zeros(len(todo), dtype=bool)  # one byte per row: cheap at 10 million rows
    log = ProgressLog(len(todo), unit, log_every_s, stream) if progress is None and not stream.isatty() else None
    batches = scored.iter_batches(batch_size=None, batch_format="pyarrow")
    bar = tqdm(total=len(todo), unit=unit, disable=None if progress is None else not progress, file=stream)
    try:
        for table in batches:
            rows = []
            for row in table.to_pylist():
                position = row.pop(ROW_COLUMN)
                if seen[position]:
                    counts.repeated += 1
                    continue
                seen[position] = True
                rows.append(row)
                if row["status"] == "ok":
                    counts.ok += 1
                    counts.score_sum += row["score"]
                else:
                    counts.failed += 1
                    counts.first_error = counts.first_error or row["status"]
            writer.write(rows)
            counts.rows += len(rows)
            bar.update(len(rows))
            if log is not None:
                log.update(len(rows), sum(row["status"] != "ok" for row in rows))
            if on_rows is not None:
                on_rows(counts.rows, len(todo))
    finally:
        bar.close()
        # Closing the iterator now (not when it is garbage-collected) stops Ray Data's
        # executor and frees the actors' CPUs and GPUs for the next job, also after Ctrl-C.
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if counts.repeated:
        print(f"semantic-iqa: {counts.repeated} row(s) delivered twice by retried Ray tasks, saved once", file=stream)
    return counts
