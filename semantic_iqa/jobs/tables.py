"""Crash-safe storage of result rows: an append-only CSV file, or Parquet part files merged at the end.

Both survive a hard kill: the CSV is flushed once per write and a torn last line is cut off
when the file is reopened; Parquet rows go to whole part files (written to a temporary
name, then renamed), and the merged file records which parts it holds, so a kill during
the merge never counts a row twice.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import InvalidInputError, InvalidOptionError

_MERGED_KEY = b"semantic_iqa.merged_parts"  # Parquet metadata: the part files a merged file holds
_ROW_GROUP_ROWS = 65536


def parts_dir(out: str | os.PathLike) -> Path:
    """`<out>.parts/`: the Parquet part files of a job not merged yet."""
    return Path(f"{out}.parts")


class CsvTable:
    """A CSV result file: header once, rows appended and flushed per write."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.handle: Any = None

    def _records(self) -> Iterator[tuple[list[str], list[str], int]]:
        """(header, record, byte offset after it) of every complete record; a torn last one is left out."""
        if not self.out.exists():
            return
        position = [0, True]  # bytes read so far; whether the last line read was complete

        def lines(handle: Any) -> Iterator[str]:
            for raw in handle:
                position[0] += len(raw)
                position[1] = raw.endswith(b"\n")
                yield raw.decode("utf-8")

        with open(self.out, "rb") as handle:
            reader = csv.reader(lines(handle))
            header = next(reader, None)
            if header is None or not position[1]:
                return
            yield header, [], position[0]
            for record in reader:
                if len(record) != len(header) or not position[1]:  # torn by a kill mid-write
                    return
                yield header, record, position[0]

    def rows(self, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The complete rows, restricted to `columns` (missing columns read as None)."""
        for header, record, _ in self._records():
            if record:
                row = dict(zip(header, record, strict=True))
                yield {name: row.get(name) for name in columns}

    def open(self, columns: list[str], *, keep: bool, drop: set[str] | frozenset[str]) -> None:
        """Start a new file, or keep the complete rows of the existing one (less `drop`) and append."""
        self.columns = columns
        if keep:
            last = deque(self._records(), maxlen=1)  # the header and the end of the last complete record
            header, _, end = last[0] if last else (None, [], 0)
            if header is not None and header != columns:
                raise InvalidInputError(
                    f"cannot resume {self.out}: its columns differ from this job's ({', '.join(header)}); "
                    "use --overwrite or another --out"
                )
            if drop:
                self._rewrite_without(drop)
            elif header is not None:
                os.truncate(self.out, end)  # cut a torn last line off before appending
            keep = header is not None
        self.handle = open(self.out, "a" if keep else "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle, lineterminator="\n")
        if not keep:
            self.writer.writerow(columns)
            self.handle.flush()

    def _rewrite_without(self, drop: set[str] | frozenset[str]) -> None:
        staging = self.out.with_name(self.out.name + ".tmp")
        with open(staging, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(self.columns)
            index = self.columns.index("id")
            for _, record, _ in self._records():
                if record and record[index] not in drop:
                    writer.writerow(record)
        os.replace(staging, self.out)

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.writer.writerows([[row[name] for name in self.columns] for row in rows])
        self.handle.flush()  # what is written survives a kill of this process

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class ParquetTable:
    """A Parquet result: part files under `<out>.parts/` while running, one file once closed."""

    def __init__(self, out: Path, kinds: Mapping[str, str] | None = None, *, part_seconds: float = 2.0) -> None:
        """`kinds` (column -> "str", "float", "bool", "int") is needed to write, not to read."""
        require_pyarrow("write Parquet results")
        import pyarrow as pa

        self.pa = pa
        self.out, self.parts, self.part_seconds = out, parts_dir(out), part_seconds
        types = {"str": pa.string(), "float": pa.float64(), "bool": pa.bool_(), "int": pa.int64()}
        self.schema = pa.schema([(name, types[kind]) for name, kind in (kinds or {}).items()])
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.count = 0

    @staticmethod
    def remove_parts(out: str | os.PathLike) -> None:
        shutil.rmtree(parts_dir(out), ignore_errors=True)

    def _merged(self) -> set[str]:
        import pyarrow.parquet as pq

        if not self.out.exists():
            return set()
        metadata = pq.read_schema(self.out).metadata or {}
        return set(filter(None, metadata.get(_MERGED_KEY, b"").decode().split(",")))

    def _pending_parts(self) -> list[Path]:
        """Part files not merged into `out` yet, oldest first."""
        if not self.parts.is_dir():
            return []
        merged = self._merged()
        return sorted(p for p in self.parts.glob("part-*.parquet") if p.name not in merged)

    def _sources(self) -> list[Path]:
        return ([self.out] if self.out.exists() else []) + self._pending_parts()

    def rows(self, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
        import pyarrow.parquet as pq

        for source in self._sources():
            names = pq.read_schema(source).names
            table = pq.read_table(source, columns=[name for name in columns if name in names])
            for row in table.to_pylist():
                yield {name: row.get(name) for name in columns}

    def open(self, columns: list[str], *, keep: bool, drop: set[str] | frozenset[str]) -> None:
        self.columns = columns
        if keep and drop:
            self._merge(drop)
        elif not keep:
            self.out.unlink(missing_ok=True)
            self.remove_parts(self.out)
        self.parts.mkdir(exist_ok=True)
        for leftover in self.parts.glob("*.tmp"):  # a part half-written by a killed run
            leftover.unlink()

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.buffer.extend(rows)
        if time.monotonic() - self.last_flush >= self.part_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one part file (temporary name, then renamed: never half a part)."""
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        table = self.pa.Table.from_pylist(self.buffer, schema=self.schema)
        import pyarrow.parquet as pq

        name = f"part-{time.time_ns():020d}-{self.count:06d}.parquet"
        self.count += 1
        staging = self.parts / (name + ".tmp")
        pq.write_table(table, staging)
        os.replace(staging, self.parts / name)
        self.buffer.clear()

    def close(self) -> None:
        self.flush()
        self._merge(frozenset())

    def _merge(self, drop: set[str] | frozenset[str]) -> None:
        """Rewrite `out` as every row of `out` and the pending parts (less `drop`), then remove the parts."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        pending = self._pending_parts()
        if not pending and not drop:
            self.remove_parts(self.out)
            return
        merged = {p.name for p in pending} | (self._merged() & {p.name for p in self.parts.glob("part-*.parquet")})
        schema = self.schema.with_metadata({_MERGED_KEY: ",".join(sorted(merged)).encode()})
        staging = self.out.with_name(self.out.name + ".tmp")
        with pq.ParquetWriter(staging, schema) as writer:
            batch, size = [], 0
            for source in self._sources():
                table = pq.read_table(source).select(self.schema.names).cast(self.schema)
                if drop:
                    table = table.filter(pc.invert(pc.is_in(table["id"], value_set=self.pa.array(sorted(drop)))))
                batch.append(table)
                size += table.num_rows
                if size >= _ROW_GROUP_ROWS:  # few, large row groups, not one per part
                    writer.write_table(self.pa.concat_tables(batch))
                    batch, size = [], 0
            if batch:
                writer.write_table(self.pa.concat_tables(batch))
        os.replace(staging, self.out)  # now `out` holds the parts (its metadata says so) ...
        self.remove_parts(self.out)  # ... so a kill before this line double-counts nothing


def require_pyarrow(what: str) -> ModuleType:
    """`pyarrow.parquet`, or an `InvalidOptionError` saying how to install it."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise InvalidOptionError(f"pyarrow is needed to {what}: pip install 'semantic-iqa[parquet]'") from None
    return parquet
