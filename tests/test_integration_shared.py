"""Integration on a small subset of the real Kermany data (skipped where it is absent):
a 2-trial search at 32 px from the CLI, then leaderboard and report, with the test-set
metrics recomputed from the saved predictions by scikit-learn."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from autopneumo.cli import main

PER_CLASS = {"train": 60, "val": 8, "test": 30}


def subset(shared: Path, dest: Path) -> Path:
    """Symlinks to the first files of each split and class (sorted names: whole patients
    mostly stay together; the split is by patient anyway)."""
    for split, n in PER_CLASS.items():
        for cls in ("NORMAL", "PNEUMONIA"):
            (dest / split / cls).mkdir(parents=True)
            for f in sorted((shared / split / cls).iterdir())[:n]:
                os.symlink(f, dest / split / cls / f.name)
    return dest


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_data_search_leaderboard_report(shared_data, tmp_path):
    data = subset(shared_data, tmp_path / "chest_xray")
    runs, out = tmp_path / "runs", tmp_path / "report"
    runner = CliRunner()
    result = runner.invoke(main, ["search", "--family", "base_cnn", "--augment", "flip",
                                  "--data", str(data), "--image-size", "32", "--epochs", "2",
                                  "--tuner", "random", "--max-trials", "2",
                                  "--runs-dir", str(runs)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 completed" in result.output
    board = runner.invoke(main, ["leaderboard", "--runs-dir", str(runs)])
    assert board.exit_code == 0 and "base_cnn" in board.output
    rep = runner.invoke(main, ["report", "--runs-dir", str(runs), "--out", str(out)])
    assert rep.exit_code == 0, rep.output
    csv = pd.read_csv(out / "leaderboard.csv")
    assert len(csv) == 2 and set(csv.status) == {"completed"}
    for _, row in csv.iterrows():
        preds = pd.read_csv(Path(row.trial_dir) / "predictions.csv")
        test = preds[preds.split == "test"]
        assert len(test) == 2 * PER_CLASS["test"]
        pred = (test.probability >= row.threshold).astype(int)
        assert row.test_accuracy == pytest.approx(accuracy_score(test.label, pred))
        assert row.test_precision == pytest.approx(precision_score(test.label, pred,
                                                                   zero_division=0))
        assert row.test_recall == pytest.approx(recall_score(test.label, pred))
        assert row.test_auc == pytest.approx(roc_auc_score(test.label, test.probability))
        val = preds[preds.split == "val"]
        # every validation image comes from train + official val, never from test
        assert len(val) > 0 and all(not f.startswith("test/") for f in val.file)
    assert "base_cnn + flip" in (out / "index.html").read_text()
