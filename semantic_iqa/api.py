"""One-call scoring: `score(ref, dist)` and `score_details(ref, dist)`.

The model is loaded once per (weights, device) and kept for later calls.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import torch

from .devices import resolve_device
from .inputs import Images, is_single_image
from .metric import Metric
from .metrics.dss_sqa import DSSSQA, DSSSQAOutput
from .registry import create_metric, metric_info

_MODELS: dict[tuple[str | None, ...], Metric] = {}
_MODELS_LOCK = threading.Lock()


@dataclass(frozen=True)
class PairScore:
    """Everything DSS-SQA says about one pair (higher scores = better, range [0, 5])."""

    score: float
    fold_scores: tuple[float, ...]
    fold_std: float
    cos_sim: float
    gated: bool


def load_metric(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> Metric:
    """Metric `name` with `weights` (folder or Hub repo id; `None` = its default) on `device`, cached.

    The same arguments give the same object, so repeated `score` calls load once.
    """
    target = resolve_device(device)
    source = (str(weights), None) if weights is not None else metric_info(name).default_source()
    key = (name, *source, str(target), precision)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = create_metric(name, weights, device=target, precision=precision)
        return _MODELS[key]


def load_model(
    weights: str | os.PathLike | None = None, device: str | torch.device | None = None, precision: str = "fp32"
) -> DSSSQA:
    """The DSS-SQA model for `weights` (folder or Hub repo id; `None` = default) on `device`, cached."""
    return load_metric("dss_sqa", weights, device, precision)


def clear_model_cache() -> None:
    """Forget the models `load_model` kept (frees their memory once unreferenced)."""
    with _MODELS_LOCK:
        _MODELS.clear()


def score(
    ref: Images,
    dist: Images,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    gate: str = "hard",
    batch_size: int = 16,
    progress: bool = False,
    precision: str = "fp32",
) -> float | torch.Tensor:
    """DSS-SQA semantic quality of `dist` against `ref`: in [0, 5], higher = better.

    Args:
        ref: reference image(s): path, PIL image, uint8 HxWxC array, float tensor in
            [0, 1] (CxHxW or BxCxHxW), or a list of these.
        dist: distorted image(s), one per reference.
        weights: weights folder or Hub repo id; `None` = `$SEMANTIC_IQA_WEIGHTS` or the
            published model.
        device: "auto" (default: CUDA if available), "cpu", "cuda", "cuda:N".
        gate: semantic gate mode, "hard" (default), "soft" or "off".
        batch_size: pairs per backbone pass.
        progress: show a progress bar.
        precision: backbone precision, "fp32" (default, the reference) or "bf16" (faster on GPUs).

    Returns:
        A float for one pair; a 1-D float32 CPU tensor for a batch or list. No gradients:
        use `DSSSQA.forward` for those.
    """
    output = load_model(weights, device, precision).predict(
        ref, dist, gate=gate, batch_size=batch_size, progress=progress
    )
    scores = output.score.float().cpu()
    return float(scores[0]) if is_single_image(ref) else scores


def score_details(
    ref: Images,
    dist: Images,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    gate: str = "hard",
    batch_size: int = 16,
    progress: bool = False,
    precision: str = "fp32",
) -> PairScore | list[PairScore]:
    """Like `score`, with the fold scores, their standard deviation, the CLIP cosine and the gate.

    Returns a `PairScore` for one pair, a list of them for a batch or list.
    """
    output = load_model(weights, device, precision).predict(
        ref, dist, gate=gate, batch_size=batch_size, progress=progress
    )
    pairs = records_to_pair_scores(output)
    return pairs[0] if is_single_image(ref) else pairs


def records_to_pair_scores(output: DSSSQAOutput) -> list[PairScore]:
    """`DSSSQAOutput` -> one `PairScore` per pair."""
    return [PairScore(**{**r, "fold_scores": tuple(r["fold_scores"])}) for r in output.to_records()]
