"""Adapters to other libraries: pyiqa (`pyiqa`), torchmetrics (`torchmetrics`), training losses (`loss`).

They import the core, never the reverse, and know no metric: each reads what it needs off the
registry entry (kind, inputs, direction, range, options) and calls the `Metric` hooks
(`differentiable_score`, `training_loss`, `make_reference_cache`), so a plug-in metric works
in every adapter. `frozen.py` holds what they share: the frozen held model and its call.

`register_available()` runs at `import semantic_iqa` and registers this package's metrics
with pyiqa in either import order: at once when pyiqa is already imported, otherwise from
an import hook (`_PyiqaImportHook`, one `sys.meta_path` finder) when pyiqa's own import
finishes. pyiqa 0.1.16 has no supported way for an installed package to add a metric name
before that package is imported (see docs/pyiqa.md), so `import semantic_iqa`, before or
after `import pyiqa`, is what registers.
"""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType


_STARTUP_MODULE = "_semantic_iqa_autoload"  # the start-up finder's module (see the repository root)


def register_available() -> None:
    """Register with every library that keeps a registry (today: pyiqa), now or when it is imported.

    pyiqa already imported: its registry gets this package's metrics now. Not yet imported:
    an import hook does it right after `import pyiqa` finishes; without pyiqa installed the hook
    never fires and costs one name comparison per import. Nothing heavy is imported here.

    The start-up finder (`_semantic_iqa_autoload`, installed by the wheel's `.pth` file) has
    done its job once this package is imported: it leaves `sys.meta_path` here, so that one
    hook, never two, wraps pyiqa's loader.
    """
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != _STARTUP_MODULE]
    if sys.modules.get("pyiqa") is not None:  # None: a blocked import (sys.modules["pyiqa"] = None)
        _register_with_pyiqa()
    elif "pyiqa" not in sys.modules and not any(isinstance(f, _PyiqaImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _PyiqaImportHook())


def pyiqa_spec_that_registers(fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
    """pyiqa's module spec, with a loader that registers this package's metrics once pyiqa has run.

    For the start-up hook (`_semantic_iqa_autoload`, run from a `.pth` file), which calls it
    while `import pyiqa` looks for pyiqa: importing this package has just installed its
    import hook (`register_available`), and that hook finds the spec.
    """
    register_available()
    hook = next((finder for finder in sys.meta_path if isinstance(finder, _PyiqaImportHook)), None)
    return hook.find_spec(fullname, path, target) if hook is not None else None


def _register_with_pyiqa() -> None:
    """`semantic_iqa.integrations.pyiqa.register()`, warning instead of raising: pyiqa must keep working."""
    try:
        from .pyiqa import register

        register()
    except Exception as exc:  # a broken or incompatible pyiqa must break neither pyiqa nor semantic_iqa
        warnings.warn(f"semantic-iqa could not register with pyiqa: {exc}", RuntimeWarning, stacklevel=3)


class _PyiqaImportHook:
    """A `sys.meta_path` finder that registers with pyiqa once pyiqa's top-level module has run.

    It finds nothing itself: it asks the finders after it for pyiqa's spec and wraps that
    spec's loader (`_RegisteringLoader`), which runs the real loader, then registers and puts
    the real loader back on the module and spec. The hook leaves `sys.meta_path` when pyiqa
    has been imported; if pyiqa's own import fails, it stays for the next try.
    """

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != "pyiqa":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader, self)
                return spec
        return None


class _RegisteringLoader:
    """pyiqa's own loader, plus registration once the module has finished executing."""

    def __init__(self, loader: Any, hook: _PyiqaImportHook):
        self._loader = loader
        self._hook = hook

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_data, ...: pyiqa's loader's
        return getattr(self._loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._loader.exec_module(module)
        finally:  # the module keeps its real loader either way
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None and module.__spec__.loader is self:
                module.__spec__.loader = self._loader
        if self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        _register_with_pyiqa()
