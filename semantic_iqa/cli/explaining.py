"""`semantic-iqa explain`: where one pair's (or image's) score was lost, as a figure and a `.npy` map."""

from __future__ import annotations

import argparse
import json

from .arg_types import positive_int
from .metric_flags import add_scoring_flags, scoring_options

METHOD_CHOICES = ("auto", "occlusion", "gradients")  # semantic_iqa.explanation.METHODS, without importing torch


def add_commands(commands: argparse._SubParsersAction, model_options: argparse.ArgumentParser) -> None:
    explain = commands.add_parser(
        "explain",
        parents=[model_options],
        help="draw where the score was lost: REF DIST (full reference) or IMAGE (no reference) -> figure + .npy",
        description="Map where the metric's score was lost, computed through the metric itself. "
        "Positive (red) = the region made the score worse (lowered it; raised it, for a lower-is-better metric "
        "such as a distance). Writes the figure (ref | dist | map) and the raw map "
        "(OUT with .npy: float32 [H, W], score points per pixel).",
    )
    explain.add_argument("images", nargs="+", help="REF DIST for a full-reference metric; IMAGE for a no-reference one")
    explain.add_argument("--out", required=True, help="figure file (.png, .jpg, .pdf or .svg); the map goes beside it")
    explain.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        default="auto",
        help="occlusion (default on a GPU; exact to the metric's scoring), gradients (integrated gradients, "
        "default on a CPU; full reference only), or auto",
    )
    explain.add_argument("--grid", type=positive_int, default=8, help="occlusion: cells per side (default 8)")
    explain.add_argument("--steps", type=positive_int, default=16, help="gradients: path points (default 16)")
    explain.add_argument("--batch-size", type=positive_int, default=8, help="images per backbone pass")
    explain.add_argument("--prompt", help="the image's text (generation prompt), for metrics that take one")
    explain.add_argument(
        "--baseline", choices=("blur", "mean"), default="blur", help="no reference: what an occluded cell becomes"
    )
    explain.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out and its .npy (never an input image)"
    )
    explain.add_argument("--json", action="store_true", help="print the scores and written paths as JSON")
    add_scoring_flags(explain)
    explain.set_defaults(handler=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..api import load_metric
    from ..explanation import explain
    from ..explanation.figure import check_explanation_outputs
    from ..registry import metric_info
    from .job_outputs import local_folder

    out = Path(args.out)
    # Before minutes of model work: the figure and its .npy, never over an input even with --overwrite.
    inputs = [*args.images, *local_folder(args.weights)]
    check_explanation_outputs(out, overwrite=args.overwrite, inputs=inputs)
    options = scoring_options(metric_info(args.metric), args)  # an option of another metric: one line
    try:
        model = load_metric(args.metric, args.weights, args.device, args.precision)
        explanation = explain(
            *args.images,
            metric=args.metric,
            model=model,
            method=args.method,
            grid=args.grid,
            steps=args.steps,
            batch_size=args.batch_size,
            prompt=args.prompt,
            baseline=args.baseline,
            **options,
        )
    except KeyboardInterrupt:  # `main` prints it as one line, status 130
        raise KeyboardInterrupt(f"nothing was written ({out} and its .npy)") from None
    figure_path, array_path = explanation.save(out, overwrite=args.overwrite, inputs=inputs)
    if args.json:
        summary = {
            **explanation.record(),  # score and the metric's declared result fields, as `score --json`
            "method": explanation.method,
            "settings": explanation.settings,
            "random_weights": explanation.random_weights,
            "figure": str(figure_path),
            "map": str(array_path),
        }
        print(json.dumps(summary))
    else:
        print(explanation.caption())
        print(f"wrote {figure_path} and {array_path}")
    return 0
