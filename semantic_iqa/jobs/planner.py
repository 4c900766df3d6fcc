"""One plan for a scoring job, whatever engine scores it (`jobs.local`, `semantic_iqa.ray`).

Before scoring: may the result file be written (`check_output`), which items are done
already and which to score (`resume.plan_job`), the warnings and the "resuming" line
(`plan_run`). While scoring: each written row counted once (`JobRun.count`). After: the
summary (`JobRun.summary`), or `JobInterrupted` on Ctrl-C. An engine only decodes, scores
and writes; nothing here names a metric (what a row holds is the metric's declaration).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ..errors import InvalidOptionError, OutputError
from ..outputs import check_not_input, check_output_file
from ..registry import MetricInfo
from .columns import text_columns
from .items import JobInputs, image_columns
from .results import output_format, result_exists, sidecar_path, summary
from .resume import ResumePlan, plan_job

__all__ = ["JobInterrupted", "JobRun", "ProgressLog", "check_output", "plan_run"]


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


@dataclass
class JobRun:
    """A planned job: what is scored, what stands, and the counts of the whole result.

    Attributes:
        info: the metric's registry entry.
        out: the result file.
        engine: "local" or "ray" (the summary says which).
        total: items of the job.
        plan: the resume plan (`todo`, `skipped`, `keep`, the tally of the rows kept).
        job: metric, weights, revision, options and precision: what the sidecar and the summary record.
        started: `time.perf_counter()` when the job started (its wall time is from then).
    """

    info: MetricInfo
    out: Path
    engine: str
    total: int
    plan: ResumePlan
    job: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)

    @property
    def todo(self) -> list[tuple[Mapping[str, str], str]]:
        """(item, input signature) of each item to score, in the job's order."""
        return self.plan.todo

    def count(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows written by this run to the counts (`status` "ok" with a score, or failed)."""
        for row in rows:
            self.plan.tally.add(row["status"], row["score"])

    def interrupted(self, written: int) -> JobInterrupted:
        """The `JobInterrupted` to raise after this run wrote `written` rows and saved them."""
        return JobInterrupted(self.out, written, self.plan.skipped + written, self.total)

    def summary(self, only_ref: Sequence[str] = (), only_dist: Sequence[str] = ()) -> dict[str, Any]:
        """The job's summary (`results.summary`): counts over the whole result, this run's wall time."""
        tally = self.plan.tally
        return summary(
            metric=self.info.name,
            weights=self.job["weights"],
            revision=self.job["revision"],
            options=self.job["options"],
            precision=self.job.get("precision"),
            out=self.out,
            engine=self.engine,
            ok=tally.ok,
            failed=tally.failed,
            skipped=self.plan.skipped,
            mean_score=tally.mean_score,
            wall_time_s=time.perf_counter() - self.started,
            only_ref=only_ref,
            only_dist=only_dist,
            first_error=tally.first_error,
        )


def plan_run(
    info: MetricInfo,
    out: str | os.PathLike,
    fingerprints: Iterable[str],
    items: Sequence[Mapping[str, str]],
    *,
    resume: bool,
    engine: str,
    options: Mapping[str, Any],
    weights: str | None,
    revision: str | None,
    stream: TextIO,
    started: float | None = None,
    precision: str | None = None,
) -> JobRun:
    """Plan a job: which items to score, which rows of `out` stand (`resume.plan_job`); says so on `stream`.

    `precision`: the backbone precision as resolved ("fp32" or "bf16"), recorded in the sidecar and summary.
    Raises `ResultFileError` when `resume` and `out` holds another model's rows or cannot be trusted.
    """
    out = Path(out)
    plan = plan_job(out, fingerprints, items, image_columns(info), resume=resume, text=text_columns(info))
    for line in plan.warnings:
        print(f"semantic-iqa: warning: {line}", file=stream)
    if plan.existing:
        print(
            f"semantic-iqa: resuming {out}: {plan.skipped} {info.unit}(s) done already, {len(plan.todo)} to score"
            + (f" ({plan.changed} with changed inputs)" if plan.changed else ""),
            file=stream,
        )
    job = {"metric": info.name, "weights": weights, "revision": revision, "options": dict(options)}
    job["precision"] = precision
    run = JobRun(info, out, engine, len(items), plan, job)
    if started is not None:
        run.started = started
    return run
