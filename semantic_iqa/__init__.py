"""semantic-iqa: semantic image-quality metrics (does it still mean the same? is it good?).

>>> import semantic_iqa
>>> semantic_iqa.score("ref.png", "dist.png")  # the default metric (DSS-SQA, 0-5, higher = better)  # doctest: +SKIP
3.87
>>> semantic_iqa.score("img.png", metric=NAME)  # any registered metric (no reference here)  # doctest: +SKIP
>>> semantic_iqa.list_metrics()  # built-ins and plug-ins  # doctest: +SKIP

`import semantic_iqa` is cheap: it imports neither torch nor the backbone libraries. The
public names below are imported on first use (PEP 562), so `semantic_iqa.score` or
`from semantic_iqa import DSSSQA` loads the model code then. The errors, the registry, the
contract (`MetricOption`, `ResultField`) and `__version__` are plain Python and load at once.
When pyiqa is imported, before or after this package, the metrics are registered with it
(`semantic_iqa.integrations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .contract import MetricOption, ResultField
from .errors import (
    ConversionError,
    DatasetError,
    ImageLoadError,
    ImageNotFoundError,
    InvalidInputError,
    InvalidOptionError,
    MetricContractError,
    NoPublishedWeightsError,
    PluginWarning,
    SemanticIQAError,
    UnknownOptionError,
    WeightsCacheError,
    WeightsError,
    WeightsFormatError,
    WeightsIntegrityError,
    WeightsNotFoundError,
)
from .lazy import lazy_attributes
from .registry import HubWeights, MetricInfo, create_metric, default_metric, list_metrics, metric_info, register_metric

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` below imports these
    from .api import ItemScore, PairScore, clear_model_cache, embed, load_metric, load_model, score, score_details
    from .explanation import Explanation, explain
    from .integrations.loss import DSSSQALoss, NoReferenceQualityLoss, QualityLoss
    from .integrations.torchmetrics import FullReferenceQualityMetric, NoReferenceQualityMetric
    from .metric import Metric
    from .metric_output import MetricOutput
    from .metrics.dreamsim import DreamSim, DreamSimConfig, DreamSimOutput
    from .metrics.dss_sqa import DSSSQA, DSSSQAConfig, DSSSQAOutput
    from .metrics.mst_clipiqa import MSTCLIPIQA, MSTCLIPIQAConfig, MSTCLIPIQAOutput
    from .precision import resolve_precision
    from .reference_cache import ReferenceCache

# Public name -> the module (relative to this package) that defines it; imported on first use.
# The metrics' own classes are named here, and only here outside their folders (tests/test_metric_names.py).
_LAZY = {
    "ItemScore": ".api",
    "PairScore": ".api",
    "clear_model_cache": ".api",
    "embed": ".api",
    "load_metric": ".api",
    "load_model": ".api",
    "score": ".api",
    "score_details": ".api",
    "Explanation": ".explanation",
    "explain": ".explanation",
    "DSSSQALoss": ".integrations.loss",
    "NoReferenceQualityLoss": ".integrations.loss",
    "QualityLoss": ".integrations.loss",
    "FullReferenceQualityMetric": ".integrations.torchmetrics",
    "NoReferenceQualityMetric": ".integrations.torchmetrics",
    "Metric": ".metric",
    "MetricOutput": ".metric_output",
    "DSSSQA": ".metrics.dss_sqa",
    "DSSSQAConfig": ".metrics.dss_sqa.config",
    "DSSSQAOutput": ".metrics.dss_sqa",
    "DreamSim": ".metrics.dreamsim",
    "DreamSimConfig": ".metrics.dreamsim.config",
    "DreamSimOutput": ".metrics.dreamsim.output",
    "MSTCLIPIQA": ".metrics.mst_clipiqa",
    "MSTCLIPIQAConfig": ".metrics.mst_clipiqa.config",
    "MSTCLIPIQAOutput": ".metrics.mst_clipiqa",
    "ReferenceCache": ".reference_cache",
    "resolve_precision": ".precision",
}

__all__ = [
    "ConversionError",
    "DatasetError",
    "DSSSQA",
    "DSSSQAConfig",
    "DSSSQALoss",
    "DSSSQAOutput",
    "DreamSim",
    "DreamSimConfig",
    "DreamSimOutput",
    "Explanation",
    "HubWeights",
    "ImageLoadError",
    "ImageNotFoundError",
    "InvalidInputError",
    "InvalidOptionError",
    "ItemScore",
    "Metric",
    "MetricContractError",
    "MetricInfo",
    "MetricOption",
    "MetricOutput",
    "MSTCLIPIQA",
    "MSTCLIPIQAConfig",
    "MSTCLIPIQAOutput",
    "NoPublishedWeightsError",
    "NoReferenceQualityLoss",
    "NoReferenceQualityMetric",
    "QualityLoss",
    "FullReferenceQualityMetric",
    "PairScore",
    "PluginWarning",
    "ReferenceCache",
    "ResultField",
    "SemanticIQAError",
    "UnknownOptionError",
    "WeightsCacheError",
    "WeightsError",
    "WeightsFormatError",
    "WeightsIntegrityError",
    "WeightsNotFoundError",
    "__version__",
    "clear_model_cache",
    "create_metric",
    "default_metric",
    "embed",
    "explain",
    "list_metrics",
    "load_metric",
    "load_model",
    "metric_info",
    "register_metric",
    "resolve_precision",
    "score",
    "score_details",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)


from .integrations import register_available as _register_available  # noqa: E402

_register_available()  # with pyiqa: now if it is imported already, else when it is (an import hook)
