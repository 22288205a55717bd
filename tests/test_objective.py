"""The recall-constrained objective, the leaderboard metrics and the bootstrap intervals,
checked against brute force and scikit-learn."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from autopneumo.objective import (
    binary_metrics,
    bootstrap_intervals,
    objective_score,
    precision_at_recall,
    recorded_metric,
    resample_counts,
    validation_summary,
    weighted_precision_at_recall,
)

TARGETS = [0.5, 0.8, 0.9, 0.95, 1.0]


def brute_force(y, s, target):
    """Every distinct score as threshold (predict 1 when score >= t), in exact fractions.

    Returns (precision, recall, threshold) of the most precise threshold whose recall is
    at least ``target``; among equally precise ones the highest recall.
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0:
        return None
    goal = Fraction(str(target))
    best = None
    for t in np.unique(s):
        pred = s >= t
        tp = int(np.sum(pred & y))
        fp = int(np.sum(pred & ~y))
        recall = Fraction(tp, positives)
        if recall < goal:
            continue
        precision = Fraction(tp, tp + fp)
        key = (precision, recall)
        if best is None or key > best[0]:
            best = (key, float(t))
    if best is None:
        return None
    (precision, recall), t = best
    return float(precision), float(recall), t


def _random_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    y = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
    if y.sum() == 0:
        y[0] = 1
    signal = rng.uniform(0.0, 2.5)
    raw = rng.normal(size=n) + signal * y
    style = seed % 3
    if style == 0:  # continuous scores
        s = 1 / (1 + np.exp(-raw))
    elif style == 1:  # heavy ties: scores on a coarse grid
        s = np.round(1 / (1 + np.exp(-raw)), 1)
    else:  # very heavy ties, ints as scores
        s = np.clip(np.round(raw), -2, 3).astype(float)
    return y, s


@pytest.mark.parametrize("seed", range(40))
def test_precision_at_recall_matches_brute_force(seed):
    y, s = _random_case(seed)
    for target in TARGETS:
        expected = brute_force(y, s, target)
        got = precision_at_recall(y, s, target)
        assert expected is not None  # the lowest threshold always gives recall 1
        precision, recall, threshold = expected
        assert got.precision == pytest.approx(precision, abs=1e-12), (seed, target)
        assert got.recall == pytest.approx(recall, abs=1e-12), (seed, target)
        assert got.threshold == threshold, (seed, target)
        assert got.recall >= target - 1e-12


@pytest.mark.parametrize(("positives", "target"), [(20, 0.95), (10, 0.9), (40, 0.95), (10, 0.5)])
def test_precision_at_recall_exact_recall_fraction(positives, target):
    """Recall exactly at the target (19/20 = 0.95) counts as reaching it."""
    needed = round(target * positives)
    # ranks: needed - 1 positives, 1 negative, 1 positive (recall = target exactly),
    # 5 negatives, the other positives, 10 negatives
    labels = [1] * (needed - 1) + [0, 1] + [0] * 5 + [1] * (positives - needed) + [0] * 10
    y = np.array(labels)
    s = np.linspace(1.0, 0.0, len(y))
    got = precision_at_recall(y, s, target)
    assert got.recall == needed / positives
    assert got.precision == pytest.approx(needed / (needed + 1))
    assert got.threshold == s[needed]
    assert (got.precision, got.recall, got.threshold) == pytest.approx(
        brute_force(y, s, target), abs=1e-12
    )


def test_precision_at_recall_hand_example():
    y = [1, 1, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.1]
    full = precision_at_recall(y, s, 1.0)
    assert (full.precision, full.recall, full.threshold) == (0.75, 1.0, 0.6)
    half = precision_at_recall(y, s, 0.5)
    assert half.precision == 1.0
    assert half.recall == pytest.approx(2 / 3)
    assert half.threshold == 0.8


def test_precision_at_recall_prefers_higher_recall_among_equal_precision():
    y = [1, 1, 0, 1, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    point = precision_at_recall(y, s, 0.25)
    # thresholds 0.9 and 0.8 both give precision 1; 0.8 has recall 0.5
    assert (point.precision, point.recall, point.threshold) == (1.0, 0.5, 0.8)


def test_precision_at_recall_ties_take_the_whole_group():
    # the two 0.5 scores cannot be separated: a threshold of 0.5 takes both
    y = [1, 0, 1, 0]
    s = [0.9, 0.5, 0.5, 0.1]
    point = precision_at_recall(y, s, 1.0)
    assert point.threshold == 0.5
    assert point.precision == pytest.approx(2 / 3)
    assert point.recall == 1.0


def test_precision_at_recall_order_and_shape_do_not_matter():
    y, s = _random_case(3)
    perm = np.random.default_rng(0).permutation(len(y))
    a = precision_at_recall(y, s, 0.9)
    b = precision_at_recall(y[perm].reshape(-1, 1), s[perm].reshape(-1, 1), 0.9)
    assert a == b


def test_precision_at_recall_without_positives_is_nan():
    point = precision_at_recall([0, 0, 0], [0.1, 0.5, 0.9], 0.95)
    assert math.isnan(point.precision) and math.isnan(point.recall)
    assert math.isnan(point.threshold)
    empty = precision_at_recall([], [], 0.95)
    assert math.isnan(empty.precision)


def test_precision_at_recall_unreachable_target_is_nan():
    point = precision_at_recall([1, 0, 1], [0.9, 0.2, 0.4], 1.01)
    assert math.isnan(point.precision)


# ---------------------------------------------------------------------------- objective_score


def test_objective_score_precision_first_then_auc():
    # higher precision wins whatever the AUC
    assert objective_score(0.90, 0.50) > objective_score(0.8999, 1.0)
    assert objective_score(0.81, 0.0) > objective_score(0.80, 1.0)
    # equal precision: AUC decides
    assert objective_score(0.85, 0.93) > objective_score(0.85, 0.92)
    # precision differences below the 1e-4 quantum count as equal: AUC decides
    assert objective_score(0.90001, 0.80) < objective_score(0.90004, 0.90)
    assert objective_score(0.90004, 0.80) < objective_score(0.90001, 0.90)
    # no threshold reaches the recall target: below every model that reaches it
    assert objective_score(math.nan, 1.0) < objective_score(0.0, 0.0)
    assert objective_score(math.nan, 0.9) > objective_score(math.nan, 0.8)
    # a NaN AUC only drops the tie-break
    assert objective_score(0.7, math.nan) == pytest.approx(0.7)
    assert objective_score(math.nan, math.nan) == -1.0


def test_objective_score_values():
    assert objective_score(0.8765, 0.9) == pytest.approx(0.8765 + 0.9e-5, abs=1e-12)
    assert objective_score(0.87659, 0.5) == pytest.approx(0.8765 + 0.5e-5, abs=1e-12)
    assert objective_score(1.0, 1.0) == pytest.approx(1.00001, abs=1e-12)
    # exact fractions that land on a quantum are not floored one quantum down
    for tp, total in [(29, 100), (57, 100), (7, 10), (9999, 10000), (3, 5)]:
        p = tp / total
        assert objective_score(p, 0.0) == pytest.approx(p, abs=1e-12), (tp, total)


def test_objective_score_sorts_like_precision_then_auc():
    rng = np.random.default_rng(0)
    pairs = [(round(float(p), 2), float(a)) for p, a in rng.random((200, 2))]
    by_score = sorted(pairs, key=lambda pa: objective_score(*pa))
    by_key = sorted(pairs)
    assert by_score == by_key


# ---------------------------------------------------------------------------- binary_metrics


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.71])
def test_binary_metrics_match_sklearn(seed, threshold):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 400))
    y = (rng.random(n) < 0.6).astype(int)
    y[:2] = [0, 1]
    s = np.clip(1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 0.5))), 0.01, 0.99)
    if seed % 2:
        s = np.round(s, 1).clip(0.05, 0.95)  # ties, also exactly at the threshold
    pred = (s >= threshold).astype(int)
    m = binary_metrics(y, s, threshold, 0.95)

    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), rel=1e-12)
    if pred.sum():
        assert m["precision"] == pytest.approx(precision_score(y, pred), rel=1e-12)
    assert m["recall"] == pytest.approx(recall_score(y, pred), rel=1e-12)
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0), rel=1e-12)
    assert m["f1"] == pytest.approx(f1_score(y, pred), rel=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert m["loss"] == pytest.approx(log_loss(y, s), rel=1e-9)
    assert m["prec_at_recall"] == pytest.approx(brute_force(y, s, 0.95)[0], abs=1e-12)
    assert m["threshold"] == threshold
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == m["n"] == n
    assert m["tp"] == int(np.sum((pred == 1) & (y == 1)))
    assert m["fp"] == int(np.sum((pred == 1) & (y == 0)))
    assert m["tn"] == int(np.sum((pred == 0) & (y == 0)))
    assert m["fn"] == int(np.sum((pred == 0) & (y == 1)))


def test_binary_metrics_threshold_is_inclusive():
    m = binary_metrics([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.1], 0.5, 0.95)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 1, 1, 1)


def test_binary_metrics_degenerate_cases():
    # nothing predicted positive: precision undefined (NaN), recall 0
    m = binary_metrics([1, 0, 1], [0.1, 0.2, 0.3], 0.9, 0.95)
    assert math.isnan(m["precision"])
    assert m["recall"] == 0.0 and m["specificity"] == 1.0
    # one class only: AUC undefined
    m = binary_metrics([1, 1], [0.2, 0.9], 0.5, 0.95)
    assert math.isnan(m["auc"])
    assert m["accuracy"] == 0.5
    # extreme scores are clipped, the loss stays finite
    m = binary_metrics([1, 0], [0.0, 1.0], 0.5, 0.95)
    assert math.isfinite(m["loss"]) and m["loss"] > 10


def test_validation_summary_consistent():
    y, s = _random_case(4)
    summary = validation_summary(y, s, 0.95)
    point = precision_at_recall(y, s, 0.95)
    assert summary["prec_at_recall"] == point.precision
    assert summary["threshold"] == point.threshold
    assert summary["auc"] == pytest.approx(roc_auc_score(y, s))
    assert summary["objective"] == objective_score(point.precision, summary["auc"])
    assert summary["accuracy"] == pytest.approx(accuracy_score(y, s >= 0.5))


# ---------------------------------------------------------------------------- bootstrap


def _bootstrap_case(n=300, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.55).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) * 1.2 + 1.3 * y - 0.6)))
    if ties:
        s = np.round(s, 1)
    return y, s


KEYS = ["accuracy", "precision", "recall", "specificity", "npv", "f1", "auc", "loss"]


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_intervals_contain_the_point_estimate(ties):
    y, s = _bootstrap_case(ties=ties)
    ci = bootstrap_intervals(y, s, 0.5, n_boot=1000, seed=1, target=0.8)
    point = binary_metrics(y, s, 0.5, 0.8)
    assert set(ci) == {*KEYS, "prec_at_recall"}
    assert set(bootstrap_intervals(y, s, 0.5, n_boot=10)) == set(KEYS)  # no target
    for key in [*KEYS, "prec_at_recall"]:
        lo, hi = ci[key]
        assert lo < point[key] < hi, key
        assert 0.0 <= lo < hi <= (10.0 if key == "loss" else 1.0), key
        assert hi - lo < 0.25, key  # n = 300: a few points wide, not everything


@pytest.mark.parametrize("ties", [False, True])
def test_each_resamples_loss_and_precision_at_recall_equal_a_direct_computation(ties):
    """The weighted (all resamples at once) loss and precision at the recall target of a
    resample are those of its images listed out, as binary_metrics computes them."""
    from autopneumo.objective import (
        log_losses,
        resample_counts,
        weighted_precision_at_recall,
    )

    y, s = _bootstrap_case(n=120, seed=3, ties=ties)
    counts = resample_counts(len(y), 40, seed=5, groups=np.arange(len(y)) // 3)
    got = weighted_precision_at_recall(counts, y, s, 0.9)
    losses = counts @ log_losses(y, s) / counts.sum(axis=1)
    for row, precision, loss in zip(counts, got, losses, strict=True):
        idx = np.repeat(np.arange(len(y)), row.astype(int))
        direct = binary_metrics(y[idx], s[idx], 0.5, 0.9)
        assert precision == pytest.approx(direct["prec_at_recall"], abs=1e-12, nan_ok=True)
        assert loss == pytest.approx(direct["loss"], rel=1e-9)
    none = np.zeros((1, len(y)))
    none[0, y == 0] = 1  # a resample without a positive: undefined
    assert np.isnan(weighted_precision_at_recall(none, y, s, 0.9)[0])


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_auc_interval_matches_sklearn_bootstrap(ties):
    y, s = _bootstrap_case(seed=2, ties=ties)
    ci = bootstrap_intervals(y, s, 0.5, n_boot=2000, seed=0)
    rng = np.random.default_rng(12345)  # an independent resampling
    aucs, accs, f1s = [], [], []
    pred = s >= 0.5
    for _ in range(600):
        idx = rng.integers(0, len(y), len(y))
        aucs.append(roc_auc_score(y[idx], s[idx]))
        tp = np.sum(pred[idx] & (y[idx] == 1))
        accs.append(np.mean(pred[idx] == (y[idx] == 1)))
        f1s.append(2 * tp / (np.sum(pred[idx]) + np.sum(y[idx])))
    for key, values in (("auc", aucs), ("accuracy", accs), ("f1", f1s)):
        lo, hi = np.quantile(values, [0.025, 0.975])
        assert ci[key][0] == pytest.approx(lo, abs=0.02), key
        assert ci[key][1] == pytest.approx(hi, abs=0.02), key
        width = hi - lo
        assert (ci[key][1] - ci[key][0]) == pytest.approx(width, rel=0.25), key


def test_bootstrap_auc_centres_on_sklearn_auc_with_ties():
    """On a large (tiled) sample the bootstrap AUCs concentrate at the true AUC; tied
    scores must count half, as in scikit-learn."""
    y, s = _bootstrap_case(n=200, seed=3, ties=True)
    assert len(np.unique(s)) <= 11
    auc = roc_auc_score(y, s)
    ci = bootstrap_intervals(np.tile(y, 40), np.tile(s, 40), 0.5, n_boot=200, seed=0)
    lo, hi = ci["auc"]
    assert lo < auc < hi
    assert abs((lo + hi) / 2 - auc) < 0.004
    assert hi - lo < 0.03


def test_bootstrap_intervals_shrink_with_a_larger_sample():
    y, s = _bootstrap_case(n=250, seed=4)
    small = bootstrap_intervals(y, s, 0.5, n_boot=1000, seed=0)
    big = bootstrap_intervals(np.tile(y, 4), np.tile(s, 4), 0.5, n_boot=1000, seed=0)
    for key in KEYS:
        w_small = small[key][1] - small[key][0]
        w_big = big[key][1] - big[key][0]
        # standard errors scale with 1/sqrt(n): half as wide for 4x the data
        assert 0.35 * w_small < w_big < 0.7 * w_small, key


def test_patient_bootstrap_counts_a_patients_images_together():
    from autopneumo.objective import resample_counts

    groups = np.array(["p1", "p2", "p2", "p3", "p3", "p3", "p4"])
    counts = resample_counts(len(groups), 500, seed=3, groups=groups)
    assert counts.shape == (500, 7)
    for members in ([1, 2], [3, 4, 5]):  # every image of a patient drawn as often as it
        assert np.all(counts[:, members] == counts[:, members[:1]])
    first = counts[:, [0, 1, 3, 6]]  # one image a patient: the patient draws
    assert np.all(first.sum(axis=1) == 4)  # four patients drawn each time
    # one patient a sample is the plain image bootstrap, draw for draw
    np.testing.assert_array_equal(resample_counts(7, 50, seed=1, groups=np.arange(7)),
                                  resample_counts(7, 50, seed=1))
    with pytest.raises(ValueError, match="3 group ids for 7 samples"):
        resample_counts(7, 5, groups=["a", "b", "c"])


def test_patient_bootstrap_of_copies_equals_the_image_bootstrap_of_one_image_each():
    """Five identical images of each patient carry one patient's information: resampling
    patients gives the interval of the de-duplicated set; resampling images pretends to
    have five times the data and is far too narrow."""
    y, s = _bootstrap_case(n=120, seed=6)
    once = bootstrap_intervals(y, s, 0.5, n_boot=800, seed=2)
    patients = np.repeat(np.arange(len(y)), 5)
    by_patient = bootstrap_intervals(np.repeat(y, 5), np.repeat(s, 5), 0.5, n_boot=800, seed=2,
                                     groups=patients)
    by_image = bootstrap_intervals(np.repeat(y, 5), np.repeat(s, 5), 0.5, n_boot=800, seed=2)
    for key in KEYS:
        assert by_patient[key] == pytest.approx(once[key], abs=1e-12), key
        w_patient = by_patient[key][1] - by_patient[key][0]
        w_image = by_image[key][1] - by_image[key][0]
        assert w_image < 0.6 * w_patient, key


def test_bootstrap_intervals_level_and_seed():
    y, s = _bootstrap_case(n=200, seed=5)
    a = bootstrap_intervals(y, s, 0.5, n_boot=500, seed=7)
    b = bootstrap_intervals(y, s, 0.5, n_boot=500, seed=7)
    assert a == b
    narrow = bootstrap_intervals(y, s, 0.5, n_boot=500, seed=7, level=0.5)
    for key in KEYS:
        assert narrow[key][0] > a[key][0] and narrow[key][1] < a[key][1]


def test_bootstrap_intervals_empty_and_undefined():
    assert bootstrap_intervals([], [], 0.5) == {}
    # no positive predictions ever: precision is undefined in every resample
    ci = bootstrap_intervals([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], 0.9, n_boot=50)
    assert all(math.isnan(v) for v in ci["precision"])
    # recall is 0 wherever a positive is drawn, but 1 resample in 16 draws none: more
    # than 2.5 % are undefined, so the upper bound reaches the end of the range
    assert ci["recall"] == (0.0, 1.0)


def _one_patient_called_normal():
    """40 patients with 2 images each; the threshold calls only patient 0 (2 NORMAL images)
    normal. NPV = 2/2 on the full split, resting on one patient: about a third of the
    patient resamples do not draw him and have no NPV at all."""
    groups = np.repeat([f"p{i}" for i in range(40)], 2)
    y = np.ones(80, dtype=int)
    y[0:2] = 0
    y[2:22:2] = 0
    s = np.full(80, 0.9)
    s[0:2] = 0.1
    return y, s, groups


def test_undefined_resamples_count_as_unbounded_not_dropped():
    """Dropping the resamples without an NPV gave NPV 1.000 [1.000, 1.000] from one
    patient (review 21): the ones left all drew him."""
    from autopneumo.objective import resample_counts

    y, s, groups = _one_patient_called_normal()
    counts = resample_counts(len(y), 1000, 0, groups)
    assert 0.6 < ((counts @ (s < 0.5)) > 0).mean() < 0.7
    ci = bootstrap_intervals(y, s, 0.5, n_boot=1000, groups=groups, target=0.95)
    assert ci["npv"] == (0.0, 1.0)
    # a metric every resample defines keeps its percentile interval
    assert ci["recall"][0] > 0.8 and ci["recall"][1] == 1.0


def test_percentile_interval_counts_each_undefined_resample_at_the_range_ends():
    from autopneumo.objective import percentile_interval

    values = np.r_[np.linspace(0.5, 0.6, 98), np.nan, np.nan]  # 2 % undefined
    lo, hi = percentile_interval(values, 0.95, (0.0, 1.0))
    assert lo == pytest.approx(np.quantile(np.r_[0.0, 0.0, values[:98]], 0.025))
    assert hi == pytest.approx(np.quantile(np.r_[values[:98], 1.0, 1.0], 0.975))
    assert 0.5 <= lo < hi < 0.6
    assert percentile_interval(np.r_[values[:90], [np.nan] * 10], 0.95, (0.0, 1.0)) == (0.0, 1.0)
    assert percentile_interval(np.r_[values[:90], [np.inf] * 10], 0.95, (0.0, np.inf)) == (
        0.0, np.inf)
    assert all(np.isnan(percentile_interval(np.full(5, np.nan), 0.95, (0.0, 1.0))))


def test_a_paired_verdict_is_not_decided_by_the_resamples_one_side_defines():
    """Model a calls one image pneumonia, rightly (precision 1/1), b 20 (16 right). A third
    of the paired resamples miss a's image; dropped, they left a 'better' verdict on the
    strength of one image (review 21)."""
    from autopneumo.report.stats import paired_differences

    y = np.r_[np.ones(30), np.zeros(10)].astype(int)
    s_a = np.full(40, 0.1)
    s_a[0] = 0.9
    s_b = np.full(40, 0.1)
    s_b[:16] = 0.9
    s_b[30:34] = 0.9
    diff = paired_differences(y, s_a, 0.5, s_b, 0.5, n_boot=1000)["precision"]
    assert diff.lo == -1.0 and diff.hi == 1.0 and diff.verdict == "no clear difference"
    # b against itself shifted: both defined everywhere, a real interval
    auc = paired_differences(y, s_b, 0.5, s_a, 0.5, n_boot=1000)["auc"]
    assert -1.0 < auc.lo < auc.hi < 1.0


def test_reinterval_script_recomputes_an_old_records_intervals_from_its_predictions(tmp_path):
    """benchmarks/reinterval.py: an old record (image bootstrap, no loss interval) gets
    the intervals a new evaluation would write; one whose saved predictions no longer give
    its test numbers is refused, not rewritten."""
    import importlib.util
    import json
    from pathlib import Path

    from autopneumo.evaluation import read_predictions
    from autopneumo.objective import bootstrap_intervals
    from tests.records import write_record

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "reinterval.py"
    spec = importlib.util.spec_from_file_location("reinterval", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    record_path = write_record(tmp_path / "runs", "base_cnn", "flip", "0001", 0.6)
    old = json.loads(record_path.read_text())
    old.pop("test_ci_resampled", None)
    npv = old["test"].pop("npv")  # written before the sixteenth session
    record_path.write_text(json.dumps(old))
    new = script.reinterval(record_path)
    test = read_predictions(record_path.parent)["test"]
    expected = bootstrap_intervals(test["label"], test["probability"], old["threshold"],
                                   groups=test["file"], target=old["recall_target"])
    assert new["test_ci"] == {k: pytest.approx(list(v), nan_ok=True) for k, v in expected.items()}
    assert "loss" in new["test_ci"] and "npv" in new["test_ci"]
    assert new["test"] == {**old["test"], "npv": pytest.approx(npv)}  # the rest as recorded
    old["test"]["auc"] = 0.5  # the predictions say otherwise
    record_path.write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="its predictions give test auc"):
        script.reinterval(record_path)


def test_negative_predictive_value_is_correct_normal_calls_over_all_normal_calls():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.6, 0.3, 0.7, 0.8, 0.9, 0.4])
    m = binary_metrics(y, s, 0.5, 0.95)  # normal calls: images 0, 1, 3, 7; image 3 is sick
    assert (m["tn"], m["fn"]) == (3, 1)
    assert m["npv"] == pytest.approx(3 / 4)
    # sklearn's precision of the negative class is the same quantity
    assert m["npv"] == pytest.approx(precision_score(1 - y, (s < 0.5).astype(int)))
    lo, hi = bootstrap_intervals(y, s, 0.5, n_boot=300)["npv"]
    assert 0 <= lo < 3 / 4 < hi <= 1
    assert math.isnan(binary_metrics(y, s, 0.0, 0.95)["npv"])  # no normal call at all


def test_records_before_npv_get_it_from_their_counts():
    old = {"precision": 0.8, "tp": 40, "fp": 10, "tn": 30, "fn": 5}
    assert recorded_metric(old, "npv") == pytest.approx(30 / 35)
    assert recorded_metric({**old, "npv": 0.5}, "npv") == 0.5  # a recorded value wins
    assert recorded_metric(old, "precision") == 0.8
    assert math.isnan(recorded_metric({"precision": 0.8}, "npv"))
    assert math.isnan(recorded_metric(old, "loss"))
    with pytest.raises(TypeError):
        recorded_metric("oops", "npv")


# --- from the sixteenth session's mutation review: each test kills a mutant that passed

def test_bootstrap_precision_at_recall_counts_a_recall_exactly_at_the_target():
    # threshold 0.9: recall 1/2 = target, precision 1; the next reaching one (0.7) gives 2/3
    got = weighted_precision_at_recall(np.ones((1, 3)), np.array([1, 0, 1]),
                                       np.array([0.9, 0.8, 0.7]), 0.5)
    assert got[0] == 1.0


def test_a_95_percent_interval_is_the_2_5_and_97_5_percentiles_of_the_resamples():
    rng = np.random.default_rng(0)
    n = 200
    y = (rng.random(n) < 0.5).astype(int)
    s = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    ci = bootstrap_intervals(y, s, 0.5, n_boot=500, seed=0)
    counts = resample_counts(n, 500, 0)
    acc = counts @ ((s >= 0.5) == y.astype(bool)) / counts.sum(axis=1)
    assert ci["accuracy"] == pytest.approx(tuple(np.quantile(acc, [0.025, 0.975])), abs=1e-12)
