"""Start-up hook: pyiqa finds semantic-iqa's metrics without `import semantic_iqa` (docs/pyiqa.md).

Installed with the package as `semantic_iqa_autoload.pth`, which Python's `site` module runs at
every interpreter start. It must cost nothing in a program that never imports pyiqa, so it
imports nothing and only puts one finder first in `sys.meta_path`. That finder answers for
no module; when `pyiqa` is first imported it removes itself and hands over to the package's
own import hook (`semantic_iqa.integrations`), which registers the metrics the moment
pyiqa's import finishes: `pyiqa.create_metric("dss_sqa")`, `pyiqa -ls` and pyiqa's command
line then see them. Set SEMANTIC_IQA_PYIQA_AUTOLOAD=0 to switch it off.
"""

import os
import sys

ENV_SWITCH = "SEMANTIC_IQA_PYIQA_AUTOLOAD"


class PyiqaAutoload:
    """A `sys.meta_path` finder that wakes up once, for `import pyiqa`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "pyiqa":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        try:
            from semantic_iqa.integrations import pyiqa_spec_that_registers
        except Exception:  # a broken semantic-iqa must never break pyiqa: import it as if we were not here
            return None
        return pyiqa_spec_that_registers(fullname, path, target)


def install():
    """Put the finder first in `sys.meta_path`, unless switched off or pyiqa is imported already."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return
    if "pyiqa" in sys.modules or any(isinstance(finder, PyiqaAutoload) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, PyiqaAutoload())


install()
