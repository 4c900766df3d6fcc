"""`MetricOutput`: what a metric's `score_batch` returns for B items, and how it becomes records.

A metric may return its own dataclass deriving from this one: `score` [B] first, then one
tensor per declared result field ([B] for a scalar, [B, K] for "floats"; `None` for a field
this batch does not have). `to_records` and `cat` then work without more code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch


@dataclass
class MetricOutput:
    """Scores of B items (a metric's subclass adds its figures as more tensor fields).

    Attributes:
        score: [B] the metric's score (see its registry entry for range and direction).
    """

    score: torch.Tensor

    def __len__(self) -> int:
        return int(self.score.shape[0])

    @classmethod
    def cat(cls, outputs: list[Any]) -> Any:
        """The outputs of consecutive batches as one (tensor fields concatenated; `None` stays `None`)."""
        merged = {}
        for item in fields(outputs[0]):
            values = [getattr(output, item.name) for output in outputs]
            merged[item.name] = None if values[0] is None else torch.cat(values)
        return type(outputs[0])(**merged)

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per item: floats, bools, ints, and lists of floats for [B, K] fields.

        A field that is `None` is left out (a figure this metric, or this variant, does not give).
        """
        columns: dict[str, list[Any]] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            value = value.detach().cpu()
            if value.dtype != torch.bool and not value.dtype.is_floating_point:
                columns[item.name] = [int(v) for v in value.tolist()]
            elif value.dtype == torch.bool:
                columns[item.name] = [bool(v) for v in value.tolist()]
            else:
                columns[item.name] = value.float().tolist()
        return [{name: values[index] for name, values in columns.items()} for index in range(len(self))]
