"""DSS-SQA: a full-reference semantic quality metric (score 0-5, higher = better).

Its parts: `config` (settings), `model` (the module), `fusion` / `heads` / `gate`, `card`
(model card), `convert` (the authors' checkpoints), `train` / `data` / `features` (the
training recipe on cached features), `reference_cache`, `tiny` (the tiny random preset).
"""

from .config import DSSSQAConfig
from .model import DSSSQA, DSSSQAOutput, ImageFeatures

__all__ = ["DSSSQA", "DSSSQAConfig", "DSSSQAOutput", "ImageFeatures"]
