"""The one batch-scoring loop (`semantic_iqa.scoring.iterate_batches`), on columns whose items differ.

Every path that scores many images goes through it (predict, score-dir, the feature caches); the
jobs tests cover it end to end. Here its contract, item by item: order, batch sizes, the other
columns passed through beside the images of the items that decoded, failures reported with their
position while the rest of the batch is scored (a batch of failures only included), the device.
"""

from __future__ import annotations

import os
import re

import pytest
import torch

from semantic_iqa.errors import ImageLoadError
from semantic_iqa.scoring import iterate_batches


def decode(value: int) -> torch.Tensor:
    """A stand-in for a metric's image transform: the value as a 3x2x2 image; a negative one is undecodable."""
    if value < 0:
        raise ImageLoadError(f"cannot decode item {value}")
    return torch.full((3, 2, 2), float(value))


COLUMNS = {"ref": [1, 2, -3, 4, -5, -6, 7], "dist": [10, 20, 30, 40, 50, 60, 70], "name": list("abcdefg")}


def test_batches_keep_order_pass_other_columns_through_and_report_failures():
    batches = list(iterate_batches(COLUMNS, ["ref", "dist"], decode, batch_size=3))
    assert [len(batch) for batch in batches] == [2, 1, 1]  # batches of 3 items; failed ones not counted
    first, second, third = batches
    assert first.indices == [0, 1] and first.extras == {"name": ["a", "b"]}
    assert first.images["ref"][:, 0, 0, 0].tolist() == [1.0, 2.0]
    assert first.images["dist"][:, 0, 0, 0].tolist() == [10.0, 20.0]
    assert [(index, str(error)) for index, error in first.failures] == [(2, "cannot decode item -3")]
    assert second.indices == [3] and second.extras == {"name": ["d"]}
    assert [index for index, _ in second.failures] == [4, 5]
    assert third.indices == [6] and third.extras == {"name": ["g"]} and third.failures == []
    assert all(isinstance(error, ImageLoadError) for batch in batches for _, error in batch.failures)


def test_a_batch_in_which_every_item_fails_is_reported_not_raised():
    (batch,) = iterate_batches({"ref": [-1, -2], "id": ["x", "y"]}, ["ref"], decode, batch_size=4)
    assert len(batch) == 0 and batch.indices == [] and batch.images == {}
    assert batch.extras == {"id": []}
    assert [index for index, _ in batch.failures] == [0, 1]


def test_columns_of_unequal_length_or_none_are_refused():
    with pytest.raises(ValueError, match="^columns must be non-empty and of one length$"):
        next(iterate_batches({"ref": [1, 2], "dist": [1]}, ["ref", "dist"], decode))
    with pytest.raises(ValueError, match="^columns must be non-empty and of one length$"):
        next(iterate_batches({}, ["ref"], decode))


def test_images_go_to_the_device_asked_for():
    # "meta" stands in for a GPU: the images move, the other columns stay plain lists.
    (batch,) = iterate_batches({"ref": [1, 2], "id": ["x", "y"]}, ["ref"], decode, batch_size=2, device="meta")
    assert batch.images["ref"].device.type == "meta" and batch.extras == {"id": ["x", "y"]}
    (batch,) = iterate_batches({"ref": [1, 2]}, ["ref"], decode, batch_size=2)
    assert batch.images["ref"].device.type == "cpu"


def test_the_progress_bar_counts_every_item_failed_ones_included(capsys):
    list(iterate_batches(COLUMNS, ["ref", "dist"], decode, batch_size=3, progress=True, unit="pair"))
    bar = capsys.readouterr().err
    assert "7/7" in bar and re.search(r"pair/s|s/pair", bar), bar
    list(iterate_batches(COLUMNS, ["ref", "dist"], decode, batch_size=3, progress=True))
    assert re.search(r"item/s|s/item", capsys.readouterr().err)  # the default unit
    list(iterate_batches(COLUMNS, ["ref", "dist"], decode, batch_size=3))
    assert capsys.readouterr().err == ""  # no bar by default


def decode_in(value: int) -> torch.Tensor:
    """The id of the process that decoded the item, as an image (exact in float32: ids are < 2**24)."""
    return torch.full((3, 1, 1), float(os.getpid()))


def test_batches_of_16_decoded_in_this_process_by_default_and_in_workers_when_asked():
    batches = list(iterate_batches({"ref": list(range(20))}, ["ref"], decode_in))
    assert [len(batch) for batch in batches] == [16, 4]
    assert {int(v) for batch in batches for v in batch.images["ref"][:, 0, 0, 0]} == {os.getpid()}
    (batch,) = iterate_batches({"ref": [0, 1]}, ["ref"], decode_in, workers=1)
    assert os.getpid() not in {int(v) for v in batch.images["ref"][:, 0, 0, 0]}  # a worker process decoded them
