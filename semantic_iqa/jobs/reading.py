"""A job's result read back, typed: what the report shows (`report`) is read through here."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .columns import default_kind
from .results import output_format
from .tables import CsvTable, ParquetTable

__all__ = ["read_result_rows"]


def read_result_rows(out: str | os.PathLike, columns: Sequence[str] | Mapping[str, str]) -> list[dict[str, Any]]:
    """Every complete row of a CSV or Parquet result, `columns` only, typed.

    `columns`: name -> kind ("str", "float", "int", "bool"), as the metric declares them; CSV
    text is turned back into those types (an empty or unreadable cell is `None`). Given as
    names only, the contract's text columns stay text and any other cell is read as what it
    holds: "True"/"False" a flag, else a number.
    """
    kinds = dict(columns) if isinstance(columns, Mapping) else {name: _text_or_unknown(name) for name in columns}
    out = Path(out)
    table = CsvTable(out) if output_format(out) == "csv" else ParquetTable(out)
    rows = []
    for row in table.rows(list(kinds)):
        for name, kind in kinds.items():
            if isinstance(row.get(name), str) and kind != "str":
                row[name] = _typed(row[name], kind)
        rows.append(row)
    return rows


def _text_or_unknown(name: str) -> str | None:
    return "str" if default_kind(name) == "str" else None


def _typed(text: str, kind: str | None) -> Any:
    """A CSV cell as `kind` (`None`: as what it holds); `None` when empty or not of that kind."""
    if text == "" or (kind == "bool" and text not in ("True", "False")):
        return None
    if kind == "bool" or (kind is None and text in ("True", "False")):
        return text == "True"
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        return None if kind is not None else text
