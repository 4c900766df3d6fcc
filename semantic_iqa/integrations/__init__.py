"""Adapters to other libraries: pyiqa (`pyiqa`), torchmetrics (`torchmetrics`).

They import the core, never the reverse. `register_available()` runs at `import
semantic_iqa` so that `pyiqa.create_metric("dss_sqa")` works right after it.
"""

from __future__ import annotations

import importlib.util
import warnings


def register_available() -> None:
    """Register with every installed library that keeps a registry (today: pyiqa)."""
    if importlib.util.find_spec("pyiqa") is None:
        return
    try:
        from .pyiqa import register

        register()
    except Exception as exc:  # a broken pyiqa install must not break semantic_iqa itself
        warnings.warn(f"semantic-iqa could not register with pyiqa: {exc}", RuntimeWarning, stacklevel=2)
