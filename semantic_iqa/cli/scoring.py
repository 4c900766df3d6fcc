"""`semantic-iqa score` and `semantic-iqa score-dir`, for every metric (`--metric NAME`).

`score-dir` runs a scoring job (`semantic_iqa.jobs`): it refuses to write over its inputs or
an earlier result, saves rows as they are scored, resumes with `--resume`, and ends a
Ctrl-C with one line (status 130) saying how to resume.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError
from ..registry import MetricInfo, metric_info
from . import exit_codes
from .arg_types import DEFAULT_WORKERS, non_negative_int, positive_int
from .job_outputs import check_job_outputs, resume_command
from .metric_flags import add_scoring_flags, scoring_options
from .score_command import embedding_metrics, load_metric, prompt_metrics, score_command

# The model, the Hub and the job runner (torch and the backbone libraries) are imported in the
# commands' handlers, not here: building the parser (`semantic-iqa --help`) must stay cheap.
if TYPE_CHECKING:
    from ..jobs import JobInputs

COMPILE_HELP = (
    "torch.compile the backbones: faster once warm, but each new batch size compiles first (seconds on a GPU, "
    "minutes on a CPU, which needs a C++ compiler); for long runs"
)


# long: a table of argparse flags, one add_argument each; splitting it would only scatter the table
def add_commands(commands: argparse._SubParsersAction, model_options: argparse.ArgumentParser) -> None:
    score = commands.add_parser(
        "score",
        parents=[model_options],
        help="score one pair (full-reference metrics: REF DIST) or images (no-reference metrics) and print it",
    )
    score.add_argument(
        "images", nargs="+", help="REF DIST for a full-reference metric; IMAGE... for a no-reference one"
    )
    score.add_argument("--prompt", action="append", help=f"once per image, {prompt_metrics()}")
    score.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per scored item (JSON Lines): its inputs and every figure of the metric",
    )
    score.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    add_scoring_flags(score)
    score.set_defaults(handler=score_command)

    score_dir = commands.add_parser(
        "score-dir",
        parents=[model_options],
        help="score a folder (REF_DIR DIST_DIR, or IMAGE_DIR) or a manifest into a CSV or Parquet result; resumable",
    )
    score_dir.add_argument(
        "folders",
        nargs="*",
        help="REF_DIR DIST_DIR for a full-reference metric (paired by relative path and name without extension), "
        "IMAGE_DIR for a no-reference one; none with --manifest",
    )
    score_dir.add_argument(
        "--manifest", help="CSV or Parquet with columns ref,dist (or image[,prompt]) [,id]; paths relative to it"
    )
    score_dir.add_argument(
        "--out", required=True, help="result file, .csv or .parquet: one row per pair or image, with its status"
    )
    score_dir.add_argument("--prompts", help=f"CSV of image_name,prompt (or AGIQA's name,prompt), {prompt_metrics()}")
    score_dir.add_argument(
        "--json",
        metavar="FILE",
        help="also write the summary (counts, mean score, model, version, time) to FILE; '-' = standard output",
    )
    score_dir.add_argument(
        "--embeddings",
        metavar="FILE.parquet",
        help=f"also write each unique image's embedding to FILE (one row per image: path, roles, embedding), "
        f"{embedding_metrics()}; resumed and replaced with --out",
    )
    score_dir.add_argument("--resume", action="store_true", help="finish an interrupted --out: skip rows already done")
    score_dir.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out (and --json, --report); never an input"
    )
    score_dir.add_argument(
        "--report",
        metavar="HTML",
        help="also write one self-contained HTML page: score distribution, worst items with explanation maps, "
        "the items each metric flags (its declared flags) and failed items, model and settings ([viz] extra)",
    )
    score_dir.add_argument(
        "--report-worst",
        type=non_negative_int,
        default=8,
        metavar="N",
        help="--report: explain the N worst-scoring items (the lowest; the highest for a lower-is-better metric; "
        "default 8; 0 = no maps)",
    )
    score_dir.add_argument(
        "--report-method",
        choices=("auto", "occlusion", "gradients"),
        default="auto",
        help="--report: how the maps are computed (see `semantic-iqa explain --help`)",
    )
    score_dir.add_argument("--batch-size", type=positive_int, default=16, help="items per backbone pass")
    score_dir.add_argument("--workers", type=non_negative_int, default=DEFAULT_WORKERS, help="decoding processes")
    score_dir.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local (default) or ray (Ray Data; [ray] extra)"
    )
    score_dir.add_argument("--ray-address", help="--engine ray: the cluster to join (default: start a local Ray)")
    score_dir.add_argument(
        "--log-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="without a terminal: a progress line every SECONDS (default 30)",
    )
    score_dir.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    add_scoring_flags(score_dir)
    score_dir.set_defaults(handler=score_dir_command)


def score_dir_command(args: argparse.Namespace) -> int:
    """`semantic-iqa score-dir`: one job (folders or a manifest) through the local or the Ray engine."""
    try:
        return _score_dir(args)
    except KeyboardInterrupt as stop:  # one line, not a traceback; the rows so far are saved
        from ..jobs import JobInterrupted

        if isinstance(stop, JobInterrupted):
            where = f"{stop.done} of {stop.total} rows are saved in {stop.out}"
        else:
            where = f"{args.out} is as it was"
        print(f"semantic-iqa: interrupted: {where}; resume with: {resume_command(args)}", file=sys.stderr)
        return exit_codes.INTERRUPTED


def _score_dir(args: argparse.Namespace) -> int:
    from ..hub import locate_weights, resolve_weights
    from ..jobs import job_items, run_job
    from ..jobs.items import some

    info = metric_info(args.metric)
    if args.embeddings:  # from the entry alone, before any model or file is touched
        info.require_embeddings("--embeddings")
    options = scoring_options(info, args)
    if args.ray_address and args.engine != "ray":
        raise InvalidOptionError("--ray-address is for --engine ray")
    inputs = job_items(info, folders=args.folders, manifest=args.manifest, prompts=args.prompts)
    check_job_outputs(args, inputs)  # before the model loads
    for folder, lonely in zip(args.folders, (inputs.only_ref, inputs.only_dist), strict=False):
        if lonely:
            print(
                f"semantic-iqa: warning: {len(lonely)} file(s) only in {folder}, not scored: {some(lonely)}",
                file=sys.stderr,
            )
    metric = None
    if args.engine == "ray":
        summary = _run_ray(info, args, options, inputs)
    else:
        _, name, revision = locate_weights(args.weights, None, info)  # what the user named: folder or repo id
        folder = resolve_weights(args.weights, None, info)
        if folder.parent.name == "snapshots":  # a Hub snapshot: its folder name is the commit actually used
            revision = folder.name
        metric = load_metric(info.name, folder, args.device, args.precision, args.compile)
        summary = run_job(
            info,
            metric,
            inputs.items,
            args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=None,  # a bar on a terminal, log lines otherwise
            log_every_s=args.log_every,
            options=options,
            weights=name,
            revision=revision,
            weights_folder=folder,
            inputs=inputs,
            embeddings=args.embeddings,
        )
    status = _report(summary, info, args)
    if args.report:  # after the summary line: the job's results are safe before minutes of explaining
        _write_report(info, args, summary, None if args.compile else metric)  # maps: an eager model
    return status


def _write_report(info: MetricInfo, args: argparse.Namespace, summary: dict[str, Any], metric: Any) -> None:
    from ..jobs.report import write_report

    if metric is None:  # scored on Ray's workers, or compiled: explain with an eager model here
        metric = load_metric(info.name, args.weights, args.device, args.precision)
    if args.report_worst:
        worst = "lowest" if info.higher_is_better else "highest"  # the worst, by the metric's direction
        print(f"report: explaining the {args.report_worst} {worst}-scoring item(s)", file=sys.stderr, flush=True)
    path = write_report(
        args.report, args.out, info, metric, summary, worst=args.report_worst, method=args.report_method
    )
    print(f"report -> {path}", file=sys.stderr)


def _run_ray(info: MetricInfo, args: argparse.Namespace, options: dict[str, Any], inputs: JobInputs) -> dict:
    """The same job on Ray Data (`semantic_iqa.ray`, imported only here: the core never needs Ray)."""
    try:
        from .. import ray as ray_engine
    except ModuleNotFoundError as exc:
        if exc.name == "semantic_iqa.ray":
            raise InvalidOptionError("--engine ray: this semantic-iqa has no Ray engine (semantic_iqa.ray)") from None
        if exc.name and exc.name.split(".")[0] in ("ray", "pyarrow"):
            raise InvalidOptionError(f"--engine ray needs {exc.name}: pip install 'semantic-iqa[ray]'") from None
        raise
    summary = ray_engine.run_ray_job(
        info,
        args.weights,
        options,
        inputs.items,
        args.out,
        address=args.ray_address,
        resume=args.resume,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        precision=args.precision,
        compile=args.compile,
        log_every_s=args.log_every,
        embeddings=args.embeddings,
    )
    # The engine saw only the paired items; the folders' unpaired files are the command's to report.
    summary.update(only_in_ref=list(inputs.only_ref), only_in_dist=list(inputs.only_dist))
    return summary


def _report(summary: dict[str, Any], info: MetricInfo, args: argparse.Namespace) -> int:
    """The summary: one line on stderr, all of it in --json FILE (or on stdout for `--json -`).

    Human lines go to stderr so that stdout carries only what a program reads (`| jq`).
    Returns `exit_codes.SOME_ITEMS_FAILED` when some items could not be scored, else `OK`.
    """
    unit = info.unit
    if summary["ok"]:
        before = f", {summary['skipped']} of them done before" if summary["skipped"] else ""
        print(
            f"scored {summary['ok']} {unit}(s){before}, mean score {summary['mean_score']:.4f} -> {summary['out']} "
            f"({summary['wall_time_s']:.1f} s)",
            file=sys.stderr,
        )
    if summary.get("embeddings"):
        vectors = summary["embeddings"]
        print(f"embeddings of {vectors['images']} image(s) -> {vectors['out']}", file=sys.stderr)
    if args.json == "-":
        print(json.dumps(summary, indent=2), flush=True)
    elif args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if summary["failed"]:
        print(
            f"semantic-iqa: error: {summary['failed']} of {summary['total']} {unit}(s) could not be scored "
            f"(first: {summary.get('first_error')}); see the status column of {summary['out']}",
            file=sys.stderr,
        )
        return exit_codes.SOME_ITEMS_FAILED
    return exit_codes.OK
