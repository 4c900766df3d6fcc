"""A job result's columns, from the metric's declaration, and the records they are filled from.

One row per item: `id`, the inputs, `score`, `status`, the metric's declared result fields
(`MetricInfo.result_fields`: scalars in declared order, then each "floats" field spread over
`<column_prefix>_0`, `_1`, ...), `input_signature`. Nothing here names a metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from ..contract import ResultField, check_record
from ..errors import MetricContractError
from ..registry import MetricInfo
from .items import image_columns

__all__ = ["batch_records", "default_kind", "flatten_record", "result_columns", "text_columns"]

# Text columns of a result read without its metric's declaration: the input roles of the contract.
_TEXT_COLUMNS = ("id", "ref", "dist", "image", "prompt")


def flatten_record(record: Mapping[str, Any], fields: Sequence[ResultField] = ()) -> dict[str, Any]:
    """A metric's record with its lists spread over numbered columns (`<column_prefix>_0`, `_1`, ...).

    `fields` are the metric's declared result fields (their `column_prefix`); an undeclared
    list is spread under its own name.
    """
    prefixes = {field.name: field.prefix for field in fields}
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, (list, tuple)):
            flat.update({f"{prefixes.get(key, key)}_{i}": v for i, v in enumerate(value)})
        else:
            flat[key] = value
    return flat


def batch_records(
    info: MetricInfo,
    metric: Any,
    images: Mapping[str, torch.Tensor],
    extras: Mapping[str, list[Any]],
    options: Mapping[str, Any] | None = None,
    *,
    reference_cache: Any = None,
    check: bool = False,
    embeddings: dict[str, torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """The records (`MetricOutput.to_records`) of one decoded batch, scored without gradients.

    With an `embeddings` dict, the metric's `score_and_embed` scores the batch and the dict
    receives each image role's embeddings ([B, D]), from the same pass.

    With `check`, the first record is checked against the metric's declared result fields
    (`contract.check_record`): both engines check their first batch, so that a metric whose
    records differ from its declaration fails with one `MetricContractError` instead of
    writing a result file whose columns say something else.
    """
    cache = {"reference_cache": reference_cache} if reference_cache is not None else {}
    with torch.inference_mode():
        if embeddings is None:
            output = metric.score_batch(dict(images), dict(extras), **cache, **(options or {}))
        else:
            output, found = metric.score_and_embed(dict(images), dict(extras), **cache, **(options or {}))
            embeddings.update(found)
    if not callable(getattr(output, "to_records", None)):
        raise MetricContractError(
            f"{info.name}: score_batch returned a {type(output).__name__}, not a semantic_iqa MetricOutput"
        )
    records = output.to_records()
    if check and records:
        check_record(info.name, info.result_fields, records[0])
    return records


def result_columns(info: MetricInfo, metric: Any, options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The result table's columns, in order, with their kind ("str", "float", "bool", "int").

    From the metric's declaration (`MetricInfo.result_fields`): `id`, the inputs, `score`,
    `status`, the scalar fields in declared order, then each "floats" field spread over
    numbered columns, then `input_signature`. How many columns a "floats" field has (e.g. one
    per fold of the weights) comes from scoring one blank image, which is also checked
    against the declaration (`MetricContractError` before anything is written).
    """
    blank = metric.image_transform()(Image.new("RGB", (32, 32)))
    images = {name: blank.unsqueeze(0).to(metric.device) for name in image_columns(info)}
    extras = {name: ["a photo"] for name in info.inputs if name not in images}
    record = batch_records(info, metric, images, extras, options, check=True)[0]
    columns = {"id": "str", **dict.fromkeys(info.inputs, "str"), "score": "float", "status": "str"}
    spread: dict[str, str] = {}
    for field in info.result_fields:
        if field.type == "floats":  # absent (an optional field): no columns
            spread.update({f"{field.prefix}_{i}": "float" for i in range(len(record.get(field.name) or ()))})
        else:
            columns[field.name] = field.type
    return {**columns, **spread, "input_signature": "str"}


def text_columns(info: MetricInfo) -> tuple[str, ...]:
    """The columns of the metric's result that hold text: escaped in CSV, never read as numbers."""
    declared = tuple(field.name for field in info.result_fields if field.type == "str")
    return ("id", *info.inputs, "status", "input_signature", *declared)


def default_kind(name: str) -> str:
    """A column's kind when its metric's declaration is not at hand: the contract's text columns, else "float"."""
    return "str" if name in (*_TEXT_COLUMNS, "status", "input_signature") else "float"
