"""semantic-iqa: semantic image-quality metrics (does it still mean the same? is it good?).

>>> import semantic_iqa
>>> semantic_iqa.score("ref.png", "dist.png")  # DSS-SQA, 0-5, higher = better  # doctest: +SKIP
3.87
>>> semantic_iqa.list_metrics()  # doctest: +SKIP

`import semantic_iqa` is cheap: it imports neither torch nor the backbone libraries. The
public names below are imported on first use (PEP 562), so `semantic_iqa.score` or
`from semantic_iqa import DSSSQA` loads the model code then. The errors, the registry and
`__version__` are plain Python and load at once. When pyiqa is imported, before or after
this package, this package's metrics are registered with it (`semantic_iqa.integrations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
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
from .lazy import lazy_attributes
from .registry import MetricInfo, create_metric, list_metrics, register_metric

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` below imports these
    from .api import PairScore, clear_model_cache, load_metric, load_model, score, score_details
    from .explanation import Explanation, explain
    from .integrations.loss import DSSSQALoss, NoReferenceQualityLoss
    from .metric import Metric
    from .metrics.dss_sqa import DSSSQA, DSSSQAConfig, DSSSQAOutput
    from .reference_cache import ReferenceCache

# Public name -> the module (relative to this package) that defines it; imported on first use.
_LAZY = {
    "PairScore": ".api",
    "clear_model_cache": ".api",
    "load_metric": ".api",
    "load_model": ".api",
    "score": ".api",
    "score_details": ".api",
    "Explanation": ".explanation",
    "explain": ".explanation",
    "DSSSQALoss": ".integrations.loss",
    "NoReferenceQualityLoss": ".integrations.loss",
    "Metric": ".metric",
    "DSSSQA": ".metrics.dss_sqa",
    "DSSSQAConfig": ".metrics.dss_sqa.config",
    "DSSSQAOutput": ".metrics.dss_sqa",
    "ReferenceCache": ".reference_cache",
}

__all__ = [
    "ConversionError",
    "DatasetError",
    "DSSSQA",
    "DSSSQAConfig",
    "DSSSQALoss",
    "DSSSQAOutput",
    "Explanation",
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
    "explain",
    "list_metrics",
    "load_metric",
    "load_model",
    "register_metric",
    "score",
    "score_details",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)


from .integrations import register_available as _register_available  # noqa: E402

_register_available()  # with pyiqa: now if it is imported already, else when it is (an import hook)
