"""The report's statistics on saved test predictions: curves, confusion counts, paired
bootstrap differences between two models, McNemar's test, hyperparameter effects.

Everything works on the predictions files the evaluation wrote, so the report never
re-runs a model to get a number, and every number can be recomputed independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..objective import percentile_interval, resample_counts, weighted_auc
from .runs import Predictions


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


PREVALENCES = (0.05, 0.10, 0.25, 0.50)  # screening to a chest clinic; the test set's is added


def at_prevalence(sensitivity: float, specificity: float,
                  prevalence: float) -> tuple[float, float]:
    """(precision, negative predictive value) the same sensitivity and specificity give
    where a share ``prevalence`` of the images has pneumonia (Bayes' rule). Sensitivity
    and specificity do not depend on the prevalence; precision and NPV do."""
    p = prevalence
    true_pos, false_pos = sensitivity * p, (1 - specificity) * (1 - p)
    true_neg, false_neg = specificity * (1 - p), (1 - sensitivity) * p
    ppv = true_pos / (true_pos + false_pos) if true_pos + false_pos > 0 else math.nan
    npv = true_neg / (true_neg + false_neg) if true_neg + false_neg > 0 else math.nan
    return ppv, npv


def confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> Confusion:
    """Counts at ``score >= threshold`` (the evaluation's rule)."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(scores) >= threshold
    return Confusion(tp=int(np.sum(pred & y)), fp=int(np.sum(pred & ~y)),
                     tn=int(np.sum(~pred & ~y)), fn=int(np.sum(~pred & y)))


@dataclass(frozen=True)
class Curve:
    """ROC and precision-recall points at every distinct score (``score >= t``)."""

    thresholds: np.ndarray  # decreasing
    fpr: np.ndarray
    tpr: np.ndarray  # = recall
    precision: np.ndarray


def curve(y: np.ndarray, scores: np.ndarray) -> Curve:
    """Exact curves from sorted scores (what scikit-learn's ``roc_curve`` with
    ``drop_intermediate=False`` and ``precision_recall_curve`` give, without importing
    scikit-learn, whose scipy import alone costs seconds of the report's budget)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last].astype(float)
    fp = np.cumsum(~y_sorted)[last].astype(float)
    positives, negatives = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return Curve(thresholds=s_sorted[last], fpr=fp / negatives, tpr=tp / positives,
                 precision=tp / (tp + fp))


def align(a: Predictions, b: Predictions) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices into ``a`` and ``b`` of the test images both models scored (by file name).

    ``None`` when they share no image or disagree on a label (different data sets).
    """
    common, ia, ib = np.intersect1d(a.file, b.file, assume_unique=False, return_indices=True)
    if len(common) == 0 or np.any(a.label[ia] != b.label[ib]):
        return None
    return ia, ib


def weighted_precision(counts: np.ndarray, y: np.ndarray, scores: np.ndarray,
                       threshold: float) -> np.ndarray:
    pred = np.asarray(scores) >= threshold
    y = np.asarray(y).astype(bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ (pred & y)) / (counts @ pred)


def precision(y: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    c = confusion(y, scores, threshold)
    return c.tp / (c.tp + c.fp) if c.tp + c.fp else math.nan


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    return float(weighted_auc(np.ones((1, len(y))), y, scores)[0])


@dataclass(frozen=True)
class Difference:
    """``a - b`` on the same test images, with a paired percentile bootstrap interval."""

    metric: str
    value: float
    lo: float
    hi: float
    n: int

    @property
    def verdict(self) -> str:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return "undetermined"
        if self.lo > 0:
            return "better"
        if self.hi < 0:
            return "worse"
        return "no clear difference"


def paired_differences(y: np.ndarray, s_a: np.ndarray, t_a: float, s_b: np.ndarray,
                       t_b: float, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95, groups=None) -> dict[str, Difference]:
    """Test precision (each at its own validation threshold) and AUC of a minus b;
    ``groups`` (each image's patient) resamples patients rather than images."""
    counts = resample_counts(len(y), n_boot, seed, groups)
    samples = {
        "precision": (weighted_precision(counts, y, s_a, t_a)
                      - weighted_precision(counts, y, s_b, t_b)),
        "auc": weighted_auc(counts, y, s_a) - weighted_auc(counts, y, s_b),
    }
    points = {"precision": precision(y, s_a, t_a) - precision(y, s_b, t_b),
              "auc": auc(y, s_a) - auc(y, s_b)}
    out = {}
    for metric, values in samples.items():  # a resample where either side is undefined
        # counts as the widest difference, -1 below and +1 above (``percentile_interval``)
        lo, hi = percentile_interval(values, level, (-1.0, 1.0))
        out[metric] = Difference(metric, float(points[metric]), lo, hi, len(y))
    return out


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: the discordant pairs of two classifiers on the same images; with
    patients, a sign test over the patients on whose images the two differ."""

    only_a: int  # images a classifies correctly and b does not
    only_b: int
    n: int
    p_value: float
    patients_a: int | None = None  # patients with more images only a gets right
    patients_b: int | None = None
    patients: int | None = None  # patients in the comparison


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, groups=None) -> McNemar:
    """Two-sided exact binomial test of ``only_a`` among the discordant pairs (p = 1/2).

    With ``groups`` (the patient of each image), the images of a patient are not
    independent: the test counts patients instead, each by the sign of (images only a
    gets right - images only b gets right), ties left out (a sign test over patients,
    McNemar's test where every patient has one image)."""
    y = np.asarray(y).astype(bool)
    right_a = np.asarray(pred_a).astype(bool) == y
    right_b = np.asarray(pred_b).astype(bool) == y
    a_only, b_only = right_a & ~right_b, ~right_a & right_b
    only_a, only_b = int(np.sum(a_only)), int(np.sum(b_only))
    if groups is None:
        return McNemar(only_a, only_b, len(y), binomial_two_sided(only_a, only_a + only_b))
    _, codes = np.unique(np.asarray(groups).ravel(), return_inverse=True)
    diff = np.bincount(codes, weights=a_only.astype(float) - b_only.astype(float))
    pa, pb = int(np.sum(diff > 0)), int(np.sum(diff < 0))
    return McNemar(only_a, only_b, len(y), binomial_two_sided(pa, pa + pb), pa, pb,
                   int(len(diff)))


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` fair coin flips.

    The distribution is symmetric, so this is twice the smaller tail, capped at 1 (what
    ``scipy.stats.binomtest(k, n, 0.5).pvalue`` gives). Integer arithmetic, exact; and no
    scipy.stats import, which alone costs over a second of the report's time budget.
    """
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2 * tail / 2**n)


@dataclass(frozen=True)
class HyperparameterEffect:
    name: str
    kind: str  # "numeric" or "categorical"
    n: int
    spearman: float  # numeric: rank correlation with the objective; NaN for categorical
    best_value: str  # the value of the best trial
    by_value: dict[str, float]  # categorical: median objective per value


def hyperparameter_effects(frame: pd.DataFrame, objective: str = "val_objective",
                           max_values: int = 12) -> list[HyperparameterEffect]:
    """Per ``hp:*`` column: how the objective moves with it across completed trials.

    Numeric values get a Spearman rank correlation; choices, booleans and strings get the
    median objective per value. Sorted by name.
    """
    out = []
    for col in (c for c in frame.columns if str(c).startswith("hp:")):
        part = frame[[col, objective]].dropna()
        if len(part) < 2 or part[col].nunique() < 2:
            continue
        values = part[col]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        best_value = value_label(part.sort_values(objective, ascending=False)[col].iloc[0])
        if numeric and values.nunique() > 2:
            rho = float(part[col].rank().corr(part[objective].rank()))
            out.append(HyperparameterEffect(col[3:], "numeric", len(part), rho, best_value, {}))
        else:
            medians = part.groupby(part[col].map(value_label))[objective].median()
            medians = medians.sort_values(ascending=False).head(max_values)
            by_value = {str(k): float(v) for k, v in medians.items()}
            out.append(HyperparameterEffect(col[3:], "categorical", len(part), math.nan,
                                            best_value, by_value))
    return sorted(out, key=lambda e: e.name)


def value_label(value: object) -> str:
    """A hyperparameter value as text: floats to 4 significant digits (0.6000000000000001
    reads 0.6), everything else as it is."""
    if isinstance(value, float | np.floating) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)
