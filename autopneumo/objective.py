"""Recall-constrained precision, computed exactly on a whole split.

The objective is the highest precision among the decision thresholds whose recall is
at least the target (default 0.95). Thresholds are the distinct predicted scores
(predict pneumonia when ``score >= threshold``), so the value is exact, not a
fixed-bucket approximation. Among equally precise thresholds the one with the highest
recall wins. Ties in precision are broken by AUC through ``objective_score``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

OBJECTIVE = "val_objective"  # the name keras-tuner optimises; not a Keras registry key
DEFAULT_RECALL_TARGET = 0.95
_PRECISION_QUANTUM = 1e-4
# what the test intervals of a record resample (records without the field: images)
CI_RESAMPLED = "patients"


def resampled_over(groups) -> str:
    """What a bootstrap over ``groups`` resamples, for the record: ``patients``, or
    ``images`` where every image is its own group (a MedMNIST .npz has no patient ids)."""
    groups = np.asarray(groups)
    return CI_RESAMPLED if len(np.unique(groups)) < len(groups) else "images"


@dataclass(frozen=True)
class OperatingPoint:
    precision: float  # NaN when no threshold reaches the recall target
    recall: float
    threshold: float


def precision_at_recall(y_true, scores, target: float = DEFAULT_RECALL_TARGET) -> OperatingPoint:
    """Best precision with recall >= ``target``, and the threshold that gives it."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    positives = int(y.sum())
    if positives == 0 or len(y) == 0:
        return OperatingPoint(math.nan, math.nan, math.nan)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # a threshold equal to a score takes every sample with that score: use group ends
    last_of_group = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp, fp, thresholds = tp[last_of_group], fp[last_of_group], s_sorted[last_of_group]
    recall = tp / positives
    precision = tp / (tp + fp)
    ok = recall >= target - 1e-12
    if not ok.any():
        return OperatingPoint(math.nan, math.nan, math.nan)
    best = np.max(precision[ok])
    # among the best, the highest recall (the lowest threshold)
    candidates = np.flatnonzero(ok & (precision >= best - 1e-15))
    i = candidates[-1]
    return OperatingPoint(float(precision[i]), float(recall[i]), float(thresholds[i]))


def objective_score(precision: float, auc: float) -> float:
    """Precision (to 1e-4) first, AUC second: ``floor(p / 1e-4) * 1e-4 + auc * 1e-5``.

    The AUC term is below one precision quantum, so it only orders equal precisions.
    A model that cannot reach the recall target scores below any that can.
    """
    if math.isnan(precision):
        return -1.0 + (0.0 if math.isnan(auc) else auc * 1e-5)
    quantised = math.floor(precision / _PRECISION_QUANTUM + 1e-9) * _PRECISION_QUANTUM
    return quantised + (0.0 if math.isnan(auc) else auc * 1e-5)


def binary_metrics(y_true, scores, threshold: float, target: float) -> dict[str, float]:
    """Every metric the leaderboard shows, at a given decision threshold."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    tn = int(np.sum(~pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    loss = float(np.mean(log_losses(y, s))) if len(y) else math.nan
    auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else math.nan
    point = precision_at_recall(y, s, target)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {
        "loss": loss,
        "accuracy": _ratio(tp + tn, len(y)),
        "precision": precision,
        "recall": recall,
        "specificity": _ratio(tn, tn + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": auc,
        "prec_at_recall": point.precision,
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n": len(y),
    }


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def recorded_metric(test: dict[str, Any], name: str) -> float:
    """One metric of a record's ``test`` block. Records written before the negative
    predictive value existed (sixteenth session) have its counts: it is derived from them.
    A block that is not a mapping raises TypeError (the leaderboard skips such a record)."""
    if not isinstance(test, dict):
        raise TypeError(f"the test block is a {type(test).__name__}, not a mapping")
    if name in test:
        return test[name]
    if name == "npv" and "tn" in test and "fn" in test:
        return _ratio(int(test["tn"]), int(test["tn"]) + int(test["fn"]))
    return math.nan


@dataclass(frozen=True)
class Calibration:
    """How far a model's probabilities are from frequencies: among the images it gives
    about p, does a share p have pneumonia? Equal-width bins over [0, 1]."""

    brier: float  # mean squared difference between probability and label
    ece: float  # expected calibration error: the bins' |observed - predicted|, image-weighted
    mean_probability: float
    observed: float  # the share of pneumonia images
    bins: Any  # a DataFrame: per non-empty bin lo, hi, n, predicted (mean), observed (share)


def calibration(y: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> Calibration:
    """Brier score, expected calibration error and the reliability diagram's points."""
    import pandas as pd

    y = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not len(y):
        return Calibration(math.nan, math.nan, math.nan, math.nan, pd.DataFrame(
            columns=["lo", "hi", "n", "predicted", "observed"]))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)  # 1.0: last bin
    n = np.bincount(which, minlength=n_bins)
    predicted = np.bincount(which, weights=s, minlength=n_bins)
    observed = np.bincount(which, weights=y, minlength=n_bins)
    kept = n > 0
    bins = pd.DataFrame({"lo": edges[:-1][kept], "hi": edges[1:][kept], "n": n[kept],
                         "predicted": predicted[kept] / n[kept],
                         "observed": observed[kept] / n[kept]})
    ece = float(np.sum(bins.n * (bins.observed - bins.predicted).abs()) / len(y))
    return Calibration(float(np.mean((s - y) ** 2)), ece, float(s.mean()), float(y.mean()), bins)


def validation_summary(y_true, scores, target: float) -> dict[str, float]:
    """What the objective callback logs each epoch (keys without the ``val_`` prefix)."""
    point = precision_at_recall(y_true, scores, target)
    at_half = binary_metrics(y_true, scores, 0.5, target)
    return {
        "loss": at_half["loss"],
        "accuracy": at_half["accuracy"],
        "precision": at_half["precision"],
        "recall": at_half["recall"],
        "auc": at_half["auc"],
        "prec_at_recall": point.precision,
        "threshold": point.threshold,
        "objective": objective_score(point.precision, at_half["auc"]),
    }


def weighted_auc(counts: np.ndarray, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``counts`` (per-sample multiplicities, e.g. bootstrap
    resamples): the Mann-Whitney form with weights, tied scores counted half."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(s[order]) != 0])
    w = counts[:, order]
    pos = np.add.reduceat(w * y[order], starts, axis=1)
    neg = np.add.reduceat(w * ~y[order], starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(pos * (neg_below + 0.5 * neg), axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def weighted_precision_at_recall(counts: np.ndarray, y: np.ndarray, scores: np.ndarray,
                                 target: float) -> np.ndarray:
    """``precision_at_recall(...).precision`` of each row of ``counts`` (per-sample
    multiplicities): thresholds at the distinct scores, every sample with the threshold's
    score taken; NaN where no threshold reaches ``target`` (or no positive was drawn)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    ends = np.r_[s[order][1:] != s[order][:-1], True]  # the last sample of each score
    w = counts[:, order]
    tp = np.cumsum(w * y[order], axis=1)[:, ends]
    fp = np.cumsum(w * ~y[order], axis=1)[:, ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / tp[:, -1:]
        precision = tp / (tp + fp)
    ok = (recall >= target - 1e-12) & np.isfinite(precision)
    best = np.where(ok, precision, -np.inf).max(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def log_losses(y_true, scores) -> np.ndarray:
    """Per-sample binary cross-entropy, clipped as ``binary_metrics``' loss."""
    y = np.asarray(y_true).astype(float).ravel()
    clipped = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    return -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))


def resample_counts(n: int, n_boot: int, seed: int = 0, groups=None) -> np.ndarray:
    """(n_boot, n) multiplicities of a case bootstrap, one row a resample.

    With ``groups`` (one id per sample: the patient) whole groups are drawn with
    replacement and each sample counts as often as its group was drawn: a cluster
    bootstrap, because images of one patient are not independent observations. Without,
    or with one group per sample, it is the plain bootstrap over samples. One matrix serves
    both models of a paired comparison, so their differences are on the same resamples.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    groups = np.asarray(groups).ravel()
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group ids for {n} samples")
    _, codes = np.unique(groups, return_inverse=True)
    k = int(codes.max()) + 1 if n else 0
    per_group = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)
    return per_group[:, codes]


def check_bootstrap(n_boot: Any, seed: Any = 0) -> None:
    """The bootstrap's options as Python passes them (no CLI parses them): ``n_boot=0``
    left every interval NaN; a seed NumPy's generator cannot take failed after the work."""
    from .errors import OptionError
    from .spaces import is_integer, positive_int

    if not positive_int(n_boot):
        raise OptionError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (is_integer(seed) and 0 <= seed < 2**32):
        raise OptionError(f"seed must be an integer in [0, 2**32), got {seed!r}")


def bootstrap_intervals(
    y_true, scores, threshold: float, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
    groups=None, target: float | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for loss, accuracy, precision, recall, specificity,
    negative predictive value, F1, AUC and, given the recall ``target``, the precision at it
    (``prec_at_recall``).

    ``groups`` (the patient of each image) makes it a cluster bootstrap over patients
    (``resample_counts``); without, images are resampled one by one. Each resample is a
    vector of multiplicities, so all resamples are computed at once; AUC uses the
    Mann-Whitney form with tied scores counted half.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n = len(y)
    if n == 0:
        return {}
    counts = resample_counts(n, n_boot, seed, groups)
    pred = s >= threshold
    tp = counts @ (pred & y)
    fp = counts @ (pred & ~y)
    tn = counts @ (~pred & ~y)
    fn = counts @ (~pred & y)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = {
            "accuracy": (tp + tn) / counts.sum(axis=1),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "npv": tn / (tn + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "auc": weighted_auc(counts, y, s),
            "loss": counts @ log_losses(y, s) / counts.sum(axis=1),
        }
        if target is not None:
            samples["prec_at_recall"] = weighted_precision_at_recall(counts, y, s, target)
    return {key: percentile_interval(values, level, (0.0, math.inf) if key == "loss"
                                     else (0.0, 1.0))
            for key, values in samples.items()}


def percentile_interval(values: np.ndarray, level: float,
                        bounds: tuple[float, float]) -> tuple[float, float]:
    """The percentile interval of bootstrap ``values`` over all of them: a resample where
    the metric is undefined (NaN: no image called normal, for the NPV) counts as its lowest
    possible value for the lower bound and its highest for the upper one (``bounds``).
    Dropping those resamples would leave the ones that drew the few images the metric
    rests on, and a narrow interval; counted, an interval where more than (1 - level) / 2
    of them are undefined reaches (interpolated between the resamples: nearly, for a few
    hundred) the end of the range. NaN where no resample defines it.
    """
    values = np.asarray(values, dtype=np.float64)
    undefined = ~np.isfinite(values)
    if undefined.all():
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lo = np.quantile(np.where(undefined, bounds[0], values), alpha)
        hi = np.quantile(np.where(undefined, bounds[1], values), 1 - alpha)
    # between two infinite bounds numpy interpolates to NaN: the bound it lies on
    return (bounds[0] if math.isnan(lo) else float(lo), bounds[1] if math.isnan(hi) else float(hi))
