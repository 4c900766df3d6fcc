"""`run_ray_job`: a score-dir job through `ray.data`, resumable, written by the driver."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import ray
import ray.data

from ..errors import InvalidInputError, InvalidOptionError
from ..hub import locate_weights, resolve_weights
from ..jobs.columns import result_columns, text_columns
from ..jobs.embeddings import JobEmbeddings, check_embeddings_output
from ..jobs.items import JobInputs, read_manifest
from ..jobs.lock import result_lock
from ..jobs.planner import JobRun, check_output, plan_run
from ..jobs.results import repair_result, weights_fingerprints
from ..registry import MetricInfo, create_metric
from .address import check_ray_address
from .driver import JobDriver
from .scorer import _check_precision, _check_reference_cache


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
    compile: bool = False,
    revision: str | None = None,
    reference_cache: int = 0,
    log_every_s: float = 30.0,
    on_rows: Callable[[int, int], None] | None = None,
    stream: TextIO | None = None,
    embeddings: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Score a job's items on Ray Data into `out` (.parquet or .csv), as the local engine would; returns its summary.

    Args:
        info: the metric's registry entry.
        weights: weights folder or Hub repo id (`None`: the metric's default). On a cluster, a
            folder must be readable at the same path on every node; a Hub repo is fetched by each
            node at the revision this machine resolved.
        options: the metric's scoring options (`MetricInfo.scoring_options`), by name.
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
        precision: backbone precision in the actors, "fp32" or "bf16"; "auto" is refused
            (`InvalidOptionError`): it resolves per machine, and the actors' may differ from this one.
        compile: `torch.compile` the frozen encoders in each actor (`Metric.compile_encoders`).
        revision: the Hub revision of `weights`.
        reference_cache: reference features kept per scoring actor, for a metric with a
            reference cache (`Metric.make_reference_cache`; 0 = off): a reference that comes
            back is encoded once per actor. Sort the items by `ref` so that a reference's pairs
            fall in the same blocks, and so in the same actor.
        on_rows: called after each batch of rows is saved, with (rows saved by this run, rows to do).
        stream: where messages and progress lines go (default stderr).
        embeddings: also write each unique image's embedding to this Parquet file, as the local
            engine does (`jobs.embeddings`): the scoring actors return them from the scoring
            pass; images of items done before that lack a row are embedded on this machine.

    Raises:
        JobInterrupted: on Ctrl-C (or a `KeyboardInterrupt` from `on_rows`), after the rows so far are saved.
        ResultLockedError: another run is writing `out` (`<out>.lock`, held for the whole job).
        InvalidOptionError, ClusterConnectionError: an `address` of no accepted form, or one that
            cannot be reached (`address.check_ray_address`), in seconds and before any work.
    """
    started = time.perf_counter()
    stream = stream or sys.stderr
    out, options = Path(out), dict(options or {})
    items = _checked_items(info, items, out, batch_size, address, resume=resume, overwrite=overwrite,
                           embeddings=embeddings, precision=precision, reference_cache=reference_cache)  # fmt: skip
    folder, name, hub_revision, on_hub = _weights(info, weights, revision)
    fingerprints = weights_fingerprints(folder, precision=precision, options=options)
    with ExitStack() as files:  # closed last in, first out, however the block ends
        files.enter_context(result_lock(out))  # one writer per result file: a second run is refused
        run = plan_run(
            info, out, fingerprints, items, resume=resume, engine="ray", options=options, weights=name,
            revision=hub_revision, stream=stream, started=started, precision=precision,
        )  # fmt: skip
        vectors = _embeddings(files, embeddings, info, folder, precision, items, fingerprints, run, resume, stream)
        if not run.todo:
            if run.plan.keep is not None:  # nothing to score, but rows to remove: no Ray needed
                repair_result(out, run.plan.keep, text_columns(info))
            return _finish(vectors, run, 0, batch_size)
        # Hub weights on a cluster: each node fetches the commit resolved here. Otherwise the
        # folder (a local instance shares this machine's files; a cluster needs it on every node).
        from_hub = on_hub and (address is not None or ray.is_initialized())
        scorer_args = {
            "metric": info.name, "weights": name if from_hub else str(folder), "options": options,
            "precision": precision, "revision": hub_revision if from_hub else None, "reference_cache": reference_cache,
            "embeddings": vectors is not None, "compile": compile,
        }  # fmt: skip
        columns, transform = _columns_and_transform(info, folder, options, precision, vectors)
        driver = JobDriver(
            run, columns, fingerprints, scorer_args, transform, address=address, resume=resume,
            batch_size=batch_size, num_actors=num_actors, decode=decode, progress=progress,
            log_every_s=log_every_s, on_rows=on_rows, stream=stream, vectors=vectors,
        )  # fmt: skip
        written = driver.score()
        if written != len(run.todo):  # Ray Data raises when a task fails for good; this is a last guard
            raise RuntimeError(f"Ray returned {written} of {len(run.todo)} rows; resume to score the rest")
        return _finish(vectors, run, written, batch_size)


def _embeddings(
    files: ExitStack,
    path: str | os.PathLike | None,
    info: MetricInfo,
    folder: Path,
    precision: str,
    items: Sequence[Mapping[str, str]],
    fingerprints: Any,
    run: JobRun,
    resume: bool,
    stream: TextIO,
) -> JobEmbeddings | None:
    """The job's embeddings file, planned and locked (with a model on this machine's CPU), or `None`."""
    if path is None:
        return None
    files.enter_context(result_lock(path))
    model = create_metric(info.name, folder, device="cpu", precision=precision)
    vectors = JobEmbeddings(path, info, model, items, fingerprints, run.job, resume=resume, stream=stream)
    files.callback(vectors.close)
    return vectors


def _finish(vectors: JobEmbeddings | None, run: JobRun, written: int, batch_size: int) -> dict[str, Any]:
    """The summary, after embedding on this machine the job's images without a row (items done before)."""
    if vectors is None:
        return run.summary()
    try:
        vectors.open().fill(batch_size)
    except KeyboardInterrupt:
        raise run.interrupted(written) from None
    return {**run.summary(), "embeddings": vectors.summary()}


def _columns_and_transform(
    info: MetricInfo, folder: Path, options: Mapping[str, Any], precision: str, vectors: JobEmbeddings | None = None
) -> tuple[dict[str, str], Callable[[Any], Any]]:
    """The result columns and the picklable image transform, from the metric loaded once on the driver's CPU.

    The columns are exactly the local engine's; the blank image they are probed with is
    checked against the metric's declaration here, before Ray starts (`MetricContractError`).
    """
    local_model = (
        vectors.metric if vectors is not None else create_metric(info.name, folder, device="cpu", precision=precision)
    )
    return result_columns(info, local_model, options), local_model.image_transform()


def _checked_items(
    info: MetricInfo,
    items: Sequence[Mapping[str, str]] | str | os.PathLike,
    out: Path,
    batch_size: int,
    address: str | None,
    *,
    resume: bool,
    overwrite: bool,
    embeddings: str | os.PathLike | None = None,
    precision: str = "fp32",
    reference_cache: int = 0,
) -> list[Mapping[str, str]]:
    """The job's items (read from a manifest if one is named), after the checks that cost nothing."""
    _check_precision(precision)  # "auto" refused before any work
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidOptionError(f"batch_size must be a positive integer, got {batch_size!r}")
    if address is not None:
        check_ray_address(address)  # before any work: a wrong address fails in seconds, not minutes
    if isinstance(items, (str, os.PathLike)):
        manifest = Path(items).absolute()
        items = read_manifest(manifest, info)
        inputs = JobInputs(items, files=[manifest])
    else:
        items = list(items)
        inputs = JobInputs(items)
    check_output(out, inputs, resume=resume, overwrite=overwrite)  # not over an input image
    if embeddings is not None:
        info.require_embeddings("--embeddings")
        check_embeddings_output(embeddings, out, inputs, resume=resume, overwrite=overwrite)
    if not items:
        raise InvalidInputError("the job has no items")
    if reference_cache:
        _check_reference_cache(info)
    return items


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
