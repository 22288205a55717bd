"""The full HTML report: every number on the page equals the CSV, which equals an
independent recomputation from the saved predictions (scikit-learn, scipy); intervals
behave; names are escaped; failed, unfinished and reference trials are marked; the pixel
sections (samples, augmentation previews, Grad-CAM) work on a tiny real model."""

from __future__ import annotations

import base64
import html
import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from autopneumo.atomic import atomic_write_json
from autopneumo.errors import AutopneumoNote, AutopneumoWarning
from autopneumo.objective import binary_metrics, bootstrap_intervals, validation_summary
from autopneumo.report import write_report
from autopneumo.report.stats import at_prevalence, binomial_two_sided, curve, paired_differences
from tests.conftest import make_kermany

REPO = Path(__file__).resolve().parent.parent
N_VAL, N_TEST = 160, 200
Y_VAL = np.random.default_rng(100).integers(0, 2, N_VAL)
Y_TEST = np.random.default_rng(101).integers(0, 2, N_TEST)
CLASSES = ("NORMAL", "PNEUMONIA")


# --- synthetic runs: every trial scores the same test images --------------------------

def write_trial(runs: Path, family: str, policy: str, trial_id: str, quality: float, *,
                seed: int = 0, status: str = "completed", reference: bool = False,
                hyperparameters: dict | None = None, data: dict | None = None,
                command: str = "autopneumo search", finished_at: str | None = None,
                message: str | None = None, test_files: list[str] | None = None,
                predictions: bool = True) -> Path:
    """A record as evaluation.py writes it, with a predictions file on shared test images."""
    rng = np.random.default_rng(seed)
    safe = lambda s: re.sub(r"\W", "_", s)  # noqa: E731 - folder names only
    trial_dir = runs / f"{safe(family)}__{safe(policy)}" / f"trial_{safe(trial_id)}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "schema_version": 1, "project": f"{family}__{policy}", "family": family,
        "policy": policy, "tuner": "random", "trial_id": trial_id, "status": status,
        "message": message if status == "completed" else (message or "RuntimeError: NaN loss"),
        "hyperparameters": hyperparameters if hyperparameters is not None else {
            "model.width": [0.5, 1.0, 2.0][seed % 3],
            "train.learning_rate": 10 ** -(2 + seed % 4 / 2),
            "train.class_weights": bool(seed % 2)},
        "recall_target": 0.95,
        "data": data or {"path": "/nonexistent/chest_xray", "data_hash": "abc123", "image_size": 32,
                         "channels": 1, "split_seed": 0, "val_fraction": 0.2,
                         "counts": {"train": {"NORMAL": 100, "PNEUMONIA": 280, "patients": 200},
                                    "val": {"NORMAL": 30, "PNEUMONIA": 60, "patients": 50},
                                    "test": {"NORMAL": 90, "PNEUMONIA": 110, "patients": 120}}},
        "environment": {"tensorflow": "2.21.0", "keras": "3.15.1", "keras_tuner": "1.4.8",
                        "python": "3.11.7", "cpu": "Test CPU", "cpu_count": 2, "gpus": []},
        "command": command, "seconds": {"trial": 10.0 + seed},
        "finished_at": finished_at or f"2026-01-01T00:{seed % 60:02d}:00+0000",
    }
    if reference:
        record["reference"] = True
    if status == "completed":
        pv = np.clip(Y_VAL * quality + rng.random(N_VAL) * (1 - quality), 0, 1)
        pt = np.clip(Y_TEST * quality + rng.random(N_TEST) * (1 - quality), 0, 1)
        val = validation_summary(Y_VAL, pv, 0.95)
        threshold = val["threshold"]
        files = test_files or [f"test/{CLASSES[y]}/t{i}.jpeg" for i, y in enumerate(Y_TEST)]
        if predictions:
            lines = ["split,file,label,probability"]
            lines += [f"val,train/{CLASSES[y]}/v{i}.jpeg,{y},{float(p)!r}"
                      for i, (y, p) in enumerate(zip(Y_VAL, pv, strict=True))]
            lines += [f"test,{f},{y},{float(p)!r}"
                      for f, y, p in zip(files, Y_TEST, pt, strict=True)]
            (trial_dir / "predictions.csv").write_text("\n".join(lines) + "\n")
        epochs = 3
        history = {k: [0.5 + 0.1 * e + 0.01 * seed for e in range(epochs)]
                   for k in ("accuracy", "precision", "recall", "auc")}
        history |= {f"val_{k}": [v - 0.05 for v in vs] for k, vs in history.items()}
        history |= {"loss": [0.7 - 0.1 * e for e in range(epochs)],
                    "val_loss": [0.72 - 0.08 * e for e in range(epochs)],
                    "val_objective": [0.5, 0.6, val["objective"]]}
        record.update(
            val=val, threshold=threshold, test=binary_metrics(Y_TEST, pt, threshold, 0.95),
            test_ci={k: list(v) for k, v in bootstrap_intervals(Y_TEST, pt, threshold,
                                                                  n_boot=200).items()},
            history=history, epochs_run=epochs, best_epoch=3, params=1000 + seed,
            files={"model": "model.keras", "predictions": "predictions.csv"},
        )
    path = trial_dir / "record.json"
    atomic_write_json(path, record)
    return path


def make_runs(root: Path) -> Path:
    """Two families x three policies, a failed, an unfinished and two reference trials."""
    runs = root / "runs"
    k = 0
    projects = (("base_cnn", ("none", "flip", "geometric")), ("resnet18", ("none", "flip")))
    for family, policies in projects:
        for policy in policies:
            for trial in range(2):
                k += 1
                write_trial(runs, family, policy, str(trial), 0.05 + 0.03 * ((k * 7) % 11), seed=k)
    write_trial(runs, "resnet18", "flip", "9", 0.0, status="failed", seed=90)
    write_trial(runs, "base_cnn", "flip", "classroom", 0.45, reference=True, seed=91)
    write_trial(runs, "base_cnn", "none", "classroom", 0.02, reference=True, seed=92)  # ranks low
    unfinished = runs / "base_cnn__none" / "trial_7"
    unfinished.mkdir(parents=True)
    (unfinished / "trial.json").write_text(json.dumps({"trial_id": "7", "status": "RUNNING"}))
    return runs


def section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start:page.index("</section>", start)]


def cell(value: float, lo: float, hi: float) -> str:
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def saved_test(row: pd.Series) -> pd.DataFrame:
    """The test rows of a trial's predictions file, as the evaluation saved them."""
    preds = pd.read_csv(Path(row.trial_dir) / "predictions.csv")
    return preds[preds.split == "test"].reset_index(drop=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    runs = make_runs(root)
    out = root / "report"
    written = write_report(runs, out, top=20, pixels=False)
    csv = pd.read_csv(out / "leaderboard.csv")
    return SimpleNamespace(runs=runs, out=out, written=written, csv=csv,
                           page=(out / "index.html").read_text(encoding="utf-8"))


# --- numbers: HTML == CSV == independent recomputation --------------------------------

def test_csv_has_every_trial_and_column(report):
    csv = report.csv
    assert len(csv) == 14  # 10 search trials, a failed, two reference and an unfinished one
    assert set(csv.status) == {"completed", "failed", "unfinished (running)"}
    for col in ("family", "policy", "trial_id", "status", "reference", "val_objective",
                "threshold", "params", "epochs_run", "seconds", "hp:model.width",
                "hp:train.learning_rate", "test_prec_at_recall", "test_loss"):
        assert col in csv.columns, col
    for m in ("precision", "recall", "accuracy", "auc", "specificity", "f1"):
        assert {f"test_{m}", f"test_{m}_lo", f"test_{m}_hi"} <= set(csv.columns)
    assert csv.loc[csv.trial_id == "classroom", "reference"].all() and csv.reference.sum() == 2
    assert list(csv.columns).index("reference") == list(csv.columns).index("status") + 1


def test_csv_equals_sklearn_recomputation(report):
    done = report.csv[report.csv.status == "completed"]
    assert len(done) == 12
    for _, row in done.iterrows():
        test = saved_test(row)
        pred = (test.probability >= row.threshold).astype(int)
        assert row.test_precision == pytest.approx(precision_score(test.label, pred))
        assert row.test_recall == pytest.approx(recall_score(test.label, pred))
        assert row.test_accuracy == pytest.approx(accuracy_score(test.label, pred))
        assert row.test_auc == pytest.approx(roc_auc_score(test.label, test.probability))
        val = pd.read_csv(Path(row.trial_dir) / "predictions.csv").query("split == 'val'")
        assert row.val_auc == pytest.approx(roc_auc_score(val.label, val.probability))


def test_headline_shows_best_non_reference_with_intervals(report):
    csv, head = report.csv, section(report.page, "headline")
    ranked = csv[(csv.status == "completed") & ~csv.reference].sort_values(
        "val_objective", ascending=False, kind="mergesort")
    best = ranked.iloc[0]
    assert f"{best.family} + {best.policy} (trial {best.trial_id})" in head
    for m in ("precision", "recall", "accuracy", "auc"):
        assert cell(best[f"test_{m}"], best[f"test_{m}_lo"], best[f"test_{m}_hi"]) in head
    # the reference run has the best validation objective, but is shown beside, not as, the winner
    ref = csv[csv.reference].iloc[0]
    assert ref.val_objective > best.val_objective
    assert "base_cnn + flip (trial classroom)" in head
    assert "base_cnn + none (trial classroom)" in head
    assert head[:head.index('</table>')].count('class="tag">reference') == 2
    # the classroom study's published numbers
    assert "0.865" in head and "0.954" in head and "0.878" in head and "0.925" in head


def leaderboard_rows(page: str) -> list[str]:
    """The class of each row of the HTML leaderboard."""
    table = page[page.index('<table id="leaderboard"'):]
    return re.findall(r"<tr class=\"([^\"]*)\"", table[:table.index("</table>")])


def test_leaderboard_table_top_n_plus_references_and_marks(report):
    rows = leaderboard_rows(report.page)
    assert len(rows) == 14
    assert rows[0] == "completed reference"  # best on validation, still marked
    assert rows.count("completed reference") == 2
    assert rows[-2:] == ["failed", "unfinished"]
    assert '<tr class="failed" title="RuntimeError: NaN loss">' in report.page
    assert '<tr class="unfinished" title="no record.json yet' in report.page
    assert "1 failed. 1 unfinished." in report.page
    for _, row in report.csv[report.csv.status == "completed"].iterrows():
        assert cell(row.test_precision, row.test_precision_lo, row.test_precision_hi) in report.page
        assert cell(row.test_auc, row.test_auc_lo, row.test_auc_hi) in report.page
    # top 2: the two best, plus the reference run ranked further down
    top2 = write_report(report.runs, report.out.parent / "top2", top=2, pixels=False)
    page = top2[-1].read_text()
    assert leaderboard_rows(page) == ["completed reference", "completed", "completed reference"]
    assert "Top 2 of 14 trials (reference runs always shown)" in page


def test_confusion_matrices_match_sklearn(report):
    csv, part = report.csv, section(report.page, "curves")
    ranked = csv[(csv.status == "completed") & ~csv.reference].head(5)
    for _, row in ranked.iterrows():
        test = saved_test(row)
        tn, fp, fn, tp = confusion_matrix(test.label, test.probability >= row.threshold).ravel()
        assert (f"<td>{row.threshold:.3f}</td><td>{tp}</td><td>{fp}</td><td>{tn}</td>"
                f"<td>{fn}</td><td>{N_TEST}</td>") in part


def test_mcnemar_matches_scipy(report):
    csv, part = report.csv, section(report.page, "significance")
    ranked = csv[(csv.status == "completed") & ~csv.reference]
    a, b = ranked.iloc[0], ranked.iloc[1]
    ta, tb = saved_test(a), saved_test(b)
    assert list(ta.file) == list(tb.file)
    right_a = (ta.probability >= a.threshold) == ta.label.astype(bool)
    right_b = (tb.probability >= b.threshold) == tb.label.astype(bool)
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    # the images of a patient count together: a sign test over the patients
    from autopneumo.data.patients import patients_of

    per_patient = pd.Series((right_a & ~right_b).astype(int).to_numpy()
                            - (~right_a & right_b).astype(int).to_numpy()).groupby(
        patients_of(ta.file.to_numpy())).sum()
    pa, pb = int((per_patient > 0).sum()), int((per_patient < 0).sum())
    p = binomtest(pa, pa + pb, 0.5).pvalue if pa + pb else 1.0
    assert f"<td>{only_a}</td><td>{only_b}</td><td>{N_TEST}</td><td>{p:.3g}</td>" in part
    if len(per_patient) < N_TEST:
        assert f"for {pa} patients" in part and "sign test over patients" in part
    else:  # one image per patient (these file names): McNemar's test itself
        assert p == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
        assert "exact McNemar test" in part
    assert f"p = {p:.3g}" in part
    words = "is significantly better" if p < 0.05 else "is not significantly better"
    assert words in part or "but" in part
    assert f"{a.family} + {a.policy} (trial {a.trial_id})" in part


def test_policy_effects_match_sklearn(report):
    csv, part = report.csv, section(report.page, "families")
    done = csv[(csv.status == "completed") & ~csv.reference]
    best = done.sort_values("val_objective", ascending=False, kind="mergesort").groupby(
        ["family", "policy"]).head(1).set_index(["family", "policy"])
    rows = re.findall(r"<tr><td class=\"text\">(\w+)</td><td class=\"text\" title=\"[^\"]*\">(\w+)"
                      r"</td><td>(\d+)</td>\s*<td>([^<]+)</td>", part)
    assert {(f, p) for f, p, _, _ in rows} == {("base_cnn", "flip"), ("base_cnn", "geometric"),
                                               ("resnet18", "flip")}
    for family, policy, n, shown in rows:
        a, b = best.loc[(family, policy)], best.loc[(family, "none")]
        ta, tb = saved_test(a), saved_test(b)
        diff = (precision_score(ta.label, ta.probability >= a.threshold)
                - precision_score(tb.label, tb.probability >= b.threshold))
        value, lo, hi = (float(x) for x in re.findall(r"[+-]\d\.\d{3}", shown))
        assert int(n) == N_TEST
        assert value == pytest.approx(diff, abs=5e-4)
        assert lo <= value <= hi
        assert f"{diff:+.3f}" == shown.split(" ")[0]


def test_figures_written_and_embedded(report):
    pngs = sorted((report.out / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"family_policy", "policy_effects", "roc", "precision_recall", "confusion",
            "training_curves", "tuning_history", "hyperparameters", "data_counts"} <= names
    assert not names & {"samples", "augmentation", "gradcam"}  # pixels=False
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG")
        assert base64.b64encode(data).decode() in report.page, png.name
    assert report.page.count("data:image/png;base64,") == len(pngs)
    assert "X-ray images are left out" in report.page


def test_provenance_lists_data_versions_hardware_time(report):
    part = section(report.page, "provenance")
    assert "/nonexistent/chest_xray, abc123, 32, 1, 0, 0.2" in part
    assert "2.21.0, 3.15.1, 1.4.8, 3.11.7" in part
    assert "Test CPU, 2, none" in part
    assert "autopneumo search" in part and "0.95" in part
    seconds = report.csv.seconds.dropna()
    assert f"over {len(seconds)} trial(s)" in part


def test_report_needs_no_tensorflow_without_pixels(report, tmp_path):
    code = ("import sys; from autopneumo.report import write_report; "
            f"write_report({str(report.runs)!r}, {str(tmp_path / 'o')!r}, pixels=False); "
            "bad = [m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules]; "
            "print('LOADED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


def test_shortcut_guard_without_model_or_data_says_so(report, tmp_path):
    """No model file, no data folder: section 8 and the Markdown say why, and no stale
    gradcam_focus.csv / shortcuts.csv is left from an earlier report."""
    part = section(report.page, "gradcam")
    assert 'id="shortcuts">Shortcut check' in part
    assert "model.keras is not available here, so there is no Grad-CAM" in part
    assert "Data folder /nonexistent/chest_xray is not available here, so the shortcut check" in part
    assert 'id="gradcam-focus"' not in part and 'id="shortcut-table"' not in part
    out = tmp_path / "o"
    out.mkdir()
    for name in ("gradcam_focus.csv", "shortcuts.csv"):
        (out / name).write_text("stale\n")
    for fmt in ("html", "md"):
        written = write_report(report.runs, out, fmt=fmt, pixels=False)
        assert not (out / "gradcam_focus.csv").exists() and not (out / "shortcuts.csv").exists()
        assert not {p.name for p in written} & {"gradcam_focus.csv", "shortcuts.csv"}
    md = (out / "summary.md").read_text()
    assert "## Shortcut guard" in md and "### Shortcut check" in md
    assert "shortcut check (file size, dimensions, borders, sharpness) did not run" in md


# --- statistics -----------------------------------------------------------------------

def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)


def test_bootstrap_intervals_contain_estimate_and_shrink():
    widths = {}
    for n in (100, 2500):
        y, s = _scores(n, seed=n)
        point = binary_metrics(y, s, 0.5, 0.95)
        ci = bootstrap_intervals(y, s, 0.5, n_boot=500)
        for m in ("precision", "recall", "accuracy", "auc", "specificity", "f1"):
            lo, hi = ci[m]
            assert lo <= point[m] <= hi, (n, m)
        widths[n] = {m: ci[m][1] - ci[m][0] for m in ci}
    for m in widths[100]:
        assert widths[2500][m] < widths[100][m] / 2.5, m  # ~ 1/sqrt(n): 5x narrower


def test_paired_difference_contains_estimate_and_shrinks():
    widths = []
    for n in (120, 3000):
        y, a = _scores(n, seed=1)
        b = np.clip(a + np.random.default_rng(2).normal(0, 0.15, n), 0, 1)
        d = paired_differences(y, a, 0.5, b, 0.5, n_boot=500)
        for metric in ("precision", "auc"):
            assert d[metric].lo <= d[metric].value <= d[metric].hi
        assert d["precision"].value == pytest.approx(
            precision_score(y, a >= 0.5) - precision_score(y, b >= 0.5))
        assert d["auc"].value == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
        widths.append(d["auc"].hi - d["auc"].lo)
    assert widths[1] < widths[0] / 2.5
    # a model against itself: exactly zero, every resample
    y, a = _scores(200, seed=3)
    same = paired_differences(y, a, 0.5, a, 0.5, n_boot=200)
    assert (same["precision"].lo, same["precision"].hi) == (0.0, 0.0)
    assert same["precision"].verdict == "no clear difference"


def test_paired_difference_resamples_patients_when_given():
    """Four copies of each patient's image: resampling patients gives the difference's
    interval on one image a patient; resampling images makes it about half as wide."""
    y, a = _scores(150, seed=4)
    b = np.clip(a + np.random.default_rng(5).normal(0, 0.15, 150), 0, 1)
    once = paired_differences(y, a, 0.5, b, 0.5, n_boot=400, seed=1)
    rep = [np.repeat(v, 4) for v in (y, a, b)]
    patients = np.repeat(np.arange(150), 4)
    by_patient = paired_differences(rep[0], rep[1], 0.5, rep[2], 0.5, n_boot=400, seed=1,
                                    groups=patients)
    by_image = paired_differences(rep[0], rep[1], 0.5, rep[2], 0.5, n_boot=400, seed=1)
    for metric in ("precision", "auc"):
        assert (by_patient[metric].lo, by_patient[metric].hi) == pytest.approx(
            (once[metric].lo, once[metric].hi), abs=1e-12)
        assert (by_image[metric].hi - by_image[metric].lo
                < 0.7 * (by_patient[metric].hi - by_patient[metric].lo))


def test_mcnemar_over_patients_counts_a_patients_images_once():
    """Five copies of each image under one patient give the p-value of one image each;
    the image-level test would be far smaller (the copies are not independent)."""
    from autopneumo.report.stats import mcnemar

    rng = np.random.default_rng(3)
    y = rng.random(40) < 0.5
    a = np.where(rng.random(40) < 0.8, y, ~y)
    b = np.where(rng.random(40) < 0.6, y, ~y)
    one = mcnemar(y, a, b)
    same = mcnemar(y, a, b, groups=np.arange(40))
    assert same.p_value == pytest.approx(one.p_value) and same.patients == 40
    copies = mcnemar(np.repeat(y, 5), np.repeat(a, 5), np.repeat(b, 5),
                     groups=np.repeat(np.arange(40), 5))
    assert copies.p_value == pytest.approx(one.p_value)
    assert mcnemar(np.repeat(y, 5), np.repeat(a, 5), np.repeat(b, 5)).p_value < one.p_value / 2


def test_exact_mcnemar_p_value_matches_scipy():
    for n in (0, 1, 2, 7, 30, 101, 500):
        for k in range(0, n + 1, max(1, n // 9)):
            expected = binomtest(k, n, 0.5).pvalue if n else 1.0
            assert binomial_two_sided(k, n) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_curves_match_sklearn():
    y, s = _scores(300, seed=4)
    s = np.round(s, 2)  # ties
    c = curve(y, s)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(c.fpr, fpr[1:])
    np.testing.assert_allclose(c.tpr, tpr[1:])
    np.testing.assert_allclose(c.thresholds, thr[1:])
    prec, rec, pthr = precision_recall_curve(y, s)
    order = np.argsort(-pthr)
    np.testing.assert_allclose(c.precision, prec[:-1][order])
    np.testing.assert_allclose(c.tpr, rec[:-1][order])


# --- Grad-CAM focus: maps -> shares (pure) ----------------------------------------------

def _blob(size: int, cx: float = 0.5, cy: float = 0.5, sigma: float = 0.12) -> np.ndarray:
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size
    return np.exp(-(((xx - cx) / sigma) ** 2 + ((yy - cy) / sigma) ** 2) / 2)


def _frame_map(size: int, width: int) -> np.ndarray:
    m = np.zeros((size, size))
    m[:width], m[-width:], m[:, :width], m[:, -width:] = 1, 1, 1, 1
    return m


def test_lung_box_is_the_stated_central_box():
    from autopneumo.report.gradcam import LUNG_BOX, lung_box

    assert LUNG_BOX == (0.70, 0.80)
    mask = lung_box(100, 100)
    assert mask.mean() == pytest.approx(0.70 * 0.80)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (10, 89, 15, 84)
    assert lung_box(40, 60, (1.0, 1.0)).all()
    with pytest.raises(ValueError):
        lung_box(10, 10, (0.0, 0.5))


def test_focus_shares_centre_blob_high_border_low():
    from autopneumo.report.gradcam import focus_shares

    size = 64
    maps = np.stack([_blob(size), _frame_map(size, 3), np.ones((size, size)),
                     np.zeros((size, size)), _blob(size, cx=0.05, cy=0.5, sigma=0.05)])
    shares, uniform = focus_shares(maps)
    assert uniform == pytest.approx(focus_shares(np.ones((1, size, size)))[0][0])
    assert 0.5 < uniform < 0.6  # about 0.70 x 0.80 at 64 px
    assert shares[0] > 0.95  # a centred blob: almost all its mass in the lung field
    assert shares[1] == 0.0  # a 3 px border-only map: nothing inside
    assert shares[2] == pytest.approx(uniform)  # a uniform map: the box's area
    assert np.isnan(shares[3])  # no mass: no share
    assert shares[4] < 0.2  # a blob on the left edge
    # scale-free, negative values ignored, a single map accepted
    assert focus_shares(7 * _blob(size))[0][0] == pytest.approx(shares[0], abs=1e-12)
    ring = _frame_map(size, 3)
    assert focus_shares(_blob(size) - 2 * ring)[0][0] == pytest.approx(
        focus_shares(_blob(size) * (1 - ring))[0][0], abs=1e-12)


def test_focus_summary_medians_iqr_and_verdict():
    from autopneumo.report.gradcam import EMPTY, INSIDE, OUTSIDE, focus_shares, focus_summary

    rng = np.random.default_rng(0)
    size = 48
    centred = [_blob(size, 0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1))
               for _ in range(10)]
    borders = [_frame_map(size, int(rng.integers(1, 4))) + 0.05 * rng.random((size, size))
               for _ in range(10)]
    labels = np.array([0] * 5 + [1] * 5)

    shares, uniform = focus_shares(np.stack(centred))
    rows, verdict = focus_summary(shares, labels, uniform)
    assert verdict == INSIDE
    assert [r["true_class"] for r in rows] == ["NORMAL", "PNEUMONIA", "all"]
    for r, mask in zip(rows, (labels == 0, labels == 1, labels >= 0), strict=True):
        q1, med, q3 = np.percentile(shares[mask], [25, 50, 75])
        assert (r["share_q1"], r["share_median"], r["share_q3"]) == pytest.approx((q1, med, q3))
        assert r["share_iqr"] == pytest.approx(q3 - q1)
        assert r["uniform_share"] == uniform and r["n_images"] == mask.sum()
        assert r["share_median"] > uniform + 0.3

    shares, uniform = focus_shares(np.stack(borders))
    rows, verdict = focus_summary(shares, labels, uniform)
    assert verdict == OUTSIDE and rows[2]["share_median"] < uniform
    # one class looks at the lungs, the other at the borders: not concentrated on the lungs
    shares, uniform = focus_shares(np.stack(centred[:5] + borders[:5]))
    rows, verdict = focus_summary(shares, labels, uniform)
    assert verdict == OUTSIDE and rows[0]["share_median"] > uniform + 0.3
    # a uniform map is exactly at the uniform share: not clearly above it
    shares, uniform = focus_shares(np.ones((4, size, size)))
    assert focus_summary(shares, np.array([0, 0, 1, 1]), uniform)[1] == OUTSIDE
    # no map with mass: no verdict either way
    shares, uniform = focus_shares(np.zeros((4, size, size)))
    rows, verdict = focus_summary(shares, np.array([0, 0, 1, 1]), uniform)
    assert verdict == EMPTY and rows[2]["n_empty"] == 4 and np.isnan(rows[2]["share_median"])
    # empty maps are counted, not scored
    shares = np.array([0.9, np.nan, 0.8, 0.85])
    rows, verdict = focus_summary(shares, np.array([0, 0, 1, 1]), 0.56)
    assert rows[0]["n_empty"] == 1 and rows[0]["share_median"] == pytest.approx(0.9)
    assert verdict == INSIDE
    # one NORMAL map with mass out of ten does not decide the verdict: the other class does
    labels = np.array([0] * 10 + [1] * 10)
    lone_outside = np.r_[0.2, [np.nan] * 9, [0.9] * 10]
    rows, verdict = focus_summary(lone_outside, labels, 0.56)
    assert verdict == INSIDE and not rows[0]["judged"] and rows[1]["judged"]
    rows, verdict = focus_summary(np.r_[0.9, [np.nan] * 19], labels, 0.56)
    assert verdict == EMPTY


def test_focus_sample_is_deterministic_and_balanced():
    from autopneumo.report.gradcam import focus_sample

    y = np.array([0] * 30 + [1] * 200)
    a = focus_sample(y, 64, seed=0)
    assert a == focus_sample(y, 64, seed=0) and a == sorted(a) and len(set(a)) == 64
    assert (y[a] == 0).sum() == 30 and (y[a] == 1).sum() == 34  # the short class is filled up
    b = focus_sample(np.array([0, 1] * 100), 64)
    assert (np.array([0, 1] * 100)[b] == 1).sum() == 32
    assert focus_sample(np.array([1, 0, 1]), 64) == [0, 1, 2]
    assert focus_sample(np.array([], dtype=int), 64) == []


# --- escaping, single trial, broken inputs, Markdown ------------------------------------

EVIL = "<script>alert(1)</script>"


def test_malicious_names_render_as_text(tmp_path):
    runs = tmp_path / "runs"
    evil_files = [f"test/{CLASSES[y]}/<script>x{i}</script>$a$.jpeg" for i, y in enumerate(Y_TEST)]
    for k, family in enumerate(("base_cnn", "<b>fam</b> $x$")):
        write_trial(runs, family, "<img src=x onerror=alert(2)>", EVIL, 0.3 + 0.1 * k, seed=k,
                    hyperparameters={"model.<i>hp</i>": f"<u>{k}</u>", "train.lr": 0.1 * (k + 1)},
                    data={"path": f"/tmp/{EVIL}", "image_size": 32, "channels": 1,
                          "counts": {"<script>s</script>": {"NORMAL": 1, "PNEUMONIA": 2}}},
                    command=f"autopneumo search --family '{EVIL}'", test_files=evil_files)
    write_trial(runs, "base_cnn", "none", "f", 0.0, status="failed", seed=5,
                message=f"ValueError: {EVIL}")
    out = tmp_path / "report"
    write_report(runs, out, pixels=False)
    page = (out / "index.html").read_text()
    assert page.count("<script") == 1  # the page's own sorting script, nothing else
    for raw in ("<b>fam</b>", "<img src=x", "<i>hp</i>", "<u>0</u>", "alert(1)</script>"):
        assert raw not in page, raw
    for escaped in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;fam&lt;/b&gt;",
                    "&lt;img src=x onerror=alert(2)&gt;", "model.&lt;i&gt;hp&lt;/i&gt;",
                    "&lt;script&gt;s&lt;/script&gt;"):
        assert escaped in page, escaped
    assert "could not be drawn" not in page  # "$x$" in names does not break the figures
    md = write_report(runs, tmp_path / "md", fmt="md")[-1].read_text()
    assert "<script>" not in md and "<b>fam</b>" not in md and "&lt;b&gt;fam&lt;/b&gt;" in md


def test_single_trial_report_says_so(tmp_path):
    runs = tmp_path / "runs"
    write_trial(runs, "base_cnn", "flip", "0", 0.4)
    out = tmp_path / "r"
    write_report(runs, out, pixels=False)
    page = (out / "index.html").read_text()
    assert "Only one completed trial" in page
    assert "base_cnn + flip (trial 0)" in section(page, "headline")
    assert "only one completed model" in section(page, "significance")
    assert "could not be drawn" not in page


def test_broken_inputs_never_break_the_report(tmp_path):
    runs = tmp_path / "runs"
    write_trial(runs, "base_cnn", "none", "0", 0.5, seed=1, predictions=False)  # best, no file
    write_trial(runs, "base_cnn", "flip", "0", 0.3, seed=2)
    write_trial(runs, "base_cnn", "flip", "1", 0.2, seed=3)
    (runs / "base_cnn__flip" / "trial_1" / "predictions.csv").write_text("garbage\n\x00\x01")
    odd = write_trial(runs, "resnet18", "none", "0", 0.25, seed=4)
    record = json.loads(odd.read_text())
    record.update(history="not a dict", data=None, environment=[1, 2], command=None)
    odd.write_text(json.dumps(record))
    (runs / "base_cnn__none" / "trial_5").mkdir()
    (runs / "base_cnn__none" / "trial_5" / "record.json").write_text("{ truncated")
    (runs / "base_cnn__none" / "trial_6").mkdir()
    (runs / "base_cnn__none" / "trial_6" / "trial.json").write_text("not json")
    out = tmp_path / "r"
    written = write_report(runs, out)  # pixels on: the data folder is missing -> a note
    page = (out / "index.html").read_text()
    assert written[-1].name == "index.html"
    assert "Skipped unreadable record" in page and "trial_5" in page
    assert "no readable predictions.csv" in page
    assert "Data folder /nonexistent/chest_xray is not available here (if it moved" in page
    assert 'class="unfinished"' in page
    csv = pd.read_csv(out / "leaderboard.csv")
    assert len(csv) == 5


def test_markdown_summary_has_headline_verdict_and_one_table(report, tmp_path):
    written = write_report(report.runs, tmp_path / "md", fmt="md", top=4)
    assert [p.name for p in written] == ["leaderboard.csv", "calibration.csv", "summary.md"]
    md = written[-1].read_text()
    # the top 4, then the reference runs and ensembles ranked below them, as in the HTML
    from autopneumo.leaderboard import leaderboard

    frame = leaderboard(report.runs)
    below = frame.iloc[4:]
    marked = int((below["reference"] | below["ensemble"]).sum())
    assert md.count("\n| ") == 1 + 4 + marked
    assert md.count(" (reference) |") == int(frame["reference"].sum())
    if marked:
        assert re.search(rf"\n{4 + marked} of \d+ rows: the top 4, and the reference", md)
    assert "**Best by validation:**" in md
    assert "McNemar" in md
    assert "vs none, test precision" in md
    best = section(report.page, "headline")
    name = re.search(r'<div class="name">([^<]+)</div>', best).group(1)
    assert name in md


def test_report_over_a_thousand_trials_is_fast(tmp_path):
    """Only the top models' prediction files are read: the table and figures use records."""
    runs = tmp_path / "runs"
    template = json.loads(write_trial(runs, "base_cnn", "none", "0", 0.4).read_text())
    predictions = (runs / "base_cnn__none" / "trial_0" / "predictions.csv").read_bytes()
    rng = np.random.default_rng(0)
    for k in range(1, 1000):
        family, policy = ("base_cnn", "resnet18")[k % 2], ("none", "flip", "geometric")[k % 3]
        folder = runs / f"{family}__{policy}" / f"trial_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        record = {**template, "family": family, "policy": policy, "trial_id": str(k),
                  "project": f"{family}__{policy}",
                  "val": {**template["val"], "objective": float(rng.random())},
                  "hyperparameters": {"model.width": float(rng.choice([0.5, 1.0])),
                                      "train.learning_rate": float(rng.random() / 100)}}
        (folder / "record.json").write_text(json.dumps(record))
        (folder / "predictions.csv").write_bytes(predictions)
    write_report(runs, tmp_path / "r", pixels=False)  # its speed: benchmarks/, not here
    assert len(pd.read_csv(tmp_path / "r" / "leaderboard.csv")) == 1000


# --- pixels: a tiny real model ---------------------------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One real base_cnn trial (one epoch on a tiny Kermany folder), evaluated and saved as
    the search does, plus a synthetic flip trial on the same data for the previews."""
    from autopneumo.data import load_dataset
    from autopneumo.evaluation import Evaluator
    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    root = tmp_path_factory.mktemp("real")
    data = make_kermany(root / "chest_xray")
    dataset = load_dataset(data, image_size=32, channels=1, seed=0)
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1),
                        {"width": 0.25, "depth": 2, "dense_units": "16"})
    history = model.fit(dataset.train.x, dataset.train.y, epochs=1, batch_size=16, verbose=0)
    runs = root / "runs"
    evaluator = Evaluator(dataset, {"project": "base_cnn__none", "family": "base_cnn",
                                    "policy": "none", "tuner": "random"}, 0.95,
                          command="pytest tiny run", n_boot=100)
    trial = SimpleNamespace(trial_id="0", status="COMPLETED", message=None,
                            hyperparameters=SimpleNamespace(values={"model.width": 0.25}))
    record = evaluator.evaluate(model, trial, runs / "base_cnn__none" / "trial_0",
                                history.history, 1.0)
    record["val"]["objective"] = 2.0  # rank it first, whatever one epoch learnt
    atomic_write_json(runs / "base_cnn__none" / "trial_0" / "record.json", record)
    write_trial(runs, "base_cnn", "flip", "0", 0.2, data=record["data"],
                hyperparameters={"augment.mode": "horizontal"})
    return SimpleNamespace(runs=runs, model=model, dataset=dataset, record=record)


def test_pixel_sections_with_a_real_model(real_run, tmp_path):
    out = tmp_path / "r"
    write_report(real_run.runs, out)
    page = (out / "index.html").read_text()
    for name in ("samples", "augmentation", "gradcam"):
        png = (out / "figures" / f"{name}.png").read_bytes()
        assert base64.b64encode(png).decode() in page, name
        assert f'id="fig-{name}"' in page
    grad = section(page, "gradcam")
    assert "Grad-CAM on layer <code>" in grad and "could not be drawn" not in page
    assert 'id="gradcam-focus"' in grad and 'id="shortcut-table"' in grad  # numbers too
    assert f"{real_run.record['threshold']:.3f}" in grad
    counts = section(page, "data")
    for split in ("train", "val", "test"):
        c = real_run.record["data"]["counts"][split]
        assert (f"<td class=\"text\">{split}</td><td>{c['NORMAL']}</td><td>{c['PNEUMONIA']}</td>"
                f"<td>{c['NORMAL'] + c['PNEUMONIA']}</td><td>{c['patients']}</td>") in counts
    # the same folder without pixels: those figures leave the page and the folder
    write_report(real_run.runs, out, pixels=False)
    page = (out / "index.html").read_text()
    for name in ("samples", "augmentation", "gradcam"):
        assert not (out / "figures" / f"{name}.png").exists()
        assert f'id="fig-{name}"' not in page


def test_a_report_on_moved_data_says_so_and_takes_its_new_place(real_run, tmp_path):
    """The fault review's F9: with the data folder moved, the pixel figures and Grad-CAM
    left the report with no word on the terminal, and report had no --data."""
    import shutil

    from autopneumo.errors import OptionError

    runs = tmp_path / "runs"
    shutil.copytree(real_run.runs, runs)
    moved = Path(real_run.record["data"]["path"])
    gone = "/nonexistent/moved/chest_xray"
    for path in runs.rglob("record.json"):
        record = json.loads(path.read_text())
        if isinstance(record.get("data"), dict):
            record["data"]["path"] = gone
        path.write_text(json.dumps(record))
    with pytest.warns(AutopneumoNote) as said:
        write_report(runs, tmp_path / "r1")
    assert (f"Data folder {gone} is not available here (if it moved, report --data gives its "
            "new place). The report has no Grad-CAM, sample images or augmentation preview."
            ) in [str(w.message) for w in said]
    assert not (tmp_path / "r1" / "figures" / "gradcam.png").exists()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", AutopneumoWarning)
        write_report(runs, tmp_path / "r2", data=moved)  # where it is now
    assert [w for w in said if issubclass(w.category, AutopneumoWarning)] == []
    for name in ("samples", "augmentation", "gradcam"):
        assert (tmp_path / "r2" / "figures" / f"{name}.png").is_file(), name
    with pytest.raises(OptionError, match="^--data /nowhere: not found$"):
        write_report(runs, tmp_path / "r3", data="/nowhere")


def test_gradcam_maps(real_run):
    from autopneumo.report.gradcam import gradcam, last_conv_layer, pick_examples

    layer = last_conv_layer(real_run.model)
    assert "Conv" in type(layer).__name__ and len(layer.output.shape) == 4
    x = real_run.dataset.test.x[:6]
    maps, probs = gradcam(real_run.model, x, threshold=0.5)
    assert maps.shape == (6, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(probs, real_run.model.predict(x, verbose=0).ravel(), atol=1e-5)
    right, wrong = pick_examples(np.array([1, 1, 0, 0, 1]), np.array([0.9, 0.2, 0.1, 0.8, 0.6]),
                                 0.5, n=2)
    assert right == [0, 2] and wrong == [1, 3]


def test_shortcut_guard_numbers_without_pixels(real_run, tmp_path):
    """--no-pixels: no X-ray figure, but the Grad-CAM focus and the shortcut check are in the
    HTML, the Markdown and their CSVs, and equal an independent recomputation."""
    from autopneumo.report.gradcam import (
        EMPTY,
        FOCUS_IMAGES,
        INSIDE,
        OUTSIDE,
        focus_sample,
        focus_shares,
        gradcam,
    )
    from autopneumo.shortcuts import check_shortcuts

    out = tmp_path / "r"
    written = write_report(real_run.runs, out, pixels=False)
    assert {"gradcam_focus.csv", "shortcuts.csv"} <= {p.name for p in written}
    page = (out / "index.html").read_text()
    part = section(page, "gradcam")
    assert 'id="fig-gradcam"' not in page and "data:image/png;base64" not in part
    assert "Grad-CAM overlays are left out" in part and "could not be drawn" not in page

    focus = pd.read_csv(out / "gradcam_focus.csv")
    assert list(focus.true_class) == ["NORMAL", "PNEUMONIA", "all"]
    assert {"share_median", "share_q1", "share_q3", "uniform_share", "box_width", "box_height",
            "verdict", "n_images", "n_empty"} <= set(focus.columns)
    test = real_run.dataset.test
    idx = focus_sample(test.y, FOCUS_IMAGES, 0)
    assert focus.n_images.iloc[2] == len(idx) == min(FOCUS_IMAGES, len(test.y))
    assert set(focus.n_images.iloc[:2]) == {int((test.y[idx] == 0).sum()),
                                            int((test.y[idx] == 1).sum())}
    maps, _ = gradcam(real_run.model, test.x[idx], real_run.record["threshold"])
    shares, uniform = focus_shares(maps)
    ok = np.isfinite(shares)
    assert focus.n_empty.iloc[2] == (~ok).sum()
    if ok.any():  # a one-epoch model may explain nothing: then every map is empty
        assert focus.share_median.iloc[2] == pytest.approx(np.median(shares[ok]), abs=1e-4)
    assert focus.uniform_share.iloc[0] == pytest.approx(uniform)
    # a class is judged where at least half its maps have mass; no class judged: EMPTY
    labels = test.y[idx]
    judged = [2 * ok[labels == c].sum() >= (labels == c).sum() > 0 for c in (0, 1)]
    assert focus.judged.iloc[:2].tolist() == judged
    assert focus.verdict.iloc[0] in ((INSIDE, OUTSIDE) if any(judged) else (EMPTY,))
    table = part[part.index('<table id="gradcam-focus"'):]
    table = table[:table.index("</table>")]
    for r in focus.itertuples():
        shown = ((f"<td>{r.share_median:.3f}</td><td>{r.share_q1:.3f}–{r.share_q3:.3f}</td>")
                 if r.n_images > r.n_empty else "<td>–</td><td>–</td>")
        assert (f'<td class="text">{r.true_class}</td><td>{r.n_images - r.n_empty}</td>'
                f"{shown}<td>{r.uniform_share:.3f}</td><td>{r.n_empty}</td>") in table
    assert "middle 70 % of the width and 80 % of the height" in part
    assert focus.verdict.iloc[0] in part

    shortcuts = pd.read_csv(out / "shortcuts.csv")
    direct = check_shortcuts(real_run.record["data"]["path"])
    assert list(shortcuts.group) == list(direct.group)
    np.testing.assert_allclose(shortcuts.test_auc, direct.test_auc)
    np.testing.assert_allclose(shortcuts.test_auc_lo, direct.test_auc_lo)
    np.testing.assert_allclose(shortcuts.shift_auc, direct.shift_auc)
    table = part[part.index('<table id="shortcut-table"'):]
    for r in direct.itertuples():
        assert (f"<td>{r.test_auc:.3f} [{r.test_auc_lo:.3f}, {r.test_auc_hi:.3f}]</td>"
                f"<td>{r.shift_auc:.3f}</td>"
                f'<td class="text">{html.escape(r.verdict)}</td>') in table
    assert 'id="shortcut-verdict"' in part

    # occlusion: the same sample and box, recomputed independently
    from autopneumo.report.gradcam import occlusion

    occluded = pd.read_csv(out / "occlusion_focus.csv")
    assert list(occluded.true_class) == ["NORMAL", "PNEUMONIA", "all"]
    assert set(occluded.method) == {"Occlusion"} and set(occluded.cells) == {"8x8 grid"}
    o_maps, o_probs = occlusion(real_run.model, test.x[idx], real_run.record["threshold"])
    np.testing.assert_allclose(o_probs, real_run.model.predict(test.x[idx], verbose=0).ravel(),
                               atol=1e-4)
    o_shares, _ = focus_shares(o_maps)
    o_ok = np.isfinite(o_shares)
    assert occluded.n_empty.iloc[2] == (~o_ok).sum()
    if o_ok.any():
        assert occluded.share_median.iloc[2] == pytest.approx(np.median(o_shares[o_ok]), abs=1e-4)
    assert 'id="occlusion-focus"' in part and 'id="occlusion-verdict"' in part

    md = write_report(real_run.runs, tmp_path / "md", fmt="md", pixels=False)
    assert {p.name for p in md} == {"leaderboard.csv", "calibration.csv", "gradcam_focus.csv",
                                    "occlusion_focus.csv", "shortcuts.csv", "summary.md"}
    text = md[-1].read_text()
    guard = text[text.index("## Shortcut guard"):]
    assert "| true class | images | median share in box |" in guard
    assert "### Occlusion focus on the lung field" in guard and "8x8 grid" in guard
    assert f"| all | {focus.n_images.iloc[2] - focus.n_empty.iloc[2]} | " in guard
    assert focus.verdict.iloc[0] in guard
    if ok.any():
        assert f"| {focus.share_median.iloc[2]:.3f} | " in guard
    assert ("| feature group | features | test AUC [95 % CI] | shift (train vs test AUC) "
            "| verdict |") in guard
    for r in direct.itertuples():
        assert f"| {r.group} | " in guard and f"{r.test_auc:.3f} [{r.test_auc_lo:.3f}" in guard
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "md" / "shortcuts.csv"), shortcuts)


def _looks_at(where: str, size: int = 16):
    """A fixed model whose logit is the mean brightness of one region only: the centre
    (the lungs) or the top-left corner (a marker)."""
    import keras

    inputs = keras.Input((size, size, 1), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    q = size // 4
    crop = ((q, q), (q, q)) if where == "centre" else ((0, size - q), (0, size - q))
    x = keras.layers.Cropping2D(crop)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(1, activation="sigmoid", name="pneumonia")
    model = keras.Model(inputs, head(x))
    head.set_weights([np.full((1, 1), 8.0, "float32"), np.full((1,), -2.0, "float32")])
    return model


@pytest.mark.parametrize("where", ["centre", "corner"])
def test_occlusion_finds_the_region_the_decision_depends_on(where):
    """Greying out a cell the model ignores changes nothing; a cell it reads lowers the
    predicted class's logit. The focus verdict follows."""
    from autopneumo.report.gradcam import INSIDE, OUTSIDE, occlusion, occlusion_focus

    model = _looks_at(where)
    rng = np.random.default_rng(0)
    read = np.zeros((16, 16), bool)
    if where == "centre":
        read[4:12, 4:12] = True
    else:
        read[:4, :4] = True
    images = rng.integers(60, 200, (6, 16, 16, 1)).astype(np.uint8)
    images[:3, read] = 255  # the region it reads is bright: called pneumonia
    images[3:, read] = 0  # dark: called normal
    maps, probs = occlusion(model, images, threshold=0.5, grid=4)
    np.testing.assert_allclose(probs, model.predict(images, verbose=0).ravel(), atol=1e-5)
    assert (probs[:3] > 0.5).all() and (probs[3:] < 0.5).all()
    assert maps.shape == (6, 16, 16) and maps.min() >= 0 and maps.max() <= 1
    assert (maps[:, ~read] == 0).all()  # cells the model never sees carry no evidence
    assert (maps[:, read].min(axis=1) > 0).all()  # greying any read cell weakens the call
    rows, verdict, _ = occlusion_focus(model, images, np.array([1, 1, 1, 0, 0, 0]), 0.5, grid=4)
    assert verdict == (INSIDE if where == "centre" else OUTSIDE)


@pytest.mark.parametrize("where", ["centre", "border"])
def test_gradcam_focus_verdict_in_the_report(real_run, tmp_path, monkeypatch, where):
    """The page's verdict follows the maps: Grad-CAM replaced by centred blobs (a model that
    looks at the lungs) or by a frame (one that reads the borders)."""
    import autopneumo.report.gradcam as gc

    def fake(model, images, threshold=0.5, layer=None):
        size = images.shape[1]
        one = _blob(size, sigma=0.1) if where == "centre" else _frame_map(size, 2)
        return np.repeat(one[None], len(images), 0).astype(np.float32), np.full(len(images), 0.6)

    monkeypatch.setattr(gc, "gradcam", fake)
    out = tmp_path / "r"
    write_report(real_run.runs, out, fmt="html", pixels=False)
    part = section((out / "index.html").read_text(), "gradcam")
    focus = pd.read_csv(out / "gradcam_focus.csv")
    if where == "centre":
        assert (focus.share_median > focus.uniform_share + 0.3).all()
        assert f'class="verdict yes" id="gradcam-verdict">Grad-CAM: {gc.INSIDE}' in part
    else:
        assert (focus.share_median == 0).all()
        assert f'class="verdict no" id="gradcam-verdict">Grad-CAM: {gc.OUTSIDE}' in part
    assert f"<td>{focus.share_median.iloc[2]:.3f}</td>" in part


def test_missing_model_or_data_gives_notes(real_run, tmp_path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(real_run.runs, runs)
    (runs / "base_cnn__none" / "trial_0" / "model.keras").unlink()
    out = tmp_path / "r"
    write_report(runs, out)
    page = (out / "index.html").read_text()
    assert "model.keras is not available here" in page
    assert (out / "figures" / "samples.png").exists()  # the data is still there
    assert not (out / "gradcam_focus.csv").exists()  # no model, no focus
    assert (out / "shortcuts.csv").exists() and 'id="shortcut-table"' in page


def test_gradcam_of_a_saturated_model_is_not_empty():
    """A confident model's probability is exactly 1.0 in float32, so its gradient is 0:
    Grad-CAM must explain the logit, or every confident map comes out empty.

    The maps of the saturated model must equal those of the same model with its head's
    bias at 0 (the logit's gradient does not depend on the bias). Comparing with that
    twin, not asking every map to be non-empty, keeps the test independent of the
    random initialisation: Grad-CAM may rightly be empty for one image of one draw."""
    import keras

    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES
    from autopneumo.report.gradcam import gradcam

    keras.utils.set_random_seed(0)
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1),
                        {"width": 0.25, "depth": 2, "dense_units": "8"})
    head = model.get_layer("pneumonia")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
    head.bias.assign(np.array([0.0], dtype="float32"))
    # threshold 0: every image is a pneumonia call, explained by + logit as below
    plain_maps, plain_probs = gradcam(model, images, threshold=0.0)
    assert np.all(plain_probs < 1.0)
    head.bias.assign(np.array([60.0], dtype="float32"))  # sigmoid(60) == 1.0 in float32
    maps, probs = gradcam(model, images, threshold=0.5)
    assert np.all(probs == 1.0)
    assert maps.shape == (4, 32, 32)
    assert maps.max() > 0  # the saturated model's maps are not all empty
    np.testing.assert_allclose(maps, plain_maps, atol=1e-5)


def test_the_pixel_sections_data_check_takes_content_and_legacy_hashes(tmp_path):
    """The report's pixel figures load the data a record names; it says when that data
    changed: not for the record's content hash, nor for an older record's file-list hash."""
    from autopneumo.data.kermany import scan_kermany
    from autopneumo.report.pixels import load_record_data

    data = make_kermany(tmp_path / "data", patients={"train": 3, "val": 1, "test": 2})
    record = {"data": {"path": str(data), "image_size": 16, "channels": 1, "split_seed": 0}}
    dataset, notes = load_record_data(record)
    current = dataset.manifest["data_hash"]
    legacy = scan_kermany(data).digest()
    assert current != legacy  # the content hash; older records hold the list hash
    for recorded in (current, legacy):
        _, notes = load_record_data({"data": {**record["data"], "data_hash": recorded}})
        assert notes == [], recorded
    _, notes = load_record_data({"data": {**record["data"], "data_hash": "0" * 64}})
    assert notes == [f"The data folder {data} changed since the search "
                     f"(hash {current[:12]}, the record says 000000000000)."]


def test_a_no_pixels_markdown_report_removes_an_earlier_reports_pixel_figures(report, tmp_path):
    """--format md --no-pixels into a folder that held a report with X-ray figures removes
    those figures and the page that embeds them, and says so; a page without them stays."""
    out = tmp_path / "shared"
    (out / "figures").mkdir(parents=True)
    for name in ("samples", "gradcam", "roc"):
        (out / "figures" / f"{name}.png").write_bytes(b"png")
    (out / "index.html").write_text('<img id="fig-samples" src="data:image/png;base64,AA">')
    with pytest.warns(AutopneumoNote) as said:
        write_report(report.runs, out, fmt="md", pixels=False)
    assert not (out / "figures" / "samples.png").exists()
    assert not (out / "figures" / "gradcam.png").exists() and not (out / "index.html").exists()
    assert (out / "figures" / "roc.png").exists()
    assert any(str(w.message).startswith(f"removed {out / 'index.html'}") for w in said)
    (out / "index.html").write_text('<img id="fig-roc" src="data:image/png;base64,AA">')
    write_report(report.runs, out, fmt="md", pixels=False)
    assert (out / "index.html").exists()


def test_predictions_that_miss_test_images_are_left_out_with_a_note(report, tmp_path):
    """A predictions.csv holding fewer test rows than its record counts (a partial copy),
    or damaged rows, is not used for curves, confusion counts or the significance test."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(report.runs, runs)
    csv = report.csv
    best = csv[(csv.status == "completed") & ~csv.reference].iloc[0]
    path = Path(str(best.trial_dir).replace(str(report.runs), str(runs))) / "predictions.csv"
    lines = path.read_text().splitlines()
    test_rows = [i for i, line in enumerate(lines) if line.startswith("test,")]
    path.write_text("\n".join(lines[: test_rows[len(test_rows) // 2]]) + "\n")  # half of test
    write_report(runs, tmp_path / "md", fmt="md", pixels=False)
    out = tmp_path / "html"
    write_report(runs, out, pixels=False)
    page = (out / "index.html").read_text()
    label = f"{best.family} + {best.policy} (trial {best.trial_id})"
    assert f"{html.escape(label)}: no readable predictions.csv (or it does not hold every test " \
           "image its record counts)" in page
    assert "The best model by validation has no readable test predictions" in page


def test_policy_effects_do_not_pair_models_thresholded_for_other_recall_targets(report,
                                                                                tmp_path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(report.runs, runs)
    for path in (runs / "base_cnn__flip").rglob("record.json"):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "recall_target": 0.8}))
    write_report(runs, tmp_path / "html", pixels=False)
    part = section((tmp_path / "html" / "index.html").read_text(), "families")
    assert "thresholds chosen for recall targets 0.8 and 0.95" in part
    assert not re.search(r'<td class="text">base_cnn</td><td class="text"[^>]*>flip</td>', part)


def test_a_reference_run_that_deviates_from_the_recipe_says_how(report, tmp_path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(report.runs, runs)
    for path in runs.rglob("record.json"):
        record = json.loads(path.read_text())
        if record.get("reference"):
            settings = {"image_size": 32, "channels": 3, "batch_size": 16, "epochs": 1,
                        "learning_rate": 1e-3, "val_fraction": 0.2}
            path.write_text(json.dumps({**record, "reference_exact": False,
                                        "reference_settings": settings}))
    write_report(runs, tmp_path / "html", pixels=False)
    page = (tmp_path / "html" / "index.html").read_text()
    assert ("reference run, deviating from the classroom recipe: image_size 32 (recipe 180), "
            "epochs 1 (recipe 10)") in page
    assert "reference run (classroom recipe, this data)" not in page
    [md] = [p for p in write_report(runs, tmp_path / "md", fmt="md", pixels=False)
            if p.suffix == ".md"]
    assert "(deviating from the classroom recipe: image_size 32 (recipe 180)" in md.read_text()


def test_overlay_titles_print_enough_digits_to_differ_from_the_threshold():
    from autopneumo.report.gradcam import example_title

    assert example_title("a.jpeg", 1, 0.8734, 0.5).endswith("p=0.87 (right)")
    assert example_title("a.jpeg", 1, 0.49912, 0.49931).endswith("p=0.4991 (wrong)")
    assert example_title("a.jpeg", 0, 0.4988, 0.4992).endswith("p=0.4988 (right)")


def test_a_best_model_with_flat_scores_is_flagged(report, tmp_path):
    """Scores that hardly vary (or a loss at chance level) get a headline note, in the HTML
    and the Markdown: precision then rests on where the threshold falls."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(report.runs, runs)
    best = report.csv[(report.csv.status == "completed") & ~report.csv.reference].iloc[0]
    folder = Path(str(best.trial_dir).replace(str(report.runs), str(runs)))
    preds = pd.read_csv(folder / "predictions.csv")
    preds["probability"] = 0.499 + preds["probability"] * 0.001  # same order, squeezed
    preds.to_csv(folder / "predictions.csv", index=False)
    write_report(runs, tmp_path / "html", pixels=False)
    page = (tmp_path / "html" / "index.html").read_text()
    assert "The best model barely separates the images: 90 % of its test scores lie" in page
    [md] = [p for p in write_report(runs, tmp_path / "md", fmt="md", pixels=False)
            if p.suffix == ".md"]
    assert "- Note: The best model barely separates the images" in md.read_text()
    plain = (report.out / "index.html").read_text()
    assert "barely separates" not in plain


def test_headline_gives_patients_the_recall_intervals_low_end_and_flags_zero_width(report,
                                                                                   tmp_path):
    import shutil

    part = section(report.page, "headline")
    best = report.csv[(report.csv.status == "completed") & ~report.csv.reference].iloc[0]
    assert f"its interval goes down to {best.test_recall_lo:.3f}" in part
    assert re.search(r"\(\d+ images, \d+ patients\)", part)
    assert "have zero width" not in part
    runs = tmp_path / "runs"
    shutil.copytree(report.runs, runs)
    path = Path(str(best.trial_dir).replace(str(report.runs), str(runs))) / "record.json"
    record = json.loads(path.read_text())
    record["test_ci"]["precision"] = [1.0, 1.0]
    path.write_text(json.dumps(record))
    write_report(runs, tmp_path / "html", pixels=False)
    page = (tmp_path / "html" / "index.html").read_text()
    assert "The intervals of precision have zero width" in page


def test_the_comparison_table_gives_specificity(report):
    part = section(report.page, "headline")
    assert "<th>specificity</th><th>NPV</th><th>AUC</th>" in part
    best = report.csv[(report.csv.status == "completed") & ~report.csv.reference].iloc[0]
    assert re.search(rf"<td>{best.test_accuracy:.3f}[^<]*</td><td>{best.test_specificity:.3f}"
                     rf"[^<]*</td><td>{best.test_npv:.3f}[^<]*</td><td>{best.test_auc:.3f}", part)
    test = saved_test(best)
    normal_calls = test[test.probability < best.threshold]
    assert best.test_npv == pytest.approx((normal_calls.label == 0).mean())
    assert best.test_npv_lo <= best.test_npv <= best.test_npv_hi


def test_a_reference_runs_threshold_is_marked_fixed(report):
    part = section(report.page, "leaderboard-section")
    assert part.count(" (fixed)</td>") == int(report.csv.reference.sum())


def test_precision_and_npv_at_other_prevalences():
    # sensitivity 0.9, specificity 0.8, half the images sick: 0.45 / (0.45 + 0.10)
    assert at_prevalence(0.9, 0.8, 0.5) == pytest.approx((0.45 / 0.55, 0.40 / 0.45))
    ppv, npv = at_prevalence(0.9, 0.8, 0.05)  # screening: most positive calls are wrong
    assert ppv == pytest.approx(0.045 / (0.045 + 0.19)) and npv == pytest.approx(0.76 / 0.765)
    assert math.isnan(at_prevalence(0.0, 1.0, 0.5)[0])  # no positive call at all


def test_headline_says_how_precision_and_npv_move_with_prevalence(report, tmp_path):
    part = section(report.page, "headline")
    best = report.csv[(report.csv.status == "completed") & ~report.csv.reference].iloc[0]
    test = saved_test(best)
    sick, n = int(test.label.sum()), len(test)
    assert f"{sick} of {n} test images ({sick / n:.1%}) show pneumonia" in part
    # at the test set's own prevalence the formula gives back the measured precision and NPV
    assert (f"{sick / n:.1%} (this test set): {best.test_precision:.3f} / {best.test_npv:.3f}"
            in part)
    ppv, npv = at_prevalence(best.test_recall, best.test_specificity, 0.10)
    assert f"10%: {ppv:.3f} / {npv:.3f}" in part
    md = write_report(report.runs, tmp_path / "md", fmt="md")[-1].read_text()
    assert f"10%: {ppv:.3f} / {npv:.3f}" in md and "test NPV" in md


# --- from the sixteenth session's mutation review: each test kills a mutant that passed

def test_a_paired_difference_resamples_each_model_at_its_own_threshold():
    from autopneumo.report.stats import paired_differences

    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.5).astype(int)
    s = np.clip(0.35 * y + 0.65 * rng.random(200), 0, 1)
    d = paired_differences(y, s, 0.3, s, 0.7, n_boot=200)["precision"]
    assert d.value == pytest.approx(-0.40940, abs=1e-4)
    assert d.lo <= d.value <= d.hi and d.lo < d.hi


def test_the_reports_confusion_counts_a_score_at_the_threshold_as_pneumonia():
    from autopneumo.report.stats import Confusion, confusion

    assert confusion(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.2, 0.1]), 0.5) == \
        Confusion(tp=1, fp=1, tn=1, fn=1)


def test_hyperparameter_effects_are_medians_and_name_the_best_trials_value():
    from autopneumo.report.stats import hyperparameter_effects

    frame = pd.DataFrame({"hp:opt": ["adam", "adam", "adam", "sgd", "sgd"],
                          "hp:lr": [0.1, 0.01, 0.001, 0.02, 0.05],
                          "val_objective": [0.9, 0.1, 0.2, 0.5, 0.5]})
    lr, opt = hyperparameter_effects(frame)
    assert lr.best_value == "0.1" and opt.best_value == "adam"
    assert opt.by_value == {"sgd": 0.5, "adam": 0.2}  # medians (means: adam 0.4)
    assert list(opt.by_value) == ["sgd", "adam"]


def test_align_refuses_two_models_whose_labels_disagree():
    from types import SimpleNamespace

    from autopneumo.report.stats import align

    a = SimpleNamespace(file=np.array(["x", "y"]), label=np.array([0, 1]))
    b = SimpleNamespace(file=np.array(["y", "x"]), label=np.array([0, 0]))
    assert align(a, b) is None


def test_calibration_counts_bins_like_scikit_learn_and_weights_the_error_by_images():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    from autopneumo.objective import calibration

    cal = calibration(np.array([0, 0, 1, 1]), np.array([0.1, 0.15, 0.8, 1.0]))
    assert cal.bins.n.tolist() == [2, 1, 1]  # 1.0 falls in the last bin
    assert cal.ece == pytest.approx((2 * 0.125 + 1 * 0.2 + 0) / 4)
    assert cal.brier == pytest.approx((0.01 + 0.0225 + 0.04 + 0) / 4)
    assert (cal.mean_probability, cal.observed) == (pytest.approx(0.5125), 0.5)
    rng = np.random.default_rng(4)
    s = rng.random(500)
    y = (rng.random(500) < s ** 2).astype(int)  # overconfident scores
    cal = calibration(y, s)
    observed, predicted = calibration_curve(y, s, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(cal.bins.observed, observed)
    np.testing.assert_allclose(cal.bins.predicted, predicted)
    assert cal.brier == pytest.approx(brier_score_loss(y, s))
    assert cal.ece > 0.1  # s against s squared: far from the diagonal
    assert np.isnan(calibration(np.array([]), np.array([])).brier)


def test_the_report_shows_each_top_models_calibration_on_test_and_validation(report):
    table = pd.read_csv(report.out / "calibration.csv")
    part = section(report.page, "curves")
    assert 'id="calibration-table"' in part and 'id="fig-calibration"' in part
    assert len(table) == min(5, len(table)) and len(table) >= 2
    for _, row in table.iterrows():
        trial = report.csv[report.csv["rank"] == row["rank"]].iloc[0]
        preds = pd.read_csv(Path(trial.trial_dir) / "predictions.csv")
        test, val = preds[preds.split == "test"], preds[preds.split == "val"]
        assert row.test_brier == pytest.approx(((test.probability - test.label) ** 2).mean())
        assert row.val_brier == pytest.approx(((val.probability - val.label) ** 2).mean())
        assert row.test_pneumonia_share == pytest.approx(test.label.mean())
        assert f"<td>{row.test_brier:.3f}</td><td>{row.test_ece:.3f}</td>" in part


def test_the_markdown_summary_gives_the_best_models_calibration(report, tmp_path):
    md = write_report(report.runs, tmp_path / "md", fmt="md")[-1].read_text()
    best = pd.read_csv(report.out / "calibration.csv").iloc[0]
    assert (f"test Brier {best.test_brier:.3f}, ECE {best.test_ece:.3f} (validation "
            f"{best.val_brier:.3f}, {best.val_ece:.3f})") in md
