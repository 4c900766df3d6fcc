"""semantic-iqa: DSS-SQA, a full-reference semantic image-quality metric (0-5, higher = better).

>>> import semantic_iqa
>>> semantic_iqa.score("ref.png", "dist.png")  # doctest: +SKIP
3.87
"""

from ._version import __version__
from .api import PairScore, clear_model_cache, load_model, score, score_details
from .config import DSSSQAConfig
from .errors import (
    ConversionError,
    DatasetError,
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

__all__ = [
    "ConversionError",
    "DatasetError",
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
