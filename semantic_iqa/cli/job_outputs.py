"""`score-dir`'s outputs, checked before the model loads, and the command line that resumes a job.

Every output (`--out`, `--json FILE`, `--report`) goes through `semantic_iqa.outputs`: never
over an input or into the `--weights` folder, never over an existing file unless asked.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError, InvalidOptionError
from .arg_types import DEFAULT_WORKERS
from .metric_flags import given_flags

if TYPE_CHECKING:
    from ..jobs.items import JobInputs


def check_job_outputs(args: argparse.Namespace, inputs: JobInputs) -> None:
    """Refuse, before any model work, every output of the job that cannot or must not be written."""
    from ..jobs import check_output

    guarded = replace(inputs, folders=[*inputs.folders, *local_folder(args.weights)])
    check_output(args.out, guarded, resume=args.resume, overwrite=args.overwrite)
    if args.json and args.json != "-":  # "-" is standard output
        _check_json(Path(args.json), args, guarded)
    if args.report:
        _check_report(Path(args.report), args, guarded)
    if getattr(args, "embeddings", None):
        from ..jobs.embeddings import check_embeddings_output

        taken = (args.json if args.json != "-" else None, args.report)
        check_embeddings_output(
            args.embeddings, args.out, guarded, resume=args.resume, overwrite=args.overwrite, taken=taken
        )


def _check_json(path: Path, args: argparse.Namespace, inputs: JobInputs) -> None:
    """Refuse a --json FILE that cannot or must not be written, before any scoring."""
    from ..jobs.results import sidecar_path
    from ..outputs import check_output_file, is_summary_of

    out = Path(args.out)
    if path.resolve() in (out.resolve(), sidecar_path(out).resolve()):
        raise InvalidInputError(f"--json {path} would be overwritten by the results (--out {out}); give another name")
    # A resumed job may replace the summary an earlier run of it wrote, never any other file.
    replace_it = args.overwrite or (args.resume and is_summary_of(path, out))
    check_output_file(path, overwrite=replace_it, inputs=inputs, option="--json")


def local_folder(weights: str | None) -> list[Path]:
    """`[folder]` when `--weights` names a local folder (an input: nothing is written into it), else `[]`."""
    return [Path(weights).expanduser()] if weights and Path(weights).expanduser().is_dir() else []


def _check_report(path: Path, args: argparse.Namespace, inputs: JobInputs) -> None:
    """Refuse a --report that cannot or must not be written, before any scoring."""
    from ..jobs.report import is_report, require_matplotlib
    from ..jobs.results import sidecar_path
    from ..outputs import check_output_file

    require_matplotlib()
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidOptionError(f"--report {path}: the report is an HTML file (.html)")
    taken = {Path(args.out).resolve(), sidecar_path(args.out).resolve()}
    if args.json and args.json != "-":
        taken.add(Path(args.json).resolve())
    if path.resolve() in taken:
        raise InvalidInputError(f"--report {path} would overwrite another output of this job; give another name")
    # A resumed job may replace the report an earlier run of it wrote, never any other file.
    replace_it = args.overwrite or (args.resume and path.is_file() and is_report(path))
    check_output_file(path, overwrite=replace_it, inputs=inputs, option="--report")


def resume_command(args: argparse.Namespace) -> str:
    """The command line that resumes this `score-dir` job (its non-default options, plus --resume)."""
    from ..registry import default_metric

    argv = ["semantic-iqa", "score-dir", *args.folders]
    defaults = {"metric": default_metric(), "device": "auto", "precision": "fp32", "engine": "local", "log_every": 30.0}
    defaults.update(batch_size=16, workers=DEFAULT_WORKERS, report_worst=8, report_method="auto")
    names = ("manifest", "out", "metric", "weights", "prompts", "device", "precision", "batch_size", "workers")
    names += ("engine", "ray_address", "log_every", "json", "report", "report_worst", "report_method", "embeddings")
    for name in names:
        value = getattr(args, name)
        if value is not None and value != defaults.get(name):
            argv += ["--" + name.replace("_", "-"), str(value)]
    if getattr(args, "compile", False):  # a flag: no value
        argv.append("--compile")
    return shlex.join([*argv, *given_flags(args), "--resume"])  # the metric's own options (flags) last
