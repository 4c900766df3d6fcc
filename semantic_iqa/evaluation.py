"""Agreement between predicted scores and human scores (training reports and benchmarks).

- SROCC: Spearman rank correlation, tie-aware (scipy averages tied ranks). Integer labels
  have many ties, so this differs from a plain argsort ranking.
- PLCC: Pearson correlation on the raw predictions.
- Final = 0.6 * SROCC + 0.4 * PLCC (the LoViF challenge's ranking figure).
- MAE, RMSE: on the 0-5 scale.
- PLCC after a 4-parameter logistic fit of predictions to labels, labelled as such.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from .errors import InvalidInputError


def _arrays(predicted: Sequence[float], labels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 2:
        raise InvalidInputError(f"need two equally long series of at least 2 values, got {x.size} and {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidInputError("predictions and labels must be finite")
    return x, y


def srocc(predicted: Sequence[float], labels: Sequence[float]) -> float:
    """Spearman rank correlation with tied ranks averaged (scipy), in [-1, 1]; NaN if constant."""
    x, y = _arrays(predicted, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(x, y).statistic)


def plcc(predicted: Sequence[float], labels: Sequence[float]) -> float:
    """Pearson linear correlation of the raw predictions, in [-1, 1]; NaN if constant."""
    x, y = _arrays(predicted, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.pearsonr(x, y).statistic)


def final_score(srocc_value: float, plcc_value: float) -> float:
    """LoViF Final = 0.6 * SROCC + 0.4 * PLCC."""
    return 0.6 * srocc_value + 0.4 * plcc_value


def logistic_plcc(predicted: Sequence[float], labels: Sequence[float]) -> float:
    """PLCC after fitting a 4-parameter logistic from predictions to labels (NaN if the fit fails)."""
    x, y = _arrays(predicted, labels)

    def logistic(q: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
        return (b1 - b2) / (1 + np.exp(-(q - b3) / abs(b4))) + b2

    start = [y.max(), y.min(), float(np.mean(x)), float(np.std(x)) or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(logistic, x, y, p0=start, maxfev=20_000)
    except (RuntimeError, optimize.OptimizeWarning):
        return float("nan")
    return plcc(logistic(x, *params), y)


def agreement(predicted: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    """SROCC, PLCC, Final, MAE and RMSE of `predicted` against `labels`."""
    x, y = _arrays(predicted, labels)
    s, p = srocc(x, y), plcc(x, y)
    return {
        "srocc": s,
        "plcc": p,
        "final": final_score(s, p),
        "mae": float(np.mean(np.abs(x - y))),
        "rmse": float(np.sqrt(np.mean((x - y) ** 2))),
    }


def two_afc(distance_0: Sequence[float], distance_1: Sequence[float], judge: Sequence[float]) -> np.ndarray:
    """Per-triplet 2AFC score of a distance-like metric (lower = more similar), BAPPS protocol.

    `judge` is the fraction of people who found p1 closer to the reference. A triplet scores
    (d0 < d1) * (1 - judge) + (d1 < d0) * judge + (d0 == d1) * 0.5. For a quality score q
    (higher = better, like DSS-SQA) pass d = -q.
    """
    d0, d1 = _arrays(distance_0, distance_1)
    j = np.asarray(judge, dtype=np.float64).ravel()
    if j.shape != d0.shape or ((j < 0) | (j > 1)).any():
        raise InvalidInputError("judge must hold one fraction in [0, 1] per triplet")
    return (d0 < d1) * (1 - j) + (d1 < d0) * j + (d0 == d1) * 0.5


def two_afc_hard_accuracy(distance_0: Sequence[float], distance_1: Sequence[float], judge: Sequence[float]) -> float:
    """Agreement with the majority (judge >= 0.5 means p1 is closer); ties count half."""
    d0, d1 = _arrays(distance_0, distance_1)
    majority_p1 = np.asarray(judge, dtype=np.float64).ravel() >= 0.5
    return float(np.mean(np.where(d0 == d1, 0.5, (d1 < d0) == majority_p1)))
