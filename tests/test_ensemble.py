"""``ensemble``: averaging, threshold from validation only, split checks, the marked row;
and one tiny real search for ``--tta`` end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import autopneumo
from autopneumo.cli import main
from autopneumo.ensemble import ensemble
from autopneumo.errors import OptionError, RunsError
from autopneumo.inference import export
from autopneumo.objective import binary_metrics, validation_summary
from autopneumo.report import write_report
from tests.records import write_record
from tests.test_search import SMALL_CNN  # the same tiny space as the search tests


def trial_dir(runs: Path, family: str, policy: str, trial_id: str) -> Path:
    return runs / f"{family}__{policy}" / f"trial_{trial_id}"


def predictions(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "predictions.csv")


@pytest.fixture
def runs(tmp_path):
    """Validation order: a > b > c (by quality); a failed trial and a reference run too."""
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "a", 0.5, seed=1)
    write_record(runs, "base_cnn", "flip", "b", 0.3, seed=1)
    write_record(runs, "resnet18", "none", "c", 0.1, seed=1)
    write_record(runs, "resnet18", "none", "f", 0.0, status="failed")
    ref = write_record(runs, "base_cnn", "none", "ref", 0.9, seed=1)  # best on validation
    record = json.loads(ref.read_text())
    ref.write_text(json.dumps({**record, "reference": True}))
    return runs


def test_ensemble_averages_the_top_trials_by_validation(runs):
    assert autopneumo.ensemble is ensemble  # the package-level function
    record = ensemble(runs, top=2, n_boot=100)
    out = Path(record["_path"]).parent
    assert out == runs / "_ensemble" / "top2"
    # members: the two best search trials by validation (the reference run is never one)
    assert [m["trial_id"] for m in record["members"]] == ["a", "b"]
    assert record["kind"] == "ensemble" and record["family"] == "ensemble"
    assert record["policy"] == "top2" and record["status"] == "completed"
    a = predictions(trial_dir(runs, "base_cnn", "none", "a"))
    b = predictions(trial_dir(runs, "base_cnn", "flip", "b"))
    got = predictions(out)
    assert list(got.columns) == ["split", "file", "label", "probability"]
    assert list(got.file) == list(a.file) and list(got.label) == list(a.label)
    np.testing.assert_allclose(got.probability, (a.probability + b.probability) / 2)
    # threshold and metrics exactly as a trial's: validation rule, then test at it
    val, test = got[got.split == "val"], got[got.split == "test"]
    expected = validation_summary(val.label, val.probability, 0.95)
    assert record["threshold"] == expected["threshold"]
    assert record["val"] == pytest.approx(expected, nan_ok=True)
    assert record["test"] == pytest.approx(
        binary_metrics(test.label, test.probability, expected["threshold"], 0.95), nan_ok=True)
    lo, hi = record["test_ci"]["auc"]
    assert lo <= record["test"]["auc"] <= hi


def test_members_are_aligned_by_file_not_by_row_order(runs):
    folder = trial_dir(runs, "base_cnn", "flip", "b")
    original = predictions(folder)
    predictions(folder).iloc[::-1].to_csv(folder / "predictions.csv", index=False)
    record = ensemble(runs, top=2, n_boot=50)
    a = predictions(trial_dir(runs, "base_cnn", "none", "a"))
    got = predictions(Path(record["_path"]).parent)
    np.testing.assert_allclose(got.probability, (a.probability + original.probability) / 2)


def test_threshold_is_chosen_on_validation_only(runs):
    first = ensemble(runs, top=3, n_boot=50)
    for family, policy, trial in (("base_cnn", "none", "a"), ("base_cnn", "flip", "b"),
                                  ("resnet18", "none", "c")):
        folder = trial_dir(runs, family, policy, trial)
        frame = predictions(folder)
        test = frame.split == "test"
        frame.loc[test, "probability"] = 1 - frame.loc[test, "probability"]  # wreck test only
        frame.to_csv(folder / "predictions.csv", index=False)
    second = ensemble(runs, top=3, n_boot=50)
    # members keep their rank among the trials, whatever ensemble rows are ranked above
    assert [m["rank"] for m in second["members"]] == [1, 2, 3]
    assert [m["trial_dir"] for m in second["members"]] == [m["trial_dir"] for m in first["members"]]
    assert second["threshold"] == first["threshold"]
    assert second["val"] == first["val"]
    assert second["test"]["auc"] == pytest.approx(1 - first["test"]["auc"])


def test_different_splits_are_refused_naming_the_trials(runs):
    folder = trial_dir(runs, "resnet18", "none", "c")
    frame = predictions(folder)
    frame.loc[frame.index[frame.split == "val"][0], "file"] = "train/X/other.jpeg"
    frame.to_csv(folder / "predictions.csv", index=False)
    ensemble(runs, top=2, n_boot=50)  # a and b still agree
    with pytest.raises(RunsError, match="not evaluated on the same validation and test") as err:
        ensemble(runs, top=3, n_boot=50)
    assert str(folder) in str(err.value)
    assert str(trial_dir(runs, "base_cnn", "none", "a")) in str(err.value)
    assert str(trial_dir(runs, "base_cnn", "flip", "b")) not in str(err.value)


def test_ensemble_is_its_own_marked_row_and_not_a_trial(runs, tmp_path):
    record = ensemble(runs, top=2, n_boot=50)
    frame = autopneumo.leaderboard(runs)
    row = frame[frame["ensemble"]]
    assert len(row) == 1 and row.iloc[0]["family"] == "ensemble"
    assert row.iloc[0]["trial_dir"] == str(Path(record["_path"]).parent)
    assert not frame[frame["trial_id"] != "top2"]["ensemble"].any()
    # ranked by its validation objective like any row
    ranked = frame.dropna(subset=["val_objective"])
    assert list(ranked["val_objective"]) == sorted(ranked["val_objective"], reverse=True)
    assert row.iloc[0]["val_objective"] == pytest.approx(record["val"]["objective"])
    # an ensemble is never a member of the next ensemble, nor exported or retrained
    again = ensemble(runs, top=3, n_boot=50)
    assert "ensemble" not in {m["family"] for m in again["members"]}
    assert len(autopneumo.leaderboard(runs)) == len(frame) + 1
    from autopneumo.leaderboard import search_trials

    assert not search_trials(autopneumo.leaderboard(runs))["ensemble"].any()
    # even ranked first and with a model file, an ensemble is not exported as a model
    path = Path(record["_path"])
    path.write_text(json.dumps({**record, "val": {**record["val"], "objective": 2.0}}))
    for folder in autopneumo.leaderboard(runs)["trial_dir"]:
        (Path(folder) / "model.keras").write_bytes(b"not a model")
    assert autopneumo.leaderboard(runs).iloc[0]["family"] == "ensemble"
    [exported] = export(runs, tmp_path / "out", top=1)
    assert json.loads((exported / "model_card.json").read_text())["family"] != "ensemble"
    # the report marks it, and keeps it out of the winner's place and the heatmap
    write_report(runs, tmp_path / "report", pixels=False)
    page = (tmp_path / "report" / "index.html").read_text()
    assert '<span class="tag">ensemble</span>' in page
    assert 'class="completed ensemble"' in page
    csv = pd.read_csv(tmp_path / "report" / "leaderboard.csv")
    assert csv[csv.trial_id == "top2"]["ensemble"].item()
    md = write_report(runs, tmp_path / "md", fmt="md", pixels=False)
    assert "Ensemble (ensemble: mean of the top 2" in md[-1].read_text()


def test_options_and_missing_trials(runs, tmp_path):
    with pytest.raises(OptionError, match="--top 1 without --tta"):
        ensemble(runs, top=1)
    with pytest.raises(OptionError):
        ensemble(runs, top=0)
    with pytest.raises(RunsError, match="--top 4 needs 4 completed trials, found 3"):
        ensemble(runs, top=4)
    with pytest.raises(RunsError, match="runs folder not found"):
        ensemble(tmp_path / "nope", top=2)
    result = CliRunner().invoke(main, ["ensemble", "--top", "9", "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


TRAINING = """\
kind: training
name: training
hyperparameters:
  learning_rate: {type: choice, values: [0.001, 0.003]}
  batch_size: {type: fixed, value: 16}
  epochs: {type: fixed, value: 1}
  patience: {type: fixed, value: 1}
"""


@pytest.mark.slow
def test_tta_end_to_end_matches_a_manual_flip_average(tiny_kermany, tmp_path):
    import keras

    from autopneumo.data import load_dataset
    from autopneumo.tuning import SearchConfig, search

    runs = tmp_path / "runs"
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    training = tmp_path / "training.yaml"
    training.write_text(TRAINING)
    records = search(SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random",
                                  max_trials=2, epochs=1, image_size=32, runs_dir=runs,
                                  spaces=[space, training], seed=1))
    assert [r["status"] for r in records] == ["completed", "completed"]

    result = CliRunner().invoke(main, ["ensemble", "--top", "2", "--tta", "--runs-dir",
                                       str(runs)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = runs / "_ensemble" / "top2_tta"
    assert f"record: {out / 'record.json'}" in result.output
    assert "test (16 images" in result.output and "auc" in result.output
    record = json.loads((out / "record.json").read_text())
    assert record["ensemble"]["tta"] and len(record["members"]) == 2

    ds = load_dataset(tiny_kermany, image_size=32, seed=1)
    models = [keras.saving.load_model(Path(m["trial_dir"]) / "model.keras", safe_mode=True)
              for m in record["members"]]
    expected = {}
    for split in ("val", "test"):
        x = getattr(ds, split).x
        per_model = []
        for model in models:
            flipped = np.flip(x, axis=2)  # left-right in (N, H, W, C)
            per_model.append((model.predict(x, verbose=0).ravel()
                              + model.predict(flipped, verbose=0).ravel()) / 2)
        expected[split] = pd.Series(np.mean(per_model, axis=0), index=getattr(ds, split).files)
    got = predictions(out)
    for split in ("val", "test"):
        part = got[got.split == split]
        assert len(part) == len(expected[split])
        np.testing.assert_allclose(part.probability, expected[split].loc[part.file].to_numpy(),
                                   rtol=1e-5, atol=1e-6)
    val = got[got.split == "val"]
    assert record["threshold"] == validation_summary(val.label, val.probability,
                                                     0.95)["threshold"]
    # TTA really re-scored the models (the flip changes an untrained-ish CNN's outputs)
    plain = predictions(Path(record["members"][0]["trial_dir"]))
    assert not np.allclose(plain.probability, got.probability)
    # a single model with TTA
    single = CliRunner().invoke(main, ["ensemble", "--top", "1", "--tta", "--runs-dir",
                                       str(runs)], catch_exceptions=False)
    assert single.exit_code == 0, single.output
    one = predictions(runs / "_ensemble" / "top1_tta")
    model = models[0]  # the best member
    test = one[one.split == "test"]
    x = ds.test.x[[list(ds.test.files).index(f) for f in test.file]]
    manual = (model.predict(x, verbose=0).ravel() + model.predict(np.flip(x, 2), verbose=0).ravel()) / 2
    np.testing.assert_allclose(test.probability, manual, rtol=1e-5, atol=1e-6)
    board = autopneumo.leaderboard(runs)
    assert board["ensemble"].sum() == 2 and len(board) == 4
