"""Lazy public names (PEP 562): a package lists where each name lives, and imports it on first use.

Why: `import semantic_iqa` and `semantic-iqa --help` must not pay for torch, timm or
transformers (tests/test_imports.py). Plain Python only here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_attributes(
    package: str, locations: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, for names imported from `locations` on first use.

    Args:
        package: the package's `__name__`.
        locations: public name -> module defining it, relative to `package` (e.g. ".api").
        public: the package's `__all__`, listed by `dir()` before anything is imported.

    A name, once imported, is kept in the package's namespace, so later look-ups skip
    `__getattr__`.
    """

    def __getattr__(name: str) -> Any:
        location = locations.get(name)
        if location is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(location, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
