"""A CSV result file: header once, rows appended and flushed per write, read back record by record.

Reading tells three kinds of damage apart:

- a torn last line (no line break at the end: a kill during a write) is left out, silently,
  and cut off when the file is appended to again;
- a malformed record elsewhere (wrong number of fields, an unbalanced quote) is reported as
  one entry without values, and the records after it are read on their own: one bad line
  never hides the good ones after it;
- bytes that are not UTF-8 (outside a torn last line) make the whole file untrustworthy:
  `ResultFileError`, naming the file and the line.

Text cells are written safe for spreadsheets (OWASP's CSV-injection advice): a cell starting
with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, and so does one
starting with `'` itself, so that reading strips exactly one quote and gives back the value.
"""

from __future__ import annotations

import csv
import os
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ResultFileError

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")  # what a spreadsheet may run, and the escape itself
_MAX_RECORD_LINES = 10_000  # line breaks inside one quoted cell before the record counts as malformed
AGAIN = "use --overwrite to start again, or another --out"


def escape_cell(value: Any) -> Any:
    """A text cell as written to CSV: `'` prepended when it starts like a formula (or with `'`)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """The value of a CSV cell as `escape_cell` wrote it (numbers never start with `'`)."""
    return value[1:] if value[:1] == "'" else value


class _Line(NamedTuple):
    number: int  # 1 = the header
    start: int  # byte offsets
    end: int
    text: str | None  # None: not UTF-8
    complete: bool  # ends with a line break


class CsvRecord(NamedTuple):
    """One record after the header: where it is and its (unescaped) values; `None` when malformed."""

    line: int
    start: int
    end: int
    values: list[str] | None
    torn: bool = False  # the unfinished last line a kill leaves; never yielded by `records`


class CsvTable:
    """A CSV result file: header once, rows appended and flushed per write.

    Args:
        out: the file.
        text_columns: columns whose cells are escaped against formula injection when written.
    """

    def __init__(self, out: Path, text_columns: Collection[str] = ()) -> None:
        self.out = out
        self.text_columns = set(text_columns)
        self.handle: Any = None

    # -- reading ----------------------------------------------------------------------------
    def _lines(self) -> Iterator[_Line]:
        offset = 0
        with open(self.out, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text: str | None = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                yield _Line(number, offset, offset + len(raw), text, raw.endswith(b"\n"))
                offset += len(raw)

    def _not_utf8(self, line: _Line) -> ResultFileError:
        return ResultFileError(
            f"cannot resume {self.out}: line {line.number} is not UTF-8 text, so the file was not written "
            f"(or was changed) by something other than semantic-iqa; {AGAIN}"
        )

    def _scan(self) -> Iterator[CsvRecord]:
        """The header (line 1), then every record; a torn last line comes last, with `torn=True`."""
        if not self.out.exists():
            return
        lines = self._lines()
        pending: deque[_Line] = deque()  # lines to read again, after a malformed record

        def take() -> _Line | None:
            return pending.popleft() if pending else next(lines, None)

        first = take()
        if first is None or not first.complete:  # empty, or the header torn by a kill: a new file
            return
        if first.text is None:
            raise self._not_utf8(first)
        header = _parse(first.text) or []
        yield CsvRecord(1, 0, first.end, header)
        width = len(header)
        while (first := take()) is not None:
            if first.text is None:
                if not first.complete:  # a kill mid-character: still just a torn last line
                    yield CsvRecord(first.number, first.start, first.end, None, torn=True)
                    return
                raise self._not_utf8(first)
            quotes = first.text.count('"')
            if not quotes and first.complete:  # the usual row: no quoted cell, so a plain split is exact
                if first.text.strip():  # (a blank line holds no row)
                    values = first.text.rstrip("\r\n").split(",")
                    yield CsvRecord(first.number, first.start, first.end, values if len(values) == width else None)
                continue
            block = [first]
            # A quoted cell may hold line breaks: read on while a quote is open (bounded).
            while quotes % 2 and block[-1].complete and len(block) < _MAX_RECORD_LINES:
                more = take()
                if more is None:
                    break
                if more.text is None:
                    pending.appendleft(more)
                    break
                block.append(more)
                quotes += more.text.count('"')
            text = "".join(line.text or "" for line in block)
            if not text.strip():
                continue  # a blank line holds no row
            values = _parse(text) if block[-1].complete else None
            if values is not None and len(values) == width:
                yield CsvRecord(first.number, first.start, block[-1].end, values)
            elif len(block) == 1 and not first.complete:
                yield CsvRecord(first.number, first.start, first.end, None, torn=True)
                return
            else:  # malformed: only its first line is lost; the lines after it are read on their own
                pending.extendleft(reversed(block[1:]))
                yield CsvRecord(first.number, first.start, first.end, None)

    def header(self) -> list[str] | None:
        """The header's column names; `None` for a missing or empty file."""
        record = next(self._scan(), None)
        return None if record is None else record.values

    def records(self) -> Iterator[CsvRecord]:
        """Every record after the header, malformed ones with `values=None`; a torn last line is left out."""
        scan = self._scan()
        next(scan, None)  # the header
        for record in scan:
            if record.torn:
                return
            yield record

    def entries(self, columns: Sequence[str]) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
        """(position, "line N", row restricted to `columns` or `None` when malformed) of each record."""
        header = self.header() or []
        where = [(name, header.index(name)) for name in columns if name in header]
        missing = dict.fromkeys(name for name in columns if name not in header)
        for position, record in enumerate(self.records()):
            row = None
            if record.values is not None:
                values = record.values  # `unescape_cell`, inline: this runs for every cell of every row
                row = {name: v[1:] if (v := values[i])[:1] == "'" else v for name, i in where} | missing
            yield position, f"line {record.line}", row

    def rows(self, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The well-formed rows, restricted to `columns` (missing columns read as None)."""
        for _, _, row in self.entries(columns):
            if row is not None:
                yield row

    # -- writing ----------------------------------------------------------------------------
    def open(self, columns: list[str], *, keep: bool, positions: Collection[int] | None = None) -> None:
        """Start a new file, or keep the existing one and append.

        Args:
            keep: keep the rows already there (their header must be `columns`).
            positions: with `keep`, only the records at these positions (as `entries` numbers
                them) are kept, the file rewritten; `None` keeps every one, cutting a torn last line.
        """
        self.columns = columns
        if keep:
            header = self.header()
            if header is not None and header != columns:
                raise ResultFileError(
                    f"cannot resume {self.out}: its columns differ from this job's ({', '.join(header)}); {AGAIN}"
                )
            if header is not None and positions is not None:
                self.rewrite(positions)
            elif header is not None:
                os.truncate(self.out, self._complete_size())  # cut a torn last line off before appending
            keep = header is not None
        self.handle = open(self.out, "a" if keep else "w", newline="", encoding="utf-8")
        if not keep:
            _write_rows(self.handle, [columns])
            self.handle.flush()

    def _complete_size(self) -> int:
        """The file's size without a torn last line: up to its last line break (read from the end)."""
        with open(self.out, "rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            position = end
            while position > 0:
                step = min(position, 1 << 16)
                handle.seek(position - step)
                found = handle.read(step).rfind(b"\n")
                if found >= 0:
                    return position - step + found + 1
                position -= step
        return 0

    def rewrite(self, positions: Collection[int]) -> None:
        """Rewrite the file with only the records at `positions` (malformed ones are never kept)."""
        header = self.header()
        if header is None:
            return
        wanted = set(positions)
        staging = self.out.with_name(self.out.name + ".tmp")
        with open(staging, "w", newline="", encoding="utf-8") as handle:
            _write_rows(handle, [header])
            for position, record in enumerate(self.records()):
                if position in wanted and record.values is not None:
                    cells = [unescape_cell(value) for value in record.values]
                    row = [escape_cell(v) if n in self.text_columns else v for n, v in zip(header, cells, strict=True)]
                    _write_rows(handle, [row])
        os.replace(staging, self.out)

    def write(self, rows: list[dict[str, Any]]) -> None:
        text = self.text_columns
        _write_rows(self.handle, [[escape_cell(row[n]) if n in text else row[n] for n in self.columns] for row in rows])
        self.handle.flush()  # what is written survives a kill of this process

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _write_rows(handle: Any, rows: list[list[Any]]) -> None:
    """Write CSV rows ending in "\\n"; a row with a carriage return in a cell has every cell quoted.

    Why: the csv module quotes only cells holding a character of the line terminator ("\\n"),
    and a bare "\\r" reads back as a line break (in the csv module and in spreadsheets alike).
    """
    minimal = csv.writer(handle, lineterminator="\n")
    quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        (quoted if any(isinstance(cell, str) and "\r" in cell for cell in row) else minimal).writerow(row)


def _parse(text: str) -> list[str] | None:
    """The cells of one record's text; `None` when it is not one CSV record."""
    try:
        parsed = list(csv.reader([text], strict=True))  # strict: `"a"b` is damage, not a cell
    except csv.Error:  # a stray quote, a NUL byte (Python 3.10), a cell past the field size limit
        return None
    return parsed[0] if len(parsed) == 1 else None
