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
from .loss import DSSSQALoss
from .model import DSSSQA, DSSSQAOutput
from .reference_cache import ReferenceCache

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "DSSSQA",
    "DSSSQAConfig",
    "DSSSQALoss",
    "DSSSQAOutput",
    "ImageLoadError",
    "ImageNotFoundError",
    "InvalidInputError",
    "InvalidOptionError",
    "PairScore",
    "ReferenceCache",
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

from .integrations import register_available as _register_available

_register_available()
