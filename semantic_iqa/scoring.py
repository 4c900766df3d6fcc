"""The one batch-scoring loop: decode and preprocess items (in worker processes), batch, move.

Every path that scores many images uses it: `Metric.predict`, `semantic-iqa score-dir`,
the feature cache of training, the benchmarks. Items are columns of equal length: image
columns (paths, PIL images, arrays, tensors) go through the metric's picklable
`image_transform` in the DataLoader's workers; other columns (names, prompts, keys) pass
through as lists. An item whose image cannot be decoded is reported with its error and the
rest of its batch is still scored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .errors import SemanticIQAError


@dataclass
class Batch:
    """One batch of decoded items.

    Attributes:
        indices: positions (in the input columns) of the items decoded without error.
        images: image column -> [N, 3, S, S] float tensor in [0, 1], on the target device.
        extras: other column -> list of N values, for the same items.
        failures: (position, error) of each item that could not be decoded.
    """

    indices: list[int]
    images: dict[str, torch.Tensor]
    extras: dict[str, list[Any]]
    failures: list[tuple[int, SemanticIQAError]]

    def __len__(self) -> int:
        return len(self.indices)


class _Items(Dataset):
    def __init__(self, columns: dict[str, Sequence[Any]], image_columns: Sequence[str], transform: Callable) -> None:
        self.columns, self.image_columns, self.transform = columns, tuple(image_columns), transform
        self.length = len(next(iter(columns.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[int, dict[str, torch.Tensor] | None, dict[str, Any], Exception | None]:
        extras = {name: values[index] for name, values in self.columns.items() if name not in self.image_columns}
        try:
            images = {name: self.transform(self.columns[name][index]) for name in self.image_columns}
        except SemanticIQAError as exc:  # reported with its item; the others are still scored
            return index, None, extras, exc
        return index, images, extras, None


def _collate(items: list[tuple[int, Any, dict[str, Any], Exception | None]]) -> Batch:
    good = [item for item in items if item[3] is None]
    names = list(good[0][1]) if good else []
    return Batch(
        indices=[item[0] for item in good],
        images={name: torch.stack([item[1][name] for item in good]) for name in names},
        extras={name: [item[2][name] for item in good] for name in (items[0][2] if items else {})},
        failures=[(item[0], item[3]) for item in items if item[3] is not None],
    )


def iterate_batches(
    columns: dict[str, Sequence[Any]],
    image_columns: Sequence[str],
    transform: Callable[[Any], torch.Tensor],
    *,
    batch_size: int = 16,
    workers: int = 0,
    device: torch.device | str | None = None,
    progress: bool | None = False,
    unit: str = "item",
) -> Iterator[Batch]:
    """Yield `Batch`es of `columns` in order, images transformed and moved to `device`.

    Args:
        columns: column name -> values, all of one length (one entry per item).
        image_columns: the columns holding images; each goes through `transform`.
        transform: one image -> [3, S, S] tensor; must be picklable when `workers` > 0.
        batch_size: items per batch.
        workers: decoding processes (0 = decode in this process).
        device: where the image tensors go (pinned memory and non-blocking copies for CUDA).
        progress: show a progress bar counting items (`None`: only on a terminal).
        unit: the bar's unit ("pair", "image").
    """
    if not columns or len({len(values) for values in columns.values()}) != 1:
        raise ValueError("columns must be non-empty and of one length")
    device = torch.device(device) if device is not None else None
    dataset = _Items(columns, image_columns, transform)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device is not None and device.type == "cuda",
    )
    with tqdm(
        total=len(dataset), unit=unit, disable=None if progress is None else not progress, dynamic_ncols=True
    ) as bar:
        for batch in loader:
            if device is not None:
                batch.images = {name: t.to(device, non_blocking=True) for name, t in batch.images.items()}
            yield batch
            bar.update(len(batch.indices) + len(batch.failures))
