"""`PairScorer` and the decode stage: the callables `ray.data` runs on each batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from ..devices import resolve_device
from ..errors import InvalidOptionError
from ..jobs.columns import batch_records, flatten_record, result_columns
from ..jobs.items import image_columns
from ..metric import Metric
from ..precision import PRECISIONS
from ..registry import MetricInfo, create_metric, default_metric, metric_info
from ..scoring import iterate_batches

PIXELS_SUFFIX = "__pixels"  # `decode_images` puts the pixels of column `ref` in `ref__pixels`
DECODE_ERROR = "decode_error"  # ... and a row's decoding error ("" when decoded) here
EMBEDDING_SUFFIX = "__embedding"  # PairScorer(embeddings=True): the embedding of column `ref` in `ref__embedding`
ROW_COLUMN = "_job_row"  # run_ray_job: each row's position in the job, to drop a row delivered twice
_ARROW_TYPES = {"str": pa.string(), "float": pa.float64(), "bool": pa.bool_(), "int": pa.int64()}
# Rows per block of the job's dataset: a block is what one actor task takes (and what Ray
# retries when an actor dies), so a few batches each; and at most this many blocks, so the
# driver's object references stay few on a 10-million-row job.
_BATCHES_PER_BLOCK = 4
_MAX_BLOCKS = 10_000

Batch = Mapping[str, Any]  # a map_batches batch: dict of numpy arrays, pandas DataFrame or pyarrow Table


# -- the scorer (public API) -----------------------------------------------------------------


class PairScorer:
    """Scores a `ray.data` batch of items with any registered metric; for `Dataset.map_batches`.

    The metric is loaded once per actor, in the constructor (pass the arguments with
    `fn_constructor_kwargs`). Input rows need the metric's image columns (`ref` and `dist`
    for a full-reference metric, `image` for a no-reference one) as paths the actor can read,
    plus `prompt` for a metric that takes one. Columns `<image column>__pixels` and
    `decode_error` from a `decode_images` stage before it are used instead of the paths
    (and dropped from the output).

    Output: every other input column unchanged, then the result columns of the local
    engine's table, typed (Arrow): `score` (null for a failed row), `status` (`ok` or the
    error text), the metric's declared result fields (`MetricInfo.result_fields`, lists spread
    over numbered columns; null for a failed row). Any batch format works in (`"numpy"`,
    `"pandas"`, `"pyarrow"`); a `pyarrow.Table` comes out. Each batch's records are checked
    against the declaration (`MetricContractError` when they differ).

    Args:
        metric: registry name (`semantic_iqa.list_metrics()`); `None` = the default metric.
        weights: weights folder (readable on every node) or Hub repo id; `None` = the metric's default.
        options: the metric's scoring options (`MetricInfo.scoring_options`), by name.
        device: "auto"/None (the actor's GPU when Ray gave it one, else CPU), "cpu", "cuda".
        precision: backbone precision, "fp32" or "bf16" ("auto" is refused: it would resolve per
            actor, and a cluster's machines may differ).
        revision: the Hub revision (tag or commit) of `weights`.
        threads: torch threads of the actor (default: Ray's, one per CPU the actor asked for).
        reference_cache: keep the features of up to this many references in the actor (metrics
            with a reference cache, `Metric.make_reference_cache`), so a reference that comes
            back is not encoded again; 0 = off. See `semantic_iqa.ReferenceCache`.
        embeddings: also output each image's embedding (metrics declaring `embeddings`), from
            the scoring pass, as `<image column>__embedding` (fixed-size float32 lists; null
            for a failed row).
        compile: `torch.compile` the frozen encoders (`Metric.compile_encoders`; compiles on the first batches).
    """

    def __init__(
        self,
        metric: str | None = None,
        weights: str | os.PathLike | None = None,
        options: Mapping[str, Any] | None = None,
        device: str | None = None,
        precision: str = "fp32",
        revision: str | None = None,
        threads: int | None = None,
        reference_cache: int = 0,
        embeddings: bool = False,
        compile: bool = False,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.info = metric_info(metric or default_metric())
        if embeddings:
            self.info.require_embeddings("PairScorer(embeddings=True)")  # before the model is loaded
        self.embeddings = embeddings
        if reference_cache:
            _check_reference_cache(self.info)  # before the model is loaded: an option error costs nothing
        self.options = dict(options or {})
        _check_precision(precision)
        extra = {"revision": revision} if revision else {}
        target, chosen = resolve_device(device), {"precision": precision, "compile": compile}
        self.model = create_metric(self.info.name, weights, device=target, **chosen, **extra)
        self.reference_cache = self.model.make_reference_cache(reference_cache) if reference_cache else None
        if reference_cache and self.reference_cache is None:
            raise InvalidOptionError(f"{self.info.name} has no reference-feature cache")
        self.transform = self.model.image_transform()
        self.image_columns = image_columns(self.info)
        self.extra_columns = [name for name in self.info.inputs if name not in self.image_columns]
        # The same columns, in the same order and kinds, as the local engine's result table.
        inputs = {"id", *self.info.inputs, "input_signature"}
        kinds = result_columns(self.info, self.model, self.options)
        self.result_kinds = {name: kind for name, kind in kinds.items() if name not in inputs}
        self.embedding_dim = _embedding_dim(self.model) if embeddings else 0

    def __call__(self, batch: Batch) -> pa.Table:
        """Score one batch: its rows, in order, with the result columns appended."""
        columns = _numpy_columns(batch)
        count = len(next(iter(columns.values())))
        records: list[dict[str, Any] | None] = [None] * count
        statuses = [""] * count
        pixels, good = self._pixels(columns, statuses)
        found: dict[str, torch.Tensor] | None = {} if self.embeddings else None
        if good:
            extras = {name: [_plain(columns[name][i]) for i in good] for name in self.extra_columns}
            scored = batch_records(
                self.info, self.model, pixels, extras, self.options, reference_cache=self.reference_cache, check=True,
                embeddings=found,
            )  # fmt: skip
            for index, record in zip(good, scored, strict=True):
                records[index] = flatten_record(record, self.info.result_fields)
                statuses[index] = "ok"
        dropped = {DECODE_ERROR, *self.result_kinds, *(name + PIXELS_SUFFIX for name in self.image_columns)}
        table = pa.table({name: _arrow_column(values) for name, values in columns.items() if name not in dropped})
        for name, kind in self.result_kinds.items():
            if name == "status":
                values: list[Any] = statuses
            else:
                values = [None if record is None else record.get(name) for record in records]
            table = table.append_column(pa.field(name, _ARROW_TYPES[kind]), pa.array(values, _ARROW_TYPES[kind]))
        if found is not None:
            for name in self.image_columns:
                column = _embedding_column(found.get(name), good, count, self.embedding_dim)
                table = table.append_column(name + EMBEDDING_SUFFIX, column)
        return table

    def _pixels(self, columns: dict[str, np.ndarray], statuses: list[str]) -> tuple[dict[str, torch.Tensor], list[int]]:
        """(image column -> pixels of the decodable rows on the model's device, their positions).

        Sets `statuses[i]` to the error of each row that could not be decoded.
        """
        device = self.model.device
        if all(name + PIXELS_SUFFIX in columns for name in self.image_columns):  # decoded by `decode_images`
            errors = [str(_plain(error) or "") for error in columns.get(DECODE_ERROR, [""] * len(statuses))]
            good = [i for i, error in enumerate(errors) if not error]
            for i, error in enumerate(errors):
                if error:
                    statuses[i] = error
            # Indexing copies the rows (Arrow hands out read-only arrays, which torch will not wrap).
            pixels = {
                name: torch.from_numpy(np.ascontiguousarray(columns[name + PIXELS_SUFFIX][good])).to(device)
                for name in self.image_columns
            }
            return pixels, good
        # The project's one batch loop decodes here exactly as the local engine does (same
        # transform, same errors caught), all rows of this batch in one pass, in this process.
        paths = {name: [str(_plain(value)) for value in columns[name]] for name in self.image_columns}
        decoded = next(
            iterate_batches(paths, self.image_columns, self.transform, batch_size=len(statuses), device=device)
        )
        for index, error in decoded.failures:
            statuses[index] = _status(error)
        return decoded.images, decoded.indices


def _check_reference_cache(info: MetricInfo) -> None:
    """`InvalidOptionError` unless the metric's class has a reference-feature cache.

    Without loading a model: a class that keeps `Metric.make_reference_cache` as it is (which
    gives `None`) has none; one that overrides it may still return `None`, checked once loaded.
    """
    hook = getattr(info.metric_class(), "make_reference_cache", None)
    if hook is None or hook is Metric.make_reference_cache:
        raise InvalidOptionError(f"{info.name} has no reference-feature cache")


def _check_precision(precision: str) -> None:
    """`InvalidOptionError` unless `precision` is "fp32" or "bf16": "auto" resolves per machine, and on
    Ray the actors' machines may differ from the driver's (one job's rows would mix precisions)."""
    if precision not in PRECISIONS:
        why = " (auto resolves per machine, and the actors may run on other hardware)" if precision == "auto" else ""
        raise InvalidOptionError(f"precision {precision!r} on Ray{why}: name fp32 or bf16 (--precision fp32|bf16)")


def decode_images(batch: Batch, transform: Callable[[Any], torch.Tensor], image_columns: Sequence[str]) -> dict:
    """A CPU stage before `PairScorer`: decode each row's images into `<column>__pixels` arrays.

    Use it when the scoring actors have GPUs: decoding then runs in parallel on the nodes'
    CPUs instead of on the one CPU of each GPU actor. Get `transform` from the metric
    (`create_metric(name, weights, device="cpu").image_transform()`: a small picklable
    function) and pass it with `fn_kwargs`::

        decoded = pairs.map_batches(
            decode_images, fn_kwargs={"transform": transform, "image_columns": ["ref", "dist"]},
            batch_size=32, batch_format="numpy",
        )

    A row that cannot be decoded gets zero pixels and its error in `decode_error`
    (`PairScorer` turns it into its `status`). Every input column is kept.
    """
    columns = _numpy_columns(batch)
    count = len(next(iter(columns.values())))
    paths = {name: [str(_plain(value)) for value in columns[name]] for name in image_columns}
    decoded = next(iterate_batches(paths, list(image_columns), transform, batch_size=count))
    errors = [""] * count  # text, not None: a column of nulls only would come back as NaN floats
    for index, error in decoded.failures:
        errors[index] = _status(error)
    output = dict(columns)
    for name in image_columns:
        if decoded.indices:
            good = decoded.images[name].numpy()
            pixels = np.zeros((count, *good.shape[1:]), dtype=good.dtype)
            pixels[decoded.indices] = good
        else:  # nothing decodable: the shape is unknown, one zero pixel per row keeps a column
            pixels = np.zeros((count, 3, 1, 1), dtype=np.float32)
        output[name + PIXELS_SUFFIX] = pixels
    output[DECODE_ERROR] = np.array(errors, dtype=object)
    return output


class ImageDecoder:
    """`decode_images` as a callable class, for a pool of decoding actors (`compute=ActorPoolStrategy(...)`)."""

    def __init__(self, transform: Callable[[Any], torch.Tensor], image_columns: Sequence[str]) -> None:
        self.transform, self.image_columns = transform, list(image_columns)

    def __call__(self, batch: Batch) -> dict:
        return decode_images(batch, self.transform, self.image_columns)


def _embedding_dim(model: Metric) -> int:
    """The width of the model's embeddings, from one blank image."""
    blank = model.image_transform()(Image.new("RGB", (32, 32))).unsqueeze(0).to(model.device)
    with torch.inference_mode():
        return int(model.embed_batch(blank).shape[-1])


def _embedding_column(found: torch.Tensor | None, good: list[int], count: int, width: int) -> pa.Array:
    """[len(good), width] embeddings as a column of `count` fixed-size float32 lists, null where not `good`."""
    values = np.zeros((count, width), dtype=np.float32)
    if found is not None and good:
        values[good] = found.detach().float().cpu().numpy()
    mask = np.ones(count, dtype=bool)
    mask[good] = False
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width, mask=pa.array(mask))


def embedding_rows(column: Any) -> np.ndarray:
    """A `<image column>__embedding` column (Arrow) as a float32 array [N, D] (zeros for null rows)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = array.type.list_size
    values = np.asarray(array.values, dtype=np.float32).reshape(-1, width)  # `values` ignores the offset
    return values[array.offset : array.offset + len(array)]


def _numpy_columns(batch: Batch) -> dict[str, np.ndarray]:
    """Any map_batches batch format as column -> numpy array (tensor columns as [N, ...] arrays)."""
    if isinstance(batch, dict):
        return {name: np.asarray(values) for name, values in batch.items()}
    if isinstance(batch, pa.Table):
        from ray.data.block import BlockAccessor

        return BlockAccessor.for_block(batch).to_batch_format("numpy")
    return {name: batch[name].to_numpy() for name in batch.columns}  # pandas; Ray's tensor columns give [N, ...]


def _arrow_column(values: np.ndarray) -> pa.Array:
    """One passed-through column as Arrow: plain values as they are, [N, ...] tensors as Ray's tensor type."""
    if values.ndim > 1:
        from ray.data.extensions import ArrowTensorArray

        return ArrowTensorArray.from_numpy(values)
    return pa.array(values if values.dtype != object else list(values))


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (paths and prompts come out of Arrow as numpy strings)."""
    return value.item() if isinstance(value, np.generic) else value


def _status(error: BaseException) -> str:
    """An error as one line of text, as the local engine writes it."""
    return " ".join(str(error).split())


# -- sizing the actor pool -----------------------------------------------------------------------
