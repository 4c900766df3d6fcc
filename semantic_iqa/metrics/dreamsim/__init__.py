"""DreamSim: a full-reference perceptual distance (lower = more similar), exact to its authors' code.

- `branches.py`: the branches (DINO, CLIP, OpenCLIP ViTs), their features and normalisation.
- `config.py`: `DreamSimConfig` (JSON form of a weights folder's settings).
- `preprocess.py`: the bicubic resize to 224 x 224, aspect not kept (PIL path, torch path).
- `model.py`: the `DreamSim` metric: encoders, embedding, distance.
- `card.py`: the model card; `tiny.py`: random models of the real timm classes.
- `convert.py`: the authors' release (backbone checkpoints + peft LoRA) -> a weights folder.
- `commands.py`: its part of the `semantic-iqa` command.

The names below are imported on first use (PEP 562), so `commands` and `config` load
without torch or the backbone libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_attributes

if TYPE_CHECKING:
    from .config import DreamSimConfig
    from .convert import convert_dreamsim
    from .model import DreamSim, embedding_distance, normalize_embedding
    from .output import DreamSimOutput

_LAZY = {
    "DreamSim": ".model",
    "DreamSimConfig": ".config",
    "DreamSimOutput": ".output",
    "convert_dreamsim": ".convert",
    "embedding_distance": ".model",
    "normalize_embedding": ".model",
}

__all__ = [
    "DreamSim",
    "DreamSimConfig",
    "DreamSimOutput",
    "convert_dreamsim",
    "embedding_distance",
    "normalize_embedding",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
