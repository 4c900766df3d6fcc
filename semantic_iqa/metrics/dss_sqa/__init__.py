"""DSS-SQA: a full-reference semantic quality metric (score 0-5, higher = better).

Its parts: `config` (settings), `model` (the module), `fusion` / `heads` / `gate`, `card`
(model card), `convert` (the authors' checkpoints), `train` / `data` / `features` (the
training recipe on cached features), `reference_cache`, `tiny` (the tiny random preset).

The names below are imported on first use (PEP 562), so `commands` (the `semantic-iqa`
command's part) and `config` load without torch or the backbone libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_attributes

if TYPE_CHECKING:
    from .config import DSSSQAConfig
    from .model import DSSSQA, DSSSQAOutput, ImageFeatures

# Public name -> the sub-module that defines it; imported on first use.
_LAZY = {
    "DSSSQA": ".model",
    "DSSSQAConfig": ".config",
    "DSSSQAOutput": ".model",
    "ImageFeatures": ".model",
}

__all__ = ["DSSSQA", "DSSSQAConfig", "DSSSQAOutput", "ImageFeatures"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
