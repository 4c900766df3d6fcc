"""The driver's side of a Ray job: the pipeline of actors, and the rows saved and counted as they arrive."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import ray
import ray.data

from ..errors import SemanticIQAError
from ..jobs.embeddings import JobEmbeddings
from ..jobs.items import image_columns
from ..jobs.planner import JobRun, ProgressLog
from ..jobs.results import ResultWriter
from .cluster import ActorPlan, _connected, _quiet_ray_data, plan_actors
from .scorer import (
    _BATCHES_PER_BLOCK,
    _MAX_BLOCKS,
    EMBEDDING_SUFFIX,
    ROW_COLUMN,
    ImageDecoder,
    PairScorer,
    embedding_rows,
)


@dataclass
class JobDriver:
    """A planned job's Ray side: the pipeline of actors, and the driver saving and counting its rows."""

    run: JobRun
    columns: dict[str, str]
    fingerprints: Iterable[str]
    scorer_args: dict[str, Any]
    transform: Callable[[Any], Any]
    address: str | None
    resume: bool
    batch_size: int
    num_actors: int | None
    decode: str
    progress: bool | None
    log_every_s: float
    on_rows: Callable[[int, int], None] | None
    stream: TextIO
    vectors: JobEmbeddings | None = None  # the job's embeddings file (`jobs.embeddings`), when asked for

    def score(self) -> int:
        """Score the run's items to do on Ray, writing each row once; returns the rows written.

        Raises `JobInterrupted` on Ctrl-C after what arrived is saved, and the package's own
        error (e.g. an actor's `MetricContractError`) as itself, not as Ray's wrapper of it.
        """
        run, writer = self.run, None
        rows = [
            {**{name: item[name] for name in ("id", *run.info.inputs)}, "input_signature": signature}
            for item, signature in run.todo
        ]
        try:
            with _connected(self.address) as where, _quiet_ray_data():
                resources = ray.cluster_resources()
                plan = plan_actors(resources.get("CPU", 1), resources.get("GPU", 0), self.num_actors, self.decode)
                print(
                    f"semantic-iqa: {len(rows)} {run.info.unit}(s) on {where}: {plan.note}",
                    file=self.stream,
                    flush=True,
                )
                scored = self._pipeline(_job_dataset(rows, self.batch_size), plan)
                # Opened once Ray is up: a cluster that cannot be reached leaves an earlier result as it was.
                job = {**run.job, "engine": "ray"}
                writer = ResultWriter(run.out, self.columns, self.fingerprints, job=job, resume=self.resume,
                                      keep=run.plan.keep)  # fmt: skip
                if self.vectors is not None:
                    self.vectors.open()  # closed by the engine, after this
                return self._save_rows(scored, writer, len(rows))
        except KeyboardInterrupt:  # the `finally` saves what arrived before this propagates
            raise run.interrupted(writer.rows_written if writer is not None else 0) from None
        except Exception as exc:
            own = _own_error(exc)
            if own is None:
                raise
            raise own from None
        finally:
            if writer is not None:
                writer.close()

    def _pipeline(self, dataset: ray.data.Dataset, plan: ActorPlan) -> ray.data.Dataset:
        """The items through an optional decode stage, then the scoring actors."""
        if plan.decode_stage:
            # A pool of CPU actors, not tasks: Ray Data fuses a task stage into the actors after
            # it when their resource requests match (CPU-only nodes), and the decoding would
            # silently move back into the scoring actors.
            dataset = dataset.map_batches(
                ImageDecoder,
                fn_constructor_kwargs={"transform": self.transform, "image_columns": image_columns(self.run.info)},
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=plan.decode_actors),
                num_cpus=1,
                batch_size=self.batch_size,
                batch_format="numpy",
            )
        # Ray Data restarts a killed scoring actor and runs its unfinished batches again (its
        # defaults for actor pools: max_restarts=-1, max_task_retries=-1).
        return dataset.map_batches(
            PairScorer,
            fn_constructor_kwargs={**self.scorer_args, "threads": plan.threads},
            compute=ray.data.ActorPoolStrategy(size=plan.num_actors),
            num_gpus=plan.num_gpus,
            num_cpus=plan.num_cpus,
            batch_size=self.batch_size,
            batch_format="numpy",
        )

    def _save_rows(self, scored: ray.data.Dataset, writer: ResultWriter, total: int) -> int:
        """Write the scored rows as they arrive, each job row once (a retried task may deliver a row twice)."""
        from tqdm.auto import tqdm

        written = repeated = 0
        seen = np.zeros(total, dtype=bool)  # one byte per row: cheap at 10 million rows
        unit, stream = self.run.info.unit, self.stream
        log = (
            ProgressLog(total, unit, self.log_every_s, stream)
            if self.progress is None and not stream.isatty()
            else None
        )
        batches = scored.iter_batches(batch_size=None, batch_format="pyarrow")
        roles = image_columns(self.run.info)
        bar = tqdm(total=total, unit=unit, disable=None if self.progress is None else not self.progress, file=stream)
        try:
            for table in batches:
                table, embedded = _split_embeddings(table, roles)
                rows, ok_rows = [], []
                for index, row in enumerate(table.to_pylist()):
                    position = row.pop(ROW_COLUMN)
                    if seen[position]:
                        repeated += 1
                        continue
                    seen[position] = True
                    rows.append(row)
                    if row["status"] == "ok":
                        ok_rows.append(index)
                if self.vectors is not None:  # the embeddings of the rows scored, each image once
                    items = table.select(roles).take(ok_rows).to_pylist()
                    self.vectors.add(items, {role: values[ok_rows] for role, values in embedded.items()})
                writer.write(rows)
                self.run.count(rows)
                written += len(rows)
                bar.update(len(rows))
                if log is not None:
                    log.update(len(rows), sum(row["status"] != "ok" for row in rows))
                if self.on_rows is not None:
                    self.on_rows(written, total)
        finally:
            bar.close()
            # Closing the iterator now (not when it is garbage-collected) stops Ray Data's
            # executor and frees the actors' CPUs and GPUs for the next job, also after Ctrl-C.
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        if repeated:
            print(f"semantic-iqa: {repeated} row(s) delivered twice by retried Ray tasks, saved once", file=stream)
        return written


def _split_embeddings(table: pa.Table, roles: list[str]) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """The table without its `<role>__embedding` columns, and those as [N, D] arrays (none: an empty dict)."""
    names = [role + EMBEDDING_SUFFIX for role in roles if role + EMBEDDING_SUFFIX in table.column_names]
    embedded = {name[: -len(EMBEDDING_SUFFIX)]: embedding_rows(table[name]) for name in names}
    return table.drop_columns(names), embedded


def _own_error(error: BaseException) -> SemanticIQAError | None:
    """The package's own error behind a failed Ray task (Ray wraps what an actor raised), or `None`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)  # RayTaskError: what the task raised
        if isinstance(cause, BaseException):
            current = cause
        elif isinstance(current, SemanticIQAError):
            return current
        else:
            current = current.__cause__ or current.__context__
    return None


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
