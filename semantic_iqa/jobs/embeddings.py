"""A job's image embeddings: `score-dir --embeddings FILE.parquet`, one row per unique image.

For a metric whose registry entry declares `embeddings` (its `Metric.embed_batch`). Every image
of the job's items (each image role: references and distorted images, or the images of a
no-reference job), deduplicated by resolved path (a reference shared by many pairs is one row):

- `path`: the image as the result file names it (its first spelling in the job);
- `roles`: the roles it has in the job (`["ref"]`, `["dist"]`, `["ref", "dist"]`, `["image"]`);
- `embedding`: the metric's embedding, a fixed-size list of float32 (what it is: the entry's
  `embeddings`, also in the file's metadata);
- `input_signature`: the file's size and mtime when the job was planned (a changed file is embedded again).

The Parquet schema's metadata (`semantic_iqa.*`) names the metric, the model fingerprint, the
weights and what an embedding is; the sidecar `<file>.job.json` records the job as the result's
does. The embeddings come from the scoring pass (`Metric.score_and_embed`: one backbone pass
per image for its score and its embedding). The file is written as the result is (`ResultWriter`:
Parquet parts merged at the end; Ctrl-C or a kill loses no finished part). On resume, rows of
this model whose image is still in the job, unchanged, stand; the images of items not scored
again that lack a row are embedded at the end (`fill`). Nothing here names a metric.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from PIL import Image

from .._version import __version__
from ..errors import InvalidInputError, InvalidOptionError, MetricContractError, OutputError, ResultFileError
from ..outputs import check_not_input, check_output_file
from ..registry import MetricInfo
from ..scoring import iterate_batches
from .items import image_columns, input_signature
from .results import ResultWriter, check_fingerprint, result_exists, sidecar_path
from .tables import ParquetTable, require_pyarrow

__all__ = ["JobEmbeddings", "check_embeddings_output"]

OPTION = "--embeddings"


def check_embeddings_output(
    path: str | os.PathLike,
    out: str | os.PathLike,
    inputs: Any = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    taken: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Refuse an embeddings file that cannot or must not be written, before any model work.

    A `.parquet` name, not another output of the job (`out`, its sidecar, `taken`), never an
    input; an existing one is replaced only with `overwrite`, or added to with `resume` (whose
    sidecar must then record this model: checked when the job opens it).
    """
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        raise InvalidOptionError(f"{OPTION} {path}: give a .parquet file name (an embedding is a list column)")
    others = {Path(other).resolve() for other in (out, sidecar_path(out), *taken) if other}
    if {path.resolve(), sidecar_path(path).resolve()} & others:
        raise InvalidInputError(f"{OPTION} {path} would overwrite another output of this job; give another name")
    check_output_file(path, overwrite=True, inputs=inputs, option=OPTION)
    check_not_input(sidecar_path(path), inputs, OPTION)
    if result_exists(path) and not (resume or overwrite):
        raise OutputError(
            f"refusing to overwrite {OPTION} {path}: it exists; pass --resume to finish it with the job "
            "or --overwrite to replace it"
        )
    return path


@dataclass
class _Image:
    path: str  # as the job's items name it (the first spelling met)
    roles: list[str]
    signature: str = ""


class JobEmbeddings:
    """The embeddings file of one job: planned (what stands), opened, added to per scored batch, filled, closed.

    Planning (the constructor) reads and checks; `open` is the first write (it replaces an
    earlier file, or rewrites it without the rows that no longer stand).

    Args:
        path: the `.parquet` file (checked with `check_embeddings_output`).
        info: the metric's registry entry (it must declare `embeddings`).
        metric: the loaded metric (`image_transform`, `embed_batch`).
        items: every item of the job (not only those to score).
        fingerprints: the job's model fingerprints (recorded; a resumed file must hold one of them).
        job: what the sidecar records (metric, weights, revision, options).
        resume: keep the rows of an existing file that still stand.

    Raises:
        InvalidOptionError: the metric gives no embeddings.
        MetricContractError: its `embed_batch` does not give [B, D] float embeddings.
        ResultFileError: with `resume`, the file is another model's, or not an embeddings file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        info: MetricInfo,
        metric: Any,
        items: Sequence[Mapping[str, str]],
        fingerprints: Iterable[str],
        job: Mapping[str, Any],
        *,
        resume: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        info.require_embeddings(OPTION)
        self.path, self.info, self.metric, self.stream = Path(path), info, metric, stream or sys.stderr
        self.roles = image_columns(info)
        self.keys: dict[str, str] = {}  # a path as the items give it -> the resolved path
        self.images: dict[str, _Image] = {}  # resolved path -> the image
        for item in items:
            for role in self.roles:
                name = item[role]
                if name not in self.keys:
                    self.keys[name] = os.path.realpath(name)
                image = self.images.setdefault(self.keys[name], _Image(name, []))
                if role not in image.roles:
                    image.roles.append(role)
        for image in self.images.values():  # taken before decoding: a later change is seen next time
            image.signature = input_signature({"path": image.path}, ["path"])
        self.dim = self._probe()
        self.done: set[str] = set()  # resolved paths with a row
        keep = self._standing(fingerprints) if resume and result_exists(self.path) else None
        require_pyarrow(f"write {OPTION}")
        import pyarrow as pa

        kinds = {"path": "str", "roles": pa.list_(pa.string()), "embedding": pa.list_(pa.float32(), self.dim)}
        metadata = {
            "semantic_iqa.metric": info.name,
            "semantic_iqa.fingerprint": next(iter(fingerprints)),
            "semantic_iqa.weights": str(job.get("weights")),
            "semantic_iqa.embedding": str(info.embeddings),
            "semantic_iqa.package_version": __version__,
        }
        self._writer_args = (self.path, {**kinds, "input_signature": "str"}, fingerprints)
        self._writer_options = {"job": {**job, "embedding_dim": self.dim}, "resume": resume, "keep": keep,
                                "metadata": metadata}  # fmt: skip
        self.writer: ResultWriter | None = None

    def open(self) -> JobEmbeddings:
        """Start writing (once): a new file, or the existing one without the rows that do not stand."""
        if self.writer is None:
            self.writer = ResultWriter(*self._writer_args, **self._writer_options)
        return self

    def _probe(self) -> int:
        """The embedding's width, from one blank image (and the metric checked against its declaration)."""
        blank = self.metric.image_transform()(Image.new("RGB", (32, 32))).unsqueeze(0).to(self.metric.device)
        with torch.inference_mode():
            return self._checked(self.metric.embed_batch(blank), 1, "image", None).shape[1]

    def _checked(self, found: Any, count: int, role: str, width: int | None = -1) -> Any:
        """`found` as a float32 numpy array [count, width] (-1: `self.dim`); `MetricContractError` otherwise."""
        width = self.dim if width == -1 else width
        if isinstance(found, torch.Tensor) and found.is_floating_point():
            found = found.detach().float().cpu().numpy()
        floats = isinstance(found, np.ndarray) and np.issubdtype(found.dtype, np.floating)
        shape = found.shape if floats else None
        if shape is None or len(shape) != 2 or shape[0] != count or (width is not None and shape[1] != width):
            wanted = f"[{count}, {width or 'D'}] floats"
            raise MetricContractError(f"{self.info.name}: the {role} embeddings are not {wanted} (got shape {shape})")
        return found.astype("float32", copy=False)

    def _standing(self, fingerprints: Iterable[str]) -> set[int] | None:
        """Positions of the existing rows that stand (`None`: all of them); marks their images done."""
        try:
            check_fingerprint(self.path, fingerprints)
        except ResultFileError as exc:
            raise ResultFileError(str(exc).replace("another --out", f"another {OPTION}")) from None
        keep, total = set(), 0
        for position, _, row in ParquetTable(self.path).entries(["path", "roles", "input_signature"]):
            total += 1
            key = self.keys.get(row["path"]) if row and row["path"] else None
            image = self.images.get(key) if key else None
            if image is None or key in self.done or row["input_signature"] != image.signature:
                continue  # gone from the job, a second row, or a changed file: removed
            if sorted(row["roles"] or ()) == sorted(image.roles):
                keep.add(position)
                self.done.add(key)
        return keep if len(keep) < total else None

    def add(self, items: Sequence[Mapping[str, str]], embeddings: Mapping[str, Any]) -> None:
        """Write the embeddings of scored items (role -> [B, D], row i for item i): each image's first only."""
        arrays = {role: self._checked(embeddings.get(role), len(items), role) for role in self.roles}
        rows = []
        for index, item in enumerate(items):
            for role in self.roles:
                key = self.keys[item[role]]
                if key not in self.done:
                    self.done.add(key)
                    rows.append(self._row(key, arrays[role][index]))
        if rows:
            self.open().writer.write(rows)

    def _row(self, key: str, embedding: Any) -> dict[str, Any]:
        image = self.images[key]
        return {"path": image.path, "roles": image.roles, "embedding": embedding, "input_signature": image.signature}

    def fill(self, batch_size: int = 16, workers: int = 0) -> None:
        """Embed the job's images without a row (items done before; a pair whose other image failed).

        An image that cannot be decoded gets no row (its items' status in the result says why).
        """
        missing = [key for key in self.images if key not in self.done]
        writer = self.open().writer
        if not missing:
            return
        print(f"semantic-iqa: embedding {len(missing)} image(s) not scored in this run", file=self.stream, flush=True)
        paths = {"image": [self.images[key].path for key in missing]}
        transform, device = self.metric.image_transform(), self.metric.device
        with torch.inference_mode():
            for batch in iterate_batches(
                paths, ["image"], transform, batch_size=batch_size, workers=workers, device=device
            ):
                if len(batch):
                    found = self._checked(self.metric.embed_batch(batch.images["image"]), len(batch), "image")
                    self.done.update(missing[index] for index in batch.indices)
                    writer.write([self._row(missing[i], row) for i, row in zip(batch.indices, found, strict=True)])

    def close(self) -> None:
        """Save what is buffered and merge the parts into the file (nothing when never opened)."""
        if self.writer is not None:
            self.writer.close()

    def summary(self) -> dict[str, Any]:
        """What the job's summary says of it: the file, the images with a row, those without (undecodable)."""
        return {"out": str(self.path), "images": len(self.done), "missing": len(self.images) - len(self.done)}
