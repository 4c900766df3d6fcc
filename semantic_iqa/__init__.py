"""semantic-iqa: DSS-SQA, a full-reference semantic image-quality metric (0-5, higher = better).

>>> import semantic_iqa
>>> semantic_iqa.score("ref.png", "dist.png")  # doctest: +SKIP
3.87
"""

from .api import PairScore, clear_model_cache, load_model, score, score_details
from .config import DSSSQAConfig
from .errors import (
    ConversionError,
    ImageLoadError,
    ImageNotFoundError,
    InvalidInputError,
    InvalidOptionError,
    SemanticIQAError,
    WeightsCacheError,
    WeightsError,
    WeightsFormatError,
    WeightsIntegrityError,
    WeightsNotFoundError,
)
from .model import DSSSQA, DSSSQAOutput

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "DSSSQA",
    "DSSSQAConfig",
    "DSSSQAOutput",
    "ImageLoadError",
    "ImageNotFoundError",
    "InvalidInputError",
    "InvalidOptionError",
    "PairScore",
    "SemanticIQAError",
    "WeightsCacheError",
    "WeightsError",
    "WeightsFormatError",
    "WeightsIntegrityError",
    "WeightsNotFoundError",
    "__version__",
    "clear_model_cache",
    "load_model",
    "score",
    "score_details",
]
