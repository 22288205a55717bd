"""Reference runs (the classroom models) and multi-seed finalisation, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import autopneumo
from autopneumo.baseline import CLASSROOM, classroom
from autopneumo.data import load_dataset
from autopneumo.errors import RunsError
from autopneumo.finalize import finalize


def test_image_level_split_mixes_patients_patient_split_does_not(tiny_kermany):
    by_patient = load_dataset(tiny_kermany, image_size=16, seed=0)
    by_image = load_dataset(tiny_kermany, image_size=16, seed=0, split_by="image")
    assert not set(by_patient.train.patients) & set(by_patient.val.patients)
    assert set(by_image.train.patients) & set(by_image.val.patients)
    assert len(by_image.val) == round(0.2 * (len(by_image.train) + len(by_image.val)))
    np.testing.assert_array_equal(by_image.test.files, by_patient.test.files)


@pytest.mark.slow
def test_classroom_reference_runs_and_finalize(tiny_kermany, tmp_path):
    runs = tmp_path / "runs"
    records = classroom(tiny_kermany, runs, image_size=32, epochs=1)
    assert [r["trial_id"] for r in records] == ["cnn", "cnn_flip", "resnet18"]
    for r in records:
        assert r["reference"] is True and r["reference_exact"] is False  # 32 px, 1 epoch
        assert r["threshold"] == 0.5  # the study's decision threshold
        assert r["reference_settings"]["batch_size"] == CLASSROOM["batch_size"] == 16
        assert r["hyperparameters"]["train.batch_size"] == 16
        preds = pd.read_csv(Path(r["trial_dir"]) / "predictions.csv")
        test = preds[preds.split == "test"]
        assert r["test"]["recall"] == pytest.approx(
            ((test.probability >= 0.5) & (test.label == 1)).sum() / (test.label == 1).sum())
    assert records[2]["params"] > records[0]["params"]  # ResNet-18 at full width
    board = autopneumo.leaderboard(runs)
    assert board["reference"].all() and len(board) == 3

    # reference runs are never retrained: their image-level split makes their validation
    # objective incomparable (and retraining would not follow their recipe)
    with pytest.raises(RunsError, match="no completed search trial to finalize"):
        finalize(runs, top=1, seeds=2)


@pytest.mark.slow
def test_finalize_resumes_reusing_the_seeds_already_retrained(tiny_kermany, tmp_path,
                                                             monkeypatch):
    import autopneumo.trials
    from autopneumo.tuning import SearchConfig, search
    from tests.tiny_spaces import small_cnn

    runs = tmp_path / "runs"
    space = tmp_path / "small_cnn.yaml"
    space.write_text(small_cnn())
    search(SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random", max_trials=1,
                        epochs=1, image_size=32, runs_dir=runs, spaces=[space]))
    first = finalize(runs, top=1, seeds=1)
    [final] = (runs / "_finalize").rglob("final.json")
    trained = []
    real = autopneumo.trials.train_and_evaluate

    def counting(*args, **kwargs):
        trained.append(args[8])  # the seed
        return real(*args, **kwargs)

    monkeypatch.setattr(autopneumo.trials, "train_and_evaluate", counting)
    again = finalize(runs, top=1, seeds=2)  # seed 0 is done: only seed 1 trains
    assert trained == [1]
    assert again.iloc[0]["seeds"] == 2 and again.iloc[0]["reused"] == 1
    finals = sorted((runs / "_finalize").rglob("final.json"))
    assert len(finals) == 2
    values = [json.loads(p.read_text())["test"]["precision"] for p in finals]
    assert again.iloc[0]["precision_mean"] == pytest.approx(np.mean(values))
    assert again.iloc[0]["precision_std"] == pytest.approx(np.std(values, ddof=1), nan_ok=True)
    losses = [json.loads(p.read_text())["test"]["loss"] for p in finals]  # the seed's metrics
    assert again.iloc[0]["loss_mean"] == pytest.approx(np.mean(losses))  # include the loss
    assert not np.isnan(again.iloc[0]["ensemble_loss"])
    board = autopneumo.leaderboard(runs)  # finalisation runs are not trials; their
    assert len(board) == 2 and board["ensemble"].sum() == 1  # ensemble is one marked row
    assert board[board["ensemble"]]["policy"].item() == f"2 seeds of {again.iloc[0]['trial_id']}"
    runs_csv = pd.read_csv(runs / "_finalize" / "runs.csv")
    assert runs_csv.loc[runs_csv.seed == 0, "precision"].item() == pytest.approx(
        first.iloc[0]["precision_mean"])
    # a seed's result that no longer matches (other values) is trained again
    record = json.loads(final.read_text())
    record["hyperparameters"]["train.learning_rate"] = 0.5
    final.write_text(json.dumps(record))
    finalize(runs, top=1, seeds=2)
    assert trained == [1, 0]


def test_finalize_names_a_missing_runs_folder(tmp_path):
    from autopneumo.errors import OptionError

    with pytest.raises(RunsError, match=f"^runs folder not found: {tmp_path / 'missing'}$"):
        finalize(tmp_path / "missing")
    with pytest.raises(OptionError, match="--seeds must be a positive integer, got 0"):
        finalize(tmp_path, seeds=0)
