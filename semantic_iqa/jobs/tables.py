"""Crash-safe storage of result rows: an append-only CSV file, or Parquet part files merged at the end.

Both survive a hard kill: the CSV is flushed once per write and a torn last line is cut off
when the file is reopened (`csv_table`); Parquet rows go to whole part files (written to a
temporary name, then renamed), and the merged file records which parts it holds, so a kill
during the merge never counts a row twice. A Parquet file or part that cannot be read is a
`ResultFileError` naming it, never a pyarrow traceback.

Both tables number their rows the same way for the resume logic (`entries`: the result
file's rows, then the pending parts', in order) and can be rewritten keeping some of them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import InvalidOptionError, ResultFileError
from .csv_table import AGAIN, CsvTable

__all__ = ["CsvTable", "ParquetTable", "parts_dir", "require_pyarrow"]

_MERGED_KEY = b"semantic_iqa.merged_parts"  # Parquet metadata: the part files a merged file holds
_ROW_GROUP_ROWS = 65536


def parts_dir(out: str | os.PathLike) -> Path:
    """`<out>.parts/`: the Parquet part files of a job not merged yet."""
    return Path(f"{out}.parts")


class ParquetTable:
    """A Parquet result: part files under `<out>.parts/` while running, one file once closed."""

    def __init__(
        self,
        out: Path,
        kinds: Mapping[str, Any] | None = None,
        *,
        part_seconds: float = 2.0,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """`kinds` (column -> "str", "float", "bool", "int", or a pyarrow type) is needed to write, not to read.

        `metadata`: key-value pairs kept in the schema of the parts and of the merged file.
        """
        require_pyarrow("write Parquet results")
        import pyarrow as pa

        self.pa = pa
        self.out, self.parts, self.part_seconds = out, parts_dir(out), part_seconds
        types = {"str": pa.string(), "float": pa.float64(), "bool": pa.bool_(), "int": pa.int64()}
        fields = [(name, types[kind] if isinstance(kind, str) else kind) for name, kind in (kinds or {}).items()]
        self.schema = pa.schema(fields, metadata=dict(metadata) if metadata else None)
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.count = 0

    @staticmethod
    def remove_parts(out: str | os.PathLike) -> None:
        shutil.rmtree(parts_dir(out), ignore_errors=True)

    def _unreadable(self, source: Path, exc: Exception) -> ResultFileError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if source == self.out:
            return ResultFileError(f"cannot resume {self.out}: it is not a readable Parquet file ({reason}); {AGAIN}")
        return ResultFileError(
            f"cannot resume {self.out}: its part file {source} is not a readable Parquet file ({reason}); "
            f"delete that part to score its rows again, or {AGAIN}"
        )

    def _schema(self, source: Path) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(source)
        except (self.pa.ArrowException, OSError) as exc:  # not Parquet, truncated, unreadable
            raise self._unreadable(source, exc) from None

    def _read(self, source: Path, columns: Sequence[str] | None = None) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.read_table(source, columns=columns)
        except (self.pa.ArrowException, OSError) as exc:
            raise self._unreadable(source, exc) from None

    def _merged(self) -> set[str]:
        if not self.out.exists():
            return set()
        metadata = self._schema(self.out).metadata or {}
        return set(filter(None, metadata.get(_MERGED_KEY, b"").decode(errors="replace").split(",")))

    def _pending_parts(self) -> list[Path]:
        """Part files not merged into `out` yet, oldest first."""
        if not self.parts.is_dir():
            return []
        merged = self._merged()
        return sorted(p for p in self.parts.glob("part-*.parquet") if p.name not in merged)

    def _sources(self) -> list[Path]:
        return ([self.out] if self.out.exists() else []) + self._pending_parts()

    def entries(self, columns: Sequence[str]) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
        """(position, "row N", row restricted to `columns`) of every row of `out`, then of the pending parts."""
        position = 0
        for source in self._sources():
            names = self._schema(source).names
            table = self._read(source, [name for name in columns if name in names])
            for row in table.to_pylist():
                position += 1
                yield position - 1, f"row {position}", {name: row.get(name) for name in columns}

    def rows(self, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
        for _, _, row in self.entries(columns):
            if row is not None:
                yield row

    def open(self, columns: list[str], *, keep: bool, positions: Collection[int] | None = None) -> None:
        """Start a new result, or keep the existing one (only the rows at `positions`, when given) and add parts."""
        self.columns = columns
        if keep:
            for source in self._sources():
                missing = [name for name in columns if name not in self._schema(source).names]
                if missing:
                    raise ResultFileError(
                        f"cannot resume {self.out}: {source} lacks this job's column(s) {', '.join(missing)}; {AGAIN}"
                    )
            if positions is not None:
                self._merge(positions)
        else:
            self.out.unlink(missing_ok=True)
            self.remove_parts(self.out)
        self.parts.mkdir(exist_ok=True)
        for leftover in self.parts.glob("*.tmp"):  # a part half-written by a killed run
            leftover.unlink()

    def rewrite(self, positions: Collection[int]) -> None:
        """Rewrite `out` with only the rows at `positions` (of `out` and the pending parts)."""
        self._merge(positions)

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
        self._merge(None)

    def _merge(self, positions: Collection[int] | None) -> None:
        """Rewrite `out` as every row of `out` and the pending parts (only those at `positions`), remove the parts."""
        import numpy as np
        import pyarrow.parquet as pq

        pending = self._pending_parts()
        if not pending and positions is None:
            self.remove_parts(self.out)
            return
        sources = self._sources()
        schema = self.schema
        if not schema.names and sources:  # a repair without the job's columns: the file's own
            schema = self._schema(sources[0]).remove_metadata()
        merged = {p.name for p in pending} | (self._merged() & {p.name for p in self.parts.glob("part-*.parquet")})
        schema = schema.with_metadata({**(schema.metadata or {}), _MERGED_KEY: ",".join(sorted(merged)).encode()})
        wanted = np.array(sorted(positions), dtype=np.int64) if positions is not None else None
        staging = self.out.with_name(self.out.name + ".tmp")
        with pq.ParquetWriter(staging, schema) as writer:
            batch, size, offset = [], 0, 0
            for source in sources:
                table = self._read(source)
                try:
                    table = table.select(schema.names).cast(schema.remove_metadata())
                except (self.pa.ArrowException, KeyError) as exc:  # a column missing, or of another type
                    raise self._unreadable(source, exc) from None
                if wanted is not None:
                    index = np.arange(offset, offset + table.num_rows)
                    offset += table.num_rows
                    table = table.filter(self.pa.array(np.isin(index, wanted)))
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
