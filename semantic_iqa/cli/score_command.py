"""`semantic-iqa score`: one item (REF DIST) or a few images, scored and printed (`--json`: JSON Lines).

Generic: the metric's declared inputs say how the arguments are read, its scoring options come
from its flags (`metric_flags`), and every record is checked against its declared result fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..contract import check_record
from ..errors import InvalidInputError, InvalidOptionError
from ..registry import MetricInfo, list_metrics, metric_info
from . import exit_codes
from .metric_flags import scoring_options

# The model (torch and the backbone libraries) is imported in the handler, not here: building
# the parser (`semantic-iqa --help`) must stay cheap.
if TYPE_CHECKING:
    from ..metric import Metric


def load_metric(name: str, weights: Any, device: str, precision: str, compile: bool = False) -> Metric:
    """`semantic_iqa.api.load_metric`, imported when a command first needs a model.

    `--precision auto`: says on stderr what it resolved to (stdout carries only the results).
    """
    from ..api import load_metric as load

    metric = load(name, weights, device, precision, compile)
    if precision == "auto":
        print(f"semantic-iqa: --precision auto: {metric.precision} on {metric.device}", file=sys.stderr)
    return metric


def prompt_metrics() -> str:
    """Which metrics take a prompt, for help and messages ("for metrics whose inputs include a prompt: ...")."""
    names = [info.name for info in list_metrics() if "prompt" in info.inputs]
    return f"for metrics whose inputs include a prompt: {', '.join(names) or 'none installed'}"


def embedding_metrics() -> str:
    """Which metrics give image embeddings, for help ("for metrics with image embeddings: ...")."""
    names = [info.name for info in list_metrics() if info.embeddings]
    return f"for metrics with image embeddings: {', '.join(names) or 'none installed'}"


def image_roles(info: MetricInfo) -> list[str]:
    """The metric's image inputs in call order (`ref`, `dist`; or `image`)."""
    return [role for role in info.inputs if role != "prompt"]


def _check_inputs(info: MetricInfo, images: list[str], prompts: list[str] | None) -> None:
    roles = image_roles(info)
    if len(roles) > 1 and len(images) != len(roles):
        kind = "full-reference" if info.kind == "FR" else f"scored on {len(roles)} images at once"
        wanted = " ".join(role.upper() for role in roles)
        raise InvalidInputError(f"{info.name} is {kind}: give {wanted}, got {len(images)} image(s)")
    wants_prompt = "prompt" in info.inputs
    if wants_prompt and (prompts is None or len(prompts) != len(images) // len(roles)):
        raise InvalidInputError(f"{info.name} needs one --prompt per {info.unit} ({len(images)} image(s))")
    if not wants_prompt and prompts:
        raise InvalidOptionError(f"--prompt is {prompt_metrics()}; not {info.name}")


def score_command(args: argparse.Namespace) -> int:
    """`semantic-iqa score`: each item through `predict`, its records checked against the declaration."""
    info = metric_info(args.metric)
    _check_inputs(info, args.images, args.prompt)
    options = scoring_options(info, args)
    metric = load_metric(info.name, args.weights, args.device, args.precision, args.compile)
    roles = image_roles(info)
    if len(roles) == 1:  # one or more items: IMAGE...
        columns: list[Any] = [args.images]
        items = [{roles[0]: image} for image in args.images]
    else:  # one item: its images in the declared order (REF DIST)
        columns = list(args.images)
        items = [dict(zip(roles, args.images, strict=True))]
    for item, prompt in zip(items, args.prompt or [], strict=False):
        item["prompt"] = prompt
    records = metric.predict(*columns, prompts=args.prompt, **options).to_records()
    for record in records:  # a plug-in whose figures differ from its declaration: one typed error
        check_record(info.name, info.result_fields, record)
    if args.json:  # JSON Lines, one shape for every metric: the item's inputs, then its figures
        for item, record in zip(items, records, strict=True):
            print(json.dumps({"metric": info.name, **item, **record}))
    elif len(records) == 1:
        print(f"{records[0]['score']:.4f}")
    else:
        for item, record in zip(items, records, strict=True):
            print(f"{record['score']:.4f}\t{item[roles[-1]]}")
    return exit_codes.OK
