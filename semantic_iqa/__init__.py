"""semantic-iqa: semantic image-quality metrics (does it still mean the same? is it good?).

>>> import semantic_iqa
>>> semantic_iqa.score("ref.png", "dist.png")  # DSS-SQA, 0-5, higher = better  # doctest: +SKIP
3.87
>>> semantic_iqa.list_metrics()  # doctest: +SKIP
"""

from ._version import __version__
from .api import PairScore, clear_model_cache, load_metric, load_model, score, score_details
from .errors import (
    ConversionError,
    DatasetError,
    ImageLoadError,
    ImageNotFoundError,
    InvalidInputError,
    InvalidOptionError,
    NoPublishedWeightsError,
    SemanticIQAError,
    WeightsCacheError,
    WeightsError,
    WeightsFormatError,
    WeightsIntegrityError,
    WeightsNotFoundError,
)
from .integrations.loss import DSSSQALoss, NoReferenceQualityLoss
from .metric import Metric
from .metrics.dss_sqa import DSSSQA, DSSSQAConfig, DSSSQAOutput
from .metrics.dss_sqa.reference_cache import ReferenceCache
from .registry import MetricInfo, create_metric, list_metrics, register_metric

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
    "Metric",
    "MetricInfo",
    "NoPublishedWeightsError",
    "NoReferenceQualityLoss",
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
    "create_metric",
    "list_metrics",
    "load_metric",
    "load_model",
    "register_metric",
    "score",
    "score_details",
]

from .integrations import register_available as _register_available

_register_available()
