"""``ensemble``: averaging, threshold from validation only, split checks, the marked row;
and one tiny real search for ``--tta`` end to end through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import autopneumo
from autopneumo.cli import main
from autopneumo.data.patients import patients_of
from autopneumo.ensemble import combine_scores, ensemble
from autopneumo.errors import OptionError, RunsError
from autopneumo.inference import export
from autopneumo.objective import binary_metrics, bootstrap_intervals, validation_summary
from autopneumo.report import write_report
from tests.records import three_trials, write_record
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
    assert list(got.columns) == ["split", "file", "label", "probability", "patient"]
    assert list(got.patient[got.split == "test"]) == list(  # members' files carry none: names
        patients_of(got.file[got.split == "test"]))
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
    # intervals over patients, as a trial's; these file names carry none (one a file), so
    # the record says they resample images
    from autopneumo.objective import bootstrap_intervals

    assert record["test_ci_resampled"] == "images"
    expected = bootstrap_intervals(test.label, test.probability, expected["threshold"],
                                   n_boot=100, groups=patients_of(test.file), target=0.95)
    assert record["test_ci"] == {k: pytest.approx(list(v), nan_ok=True)
                                 for k, v in expected.items()}


def test_finalize_and_export_never_take_a_reference_run(runs, tmp_path, monkeypatch):
    """The reference run is first on validation (its split leaks patients): finalize and
    export, like ensemble, choose among the search trials."""
    from autopneumo.finalize import finalize
    from autopneumo.inference import CARD_FILE
    from autopneumo.leaderboard import search_trials

    for trial in ("a", "ref"):  # the reference run first on validation; data folders named
        path = trial_dir(runs, "base_cnn", "none", trial) / "record.json"
        record = json.loads(path.read_text())
        record["val"]["objective"] = {"a": 0.9, "ref": 1.0}[trial]
        record["data"] = {"path": f"data-{trial}", "image_size": 32, "channels": 1,
                          "split_seed": 0}
        path.write_text(json.dumps(record))
    board = autopneumo.leaderboard(runs)
    assert board.iloc[0]["trial_id"] == "ref" and board.iloc[0]["reference"]
    assert search_trials(board)["trial_id"].tolist() == ["a", "b", "c", "f"]
    (trial_dir(runs, "base_cnn", "none", "a") / "model.keras").write_bytes(b"weights")
    [winner] = export(runs, tmp_path / "winner")
    assert json.loads((winner / CARD_FILE).read_text())["trial_id"] == "a"

    loaded = []

    def load_dataset(path, *args, **kwargs):  # finalize reads the chosen trial's data first
        loaded.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr("autopneumo.data.load_dataset", load_dataset)
    with pytest.raises(KeyboardInterrupt):
        finalize(runs, top=1, seeds=1)
    assert loaded == ["data-a"]
    monkeypatch.undo()
    only_refs = tmp_path / "refs"
    ref = trial_dir(runs, "base_cnn", "none", "ref")
    shutil.copytree(ref, only_refs / "base_cnn__none" / ref.name)
    with pytest.raises(RunsError, match="no completed search trial to finalize"):
        finalize(only_refs, top=1, seeds=1)
    with pytest.raises(RunsError, match="no completed search trial to export"):
        export(only_refs, tmp_path / "none")


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
    assert "- ensemble top2 (mean of the top 2 trial(s) by validation): precision" in (
        md[-1].read_text())


def test_finalize_takes_a_trial_recorded_with_the_older_file_list_hash(tmp_path, monkeypatch):
    """Records written before data hashes covered file contents hold the file-list hash:
    finalize still takes the same files (by that hash), and still refuses others."""
    import autopneumo.data
    from autopneumo.errors import DataError
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    _finalized(runs, tmp_path, monkeypatch)  # the trial and its seeds record "h1"
    manifests = {"nowhere": {"data_hash": "content1", "data_list_hash": "h1"},
                 "other": {"data_hash": "content2", "data_list_hash": "h2"}}
    monkeypatch.setattr(autopneumo.data, "load_dataset",
                        lambda path, *a, **k: SimpleNamespace(manifest=manifests[str(path)]))
    assert finalize(runs, top=1, seeds=3).iloc[0]["reused"] == 3
    with pytest.raises(DataError, match=r"\(data hash differs\)"):
        finalize(runs, top=1, seeds=3, data="other")


def _finalized(runs: Path, tmp_path: Path, monkeypatch, qualities=(0.3, 0.5, 0.7)) -> Path:
    """A trial and its ``finalize`` seeds already retrained (so finalize reuses them)."""
    import autopneumo.data

    trial = write_record(runs, "base_cnn", "flip", "0007", 0.5, seed=1)
    data = {"path": "nowhere", "image_size": 32, "channels": 1, "split_seed": 0,
            "data_hash": "h1"}
    record = json.loads(trial.read_text())
    trial.write_text(json.dumps({**record, "data": data}))
    out = runs / "_finalize" / "rank1_base_cnn__flip_trial0007"
    for seed, quality in enumerate(qualities):  # same labels (seed=1), other scores
        src = write_record(tmp_path / "scratch", "base_cnn", "flip", f"s{seed}", quality, seed=1)
        folder = out / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "predictions.csv").write_text((src.parent / "predictions.csv").read_text())
        final = {**json.loads(src.read_text()), "hyperparameters": record["hyperparameters"],
                 "data": data, "seed": seed, "finalize_of": str(trial.parent)}
        (folder / "final.json").write_text(json.dumps(final))
    monkeypatch.setattr(autopneumo.data, "load_dataset",
                        lambda *a, **k: SimpleNamespace(manifest={"data_hash": "h1"}))
    return out


def test_finalize_seeds_are_an_ensemble_row_and_the_report_shows_the_retraining(
        tmp_path, monkeypatch):
    from autopneumo.finalize import finalize
    from autopneumo.leaderboard import search_trials

    runs = tmp_path / "runs"
    out = _finalized(runs, tmp_path, monkeypatch)
    summary = finalize(runs, top=1, seeds=3)  # every seed reused: nothing trains
    assert summary.iloc[0]["reused"] == 3
    name = "rank1_base_cnn__flip_trial0007_seeds3"
    assert summary.iloc[0]["ensemble"] == name
    record = json.loads((runs / "_ensemble" / name / "record.json").read_text())
    assert record["kind"] == "ensemble" and record["policy"] == "3 seeds of 0007"
    assert record["ensemble"]["seeds"] == [0, 1, 2]
    assert record["ensemble"]["of"] == str(trial_dir(runs, "base_cnn", "flip", "0007"))
    # the mean of the seeds' probabilities, thresholded on validation only
    seeds = [predictions(out / f"seed{s}") for s in range(3)]
    got = predictions(runs / "_ensemble" / name)
    np.testing.assert_allclose(got.probability, sum(p.probability for p in seeds) / 3)
    val, test = got[got.split == "val"], got[got.split == "test"]
    expected = validation_summary(val.label, val.probability, 0.95)
    assert record["threshold"] == expected["threshold"]
    assert summary.iloc[0]["ensemble_precision"] == pytest.approx(binary_metrics(
        test.label, test.probability, expected["threshold"], 0.95)["precision"])
    # a leaderboard row of its own, never a trial to retrain or export
    board = autopneumo.leaderboard(runs)
    assert board[board["ensemble"]]["policy"].tolist() == ["3 seeds of 0007"]
    assert search_trials(board)["trial_id"].tolist() == ["0007"]
    # the report: the retraining as mean ± sd, the seeds' ensemble, both CSVs copied
    md = write_report(runs, tmp_path / "md", fmt="md", pixels=False)
    text = md[-1].read_text()
    precision = summary.iloc[0]
    assert (f"- base_cnn + flip (trial 0007), retrained from scratch (finalize): mean ± sd "
            f"over 3 seeds: precision {precision['precision_mean']:.3f} ± "
            f"{precision['precision_std']:.3f}") in text
    assert "(mean of 3 retrainings (seeds 0, 1, 2) of base_cnn + flip (trial 0007))" in text
    copied = pd.read_csv(tmp_path / "md" / "finalize_summary.csv", dtype={"trial_id": str})
    assert copied["precision_mean"].tolist() == pytest.approx(summary["precision_mean"].tolist())
    assert len(pd.read_csv(tmp_path / "md" / "finalize_runs.csv")) == 3
    write_report(runs, tmp_path / "html", pixels=False)
    page = (tmp_path / "html" / "index.html").read_text()
    assert '<span class="tag">retrained</span>' in page
    assert ("base_cnn + flip (trial 0007) was picked for its validation score, which its "
            "seed&#39;s luck helps; its retrained row") in page
    n_test = int(len(test))  # the trial's test images, which every seed scored
    assert f"mean ± sd over 3 seeds</div></td><td>{n_test}</td>" in page
    # a report of a folder that was never finalized has no such row and no stale CSV
    import shutil

    shutil.rmtree(runs / "_finalize")
    write_report(runs, tmp_path / "md", fmt="md", pixels=False)
    assert not (tmp_path / "md" / "finalize_summary.csv").exists()
    assert "retrained from scratch" not in (tmp_path / "md" / "summary.md").read_text()


def test_the_reports_retrained_row_shows_the_seeds_test_loss(tmp_path, monkeypatch):
    """summary.csv has the seeds' test loss (mean and sd) since the twenty-second
    session, but the report's retrained row still showed "–" in its loss column."""
    import re

    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    _finalized(runs, tmp_path, monkeypatch)
    row = finalize(runs, top=1, seeds=3).iloc[0]
    write_report(runs, tmp_path / "html", pixels=False)
    page = (tmp_path / "html" / "index.html").read_text()
    retrained = re.search(r'retrained</span>.*?</tr>', page).group(0)
    assert retrained.endswith(f"<td>{row['loss_mean']:.3f} ± {row['loss_std']:.3f}</td></tr>")
    # a summary.csv written before it had the loss: "–", as before
    summary = runs / "_finalize" / "summary.csv"
    pd.read_csv(summary).drop(columns=["loss_mean", "loss_std"]).to_csv(summary, index=False)
    write_report(runs, tmp_path / "html", pixels=False)
    page = (tmp_path / "html" / "index.html").read_text()
    assert re.search(r'retrained</span>.*?</tr>', page).group(0).endswith("<td>–</td></tr>")


def test_finalize_with_fewer_seeds_keeps_the_seeds_already_retrained(tmp_path, monkeypatch):
    """``--seeds 1`` after ``--seeds 3`` trains nothing and still summarises the three
    finished seeds (and their ensemble), instead of rewriting summary.csv for one seed."""
    import autopneumo.trials
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    _finalized(runs, tmp_path, monkeypatch)
    monkeypatch.setattr(autopneumo.trials, "train_and_evaluate",
                        lambda *a, **k: pytest.fail("a finished seed was trained again"))
    full = finalize(runs, top=1, seeds=3)
    for fewer in (1, 2):
        summary = finalize(runs, top=1, seeds=fewer)
        assert summary.iloc[0]["seeds"] == 3 and summary.iloc[0]["reused"] == 3
        assert summary.iloc[0]["precision_std"] == pytest.approx(full.iloc[0]["precision_std"])
        assert summary.iloc[0]["ensemble"] == "rank1_base_cnn__flip_trial0007_seeds3"
        assert pd.read_csv(runs / "_finalize" / "runs.csv")["seed"].tolist() == [0, 1, 2]
    # a later seed that no longer matches the trial (other values) is left out
    final = runs / "_finalize" / "rank1_base_cnn__flip_trial0007" / "seed2" / "final.json"
    record = json.loads(final.read_text())
    record["hyperparameters"] = {**record["hyperparameters"], "train.learning_rate": 0.5}
    final.write_text(json.dumps(record))
    summary = finalize(runs, top=1, seeds=1)
    assert summary.iloc[0]["seeds"] == 2
    assert summary.iloc[0]["ensemble"] == "rank1_base_cnn__flip_trial0007_seeds2"


def test_a_single_seed_makes_no_ensemble(tmp_path, monkeypatch):
    from autopneumo.ensemble import seed_ensemble
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    out = _finalized(runs, tmp_path, monkeypatch, qualities=(0.5,))
    summary = finalize(runs, top=1, seeds=1)
    assert pd.isna(summary.iloc[0]["ensemble"]) and not (runs / "_ensemble").exists()
    with pytest.raises(OptionError, match="at least 2 seeds"):
        seed_ensemble(runs, [out / "seed0"], "x", "x")
    (out / "seed0" / "final.json").write_text("[1, 2]")
    with pytest.raises(RunsError, match="final.json is not a record"):
        seed_ensemble(runs, [out / "seed0", out / "seed0"], "x", "x")


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
    # the data folder moved: one line saying so; --data names the copy (the same files)
    for m in record["members"]:
        path = Path(m["trial_dir"]) / "record.json"
        member = json.loads(path.read_text())
        member["data"]["path"] = str(tmp_path / "moved_away")
        path.write_text(json.dumps(member))
    args = ["ensemble", "--top", "2", "--tta", "--runs-dir", str(runs)]
    moved = CliRunner().invoke(main, args)
    assert moved.exit_code == 2 and "if the data moved, pass --data" in moved.output
    again = CliRunner().invoke(main, [*args, "--data", str(tiny_kermany)])
    assert again.exit_code == 0, again.output
    np.testing.assert_allclose(predictions(out).probability, got.probability, rtol=1e-6)
    from tests.conftest import make_kermany

    other = make_kermany(tmp_path / "other", seed=7)
    wrong = CliRunner().invoke(main, [*args, "--data", str(other)])
    assert wrong.exit_code == 2 and "data hash differs" in wrong.output
    plain = CliRunner().invoke(main, ["ensemble", "--top", "2", "--data", str(tiny_kermany),
                                      "--runs-dir", str(runs)])
    assert plain.exit_code == 2 and "--data is for --tta" in plain.output


def _log_odds(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p))


def test_logit_combine_averages_log_odds_and_is_a_row_of_its_own(runs):
    from autopneumo.ensemble import combine_scores

    plain = ensemble(runs, top=2, n_boot=50)
    record = ensemble(runs, top=2, n_boot=50, combine="logit")
    out = Path(record["_path"]).parent
    assert out == runs / "_ensemble" / "top2_logit" and record["policy"] == "top2_logit"
    assert record["ensemble"]["combine"].startswith("mean log-odds")
    assert plain["ensemble"]["combine"] == "mean probability"
    a = predictions(trial_dir(runs, "base_cnn", "none", "a")).probability
    b = predictions(trial_dir(runs, "base_cnn", "flip", "b")).probability
    expected = 1 / (1 + np.exp(-(_log_odds(a) + _log_odds(b)) / 2))
    got = predictions(out)
    np.testing.assert_allclose(got.probability, expected)
    assert not np.allclose(got.probability, (a + b) / 2)  # a different rule, not a rename
    val = got[got.split == "val"]
    assert record["threshold"] == validation_summary(val.label, val.probability, 0.95)["threshold"]
    # both rows stay on the leaderboard
    assert sorted(autopneumo.leaderboard(runs).query("ensemble")["policy"]) == ["top2", "top2_logit"]
    # a member that is sure of everything counts as much as one that is not
    squashed, unsure = np.array([1e-9, 1e-6, 1.0]), np.array([0.45, 0.5, 0.55])
    np.testing.assert_allclose(combine_scores([unsure, unsure], "logit"), unsure)
    mixed = combine_scores([squashed, unsure], "logit")
    assert np.all(np.isfinite(mixed)) and np.all(np.diff(mixed) > 0)
    np.testing.assert_allclose(combine_scores([squashed, unsure]), (squashed + unsure) / 2)
    with pytest.raises(OptionError, match="--combine must be one of probability, logit"):
        combine_scores([unsure], "median")


def test_finalize_takes_the_combine_option(tmp_path, monkeypatch):
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    out = _finalized(runs, tmp_path, monkeypatch)
    summary = finalize(runs, top=1, seeds=3, combine="logit")
    name = "rank1_base_cnn__flip_trial0007_seeds3_logit"
    assert summary.iloc[0]["ensemble"] == name
    record = json.loads((runs / "_ensemble" / name / "record.json").read_text())
    assert record["policy"] == "3 seeds of 0007, logit mean"
    seeds = [predictions(out / f"seed{s}").probability for s in range(3)]
    expected = 1 / (1 + np.exp(-sum(_log_odds(p) for p in seeds) / 3))
    np.testing.assert_allclose(predictions(runs / "_ensemble" / name).probability, expected)
    md = write_report(runs, tmp_path / "md", fmt="md", pixels=False)
    assert ("(mean log-odds of 3 retrainings (seeds 0, 1, 2) of base_cnn + flip (trial 0007))"
            in md[-1].read_text())
    with pytest.raises(OptionError, match="--combine"):
        finalize(runs, top=1, seeds=3, combine="max")


def test_the_cli_takes_the_combine_option(runs):
    result = CliRunner().invoke(main, ["ensemble", "--top", "2", "--combine", "logit",
                                       "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "mean log-odds of" in result.output
    assert (runs / "_ensemble" / "top2_logit" / "record.json").exists()
    bad = CliRunner().invoke(main, ["ensemble", "--top", "2", "--combine", "max",
                                    "--runs-dir", str(runs)])
    assert bad.exit_code == 2 and "--combine" in bad.output and "Traceback" not in bad.output


def test_bad_output_places_are_one_line_errors_and_nothing_is_overwritten(runs, tmp_path):
    """export never writes over a trial's model; an --out or --runs-dir that is a file, or
    a seed out of range, is one line naming it, exit 2 (no traceback)."""
    a = trial_dir(runs, "base_cnn", "none", "a")
    b = trial_dir(runs, "base_cnn", "flip", "b")
    (a / "model.keras").write_bytes(b"model a")
    (b / "model.keras").write_bytes(b"model b")
    runner = CliRunner()
    for out in (b, a):  # another trial's folder, and the winner's own
        result = runner.invoke(main, ["export", "--runs-dir", str(runs), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [
            f"Error: --out {out}: holds a model.keras that is not an earlier export (a "
            "trial's folder?); choose another --out"]
    assert (b / "model.keras").read_bytes() == b"model b"
    assert not (b / "model_card.json").exists()
    (a / "model.keras").unlink()
    result = runner.invoke(main, ["export", "--runs-dir", str(runs), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and f"{a}: no model.keras to export" in result.output
    assert not (tmp_path / "x").exists()
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me")
    result = runner.invoke(main, ["report", "--runs-dir", str(runs), "--out", str(afile),
                                  "--no-pixels"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: {afile}: File exists"]
    assert afile.read_text() == "keep me"
    result = runner.invoke(main, ["report", "--runs-dir", str(runs), "--out",
                                  str(afile / "sub"), "--format", "md"])
    assert result.exit_code == 2 and "Not a directory" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["search", "--family", "base_cnn", "--runs-dir", str(afile)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --runs-dir {afile}: is a file, not a folder")
    result = runner.invoke(main, ["search", "--family", "base_cnn", "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.output


def test_finalize_reuses_the_seeds_however_the_runs_folder_is_spelled(tmp_path, monkeypatch):
    """Seeds retrained from ``/abs/runs`` are reused from ``runs`` (another working
    directory, a moved or copied folder), never trained and overwritten again."""
    import shutil

    from autopneumo.finalize import finalize

    _finalized(tmp_path / "runs", tmp_path, monkeypatch)
    shutil.copytree(tmp_path / "runs", tmp_path / "copy")
    monkeypatch.chdir(tmp_path)
    for spelled in ("runs", "copy"):
        summary = finalize(Path(spelled), top=1, seeds=3)
        assert summary.iloc[0]["reused"] == 3, spelled


def test_a_truncated_member_prediction_file_is_one_line_without_numpy_warnings(runs):
    import warnings

    folder = trial_dir(runs, "base_cnn", "flip", "b")
    text = (folder / "predictions.csv").read_text()
    (folder / "predictions.csv").write_text(text[: len(text) - 30].rsplit(",", 1)[0] + ",\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in cast" fails it
        with pytest.raises(RunsError, match="predictions.csv has test rows without a 0/1 label "
                                            "or a finite probability"):
            ensemble(runs, top=2, n_boot=20)


@pytest.mark.parametrize("column, cell", [("probability", "0.5x"), ("label", "one")])
def test_a_non_numeric_cell_in_a_member_prediction_file_is_one_line(runs, column, cell):
    """The probabilities were converted outside the check: '0.5x' was a ValueError
    traceback from ensemble, and the ready message never ran (review 21)."""
    folder = trial_dir(runs, "base_cnn", "flip", "b")
    frame = predictions(folder).astype({column: object})
    frame.loc[frame.index[frame.split == "val"][0], column] = cell
    frame.to_csv(folder / "predictions.csv", index=False)
    with pytest.raises(RunsError, match=f"{folder}: predictions.csv has val rows without a "
                                        "0/1 label or a finite probability"):
        ensemble(runs, top=2, n_boot=20)
    result = CliRunner().invoke(main, ["ensemble", "--runs-dir", str(runs), "--top", "2"])
    assert result.exit_code == 2 and "predictions.csv" in result.output, result.output
    assert not (runs / "_ensemble").exists()


@pytest.mark.parametrize("target", ["abc", None, 2, float("nan")])
def test_a_member_record_whose_recall_target_is_not_a_number_in_0_1_is_one_line(runs, target):
    """recall_target "abc" was a ValueError traceback in _common_target (review 21)."""
    path = trial_dir(runs, "base_cnn", "flip", "b") / "record.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "recall_target": target}))
    with pytest.raises(RunsError, match=f"{path.parent}: record.json: recall_target "
                                        f"{target!r} is not a number in"):
        ensemble(runs, top=2, n_boot=20)
    result = CliRunner().invoke(main, ["ensemble", "--runs-dir", str(runs), "--top", "2"])
    assert result.exit_code == 2 and "record.json" in result.output, result.output
    assert not (runs / "_ensemble").exists()


def test_finalize_takes_a_moved_data_folder_only_if_it_holds_the_same_files(tmp_path,
                                                                          monkeypatch):
    import autopneumo.data
    from autopneumo.errors import DataError
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    _finalized(runs, tmp_path, monkeypatch)
    loaded = []

    def load_dataset(path, *args, **kwargs):
        loaded.append(str(path))
        if str(path) == "nowhere":
            raise DataError("data folder not found: nowhere")
        return SimpleNamespace(manifest={"data_hash": "h1" if str(path) == "moved" else "h2"})

    monkeypatch.setattr(autopneumo.data, "load_dataset", load_dataset)
    with pytest.raises(DataError, match=r"^data folder not found: nowhere \(where "
                                        r"base_cnn__flip/trial_0007 was searched\); if the "
                                        "data moved, pass --data$"):
        finalize(runs, top=1, seeds=3)
    assert finalize(runs, top=1, seeds=3, data="moved").iloc[0]["reused"] == 3
    with pytest.raises(DataError, match="--data other: other files than .*trial_0007 was "
                                        r"searched on \(data hash differs\)"):
        finalize(runs, top=1, seeds=3, data="other")
    result = CliRunner().invoke(main, ["finalize", "--runs-dir", str(runs), "--top", "1",
                                       "--data", "moved"])
    assert result.exit_code == 0, result.output


# --- from the sixteenth session's mutation review: each test kills a mutant that passed

def _predictions(path):
    return pd.read_csv(path / "predictions.csv")


def test_three_members_are_averaged_by_their_mean(tmp_path):
    from autopneumo.ensemble import ensemble

    runs = three_trials(tmp_path)
    rec = ensemble(runs, top=3, n_boot=20)
    got = _predictions(Path(rec["_path"]).parent)
    parts = [_predictions(Path(m["trial_dir"])) for m in rec["members"]]
    np.testing.assert_allclose(got.probability, sum(p.probability for p in parts) / 3)


def test_members_are_chosen_by_validation_even_where_test_ranks_them_the_other_way(tmp_path):
    from autopneumo.ensemble import ensemble

    runs = three_trials(tmp_path, test_quality={"a": 0.05, "b": 0.2, "c": 0.35})
    rec = ensemble(runs, top=2, n_boot=20)
    assert [m["trial_id"] for m in rec["members"]] == ["a", "b"]


def test_ensemble_intervals_resample_patients(tmp_path):
    from autopneumo.ensemble import ensemble

    runs = three_trials(tmp_path, kermany_names=True)
    rec = ensemble(runs, top=2, n_boot=50)
    assert rec["test_ci_resampled"] == "patients"
    test = _predictions(Path(rec["_path"]).parent).query("split == 'test'")
    expected = bootstrap_intervals(test.label, test.probability, rec["threshold"], n_boot=50,
                                   groups=patients_of(test.file), target=0.95)
    by_image = bootstrap_intervals(test.label, test.probability, rec["threshold"], n_boot=50,
                                   target=0.95)
    assert rec["test_ci"] == {k: pytest.approx(list(v), nan_ok=True) for k, v in expected.items()}
    assert rec["test_ci"]["auc"] != pytest.approx(list(by_image["auc"]))


def test_members_with_other_labels_are_refused(tmp_path):
    from autopneumo.ensemble import ensemble
    from autopneumo.errors import RunsError

    runs = three_trials(tmp_path)
    folder = runs / "base_cnn__flip" / "trial_b"
    frame = _predictions(folder)
    i = frame.index[frame.split == "val"][0]
    frame.loc[i, "label"] = 1 - frame.loc[i, "label"]
    frame.to_csv(folder / "predictions.csv", index=False)
    with pytest.raises(RunsError, match="not evaluated on the same"):
        ensemble(runs, top=2, n_boot=20)


def test_members_with_other_recall_targets_are_refused(tmp_path):
    from autopneumo.ensemble import ensemble
    from autopneumo.errors import RunsError

    runs = three_trials(tmp_path)
    path = runs / "base_cnn__flip" / "trial_b" / "record.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "recall_target": 0.9}))
    with pytest.raises(RunsError, match="different recall targets"):
        ensemble(runs, top=2, n_boot=20)


def test_the_log_odds_mean_clips_only_at_float32s_last_step_below_one():
    """A saved 1 - 1e-6 is a real, very confident vote: it keeps its log-odds (the clip at
    1e-7 is for 0 and 1 themselves), so with a 0.5 it averages to 0.999 (a mutant that
    clipped at 1e-3 gave 0.969)."""
    from autopneumo.ensemble import combine_scores

    logit = np.log((1 - 1e-6) / 1e-6) / 2
    got = combine_scores([np.array([1 - 1e-6]), np.array([0.5])], "logit")
    assert got[0] == pytest.approx(1 / (1 + np.exp(-logit)))
    assert got[0] == pytest.approx(0.999001, abs=1e-6)
    assert np.isfinite(combine_scores([np.array([1.0, 0.0])] * 2, "logit")).all()


def test_the_model_card_tells_a_deployer_what_the_model_does_at_its_threshold(runs, tmp_path):
    """Validation metrics at the card's threshold (its 'validation' precision and recall
    used to be at 0.5 beside that threshold), calibration on validation and test, the
    retrained seeds' spread, and where the model came from."""
    import hashlib

    from autopneumo.inference import CARD_FILE, model_card
    from autopneumo.objective import binary_metrics

    a = trial_dir(runs, "base_cnn", "none", "a")
    (a / "model.keras").write_bytes(b"weights of a")
    finalize_dir = runs / "_finalize"
    finalize_dir.mkdir()
    pd.DataFrame([{"rank": 1, "project": "base_cnn__none", "trial_id": "a", "seeds": 3,
                   "precision_mean": 0.78, "precision_std": 0.017}]).to_csv(
        finalize_dir / "summary.csv", index=False)
    record = json.loads((a / "record.json").read_text())
    record["val"]["precision"] = float("nan")  # no validation image scored >= 0.5
    (a / "record.json").write_text(json.dumps(record))
    [winner] = export(runs, tmp_path / "winner")

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    card = json.loads((winner / CARD_FILE).read_text(), parse_constant=refuse)  # standard JSON
    assert card["validation_at_0.5"]["precision"] is None
    val = predictions(a).query("split == 'val'")
    at = binary_metrics(val.label, val.probability, record["threshold"], 0.95)
    assert card["validation_at_threshold"]["recall"] == pytest.approx(at["recall"])
    assert card["validation_at_threshold"]["recall"] >= 0.95  # the threshold's own promise
    assert card["validation_at_0.5"]["recall"] == pytest.approx(record["val"]["recall"])
    test = predictions(a).query("split == 'test'")
    assert card["calibration"]["test"]["brier"] == pytest.approx(
        ((test.probability - test.label) ** 2).mean())
    assert card["calibration"]["test"]["pneumonia_share"] == pytest.approx(test.label.mean())
    assert "Not a calibrated probability" in card["output"]
    assert card["retrained_seeds"] == {"seeds": 3.0, "precision_mean": 0.78,
                                       "precision_std": 0.017}
    assert card["provenance"]["model_sha256"] == hashlib.sha256(b"weights of a").hexdigest()
    assert card["provenance"]["trial_dir"] == str(a)
    assert "Not a medical device" in card["intended_use"]
    # the statistics review's F2: the test block's prec_at_recall is at a threshold picked
    # on test; the card says so beside it
    assert "prec_at_recall" in card["test"]
    assert "picked on test" in card["test_prec_at_recall_is"]
    assert "not what this card's threshold gives" in card["test_prec_at_recall_is"]
    reference = model_card({**record, "reference": True, "threshold": 0.5})
    assert reference["threshold_chosen_on"].startswith("fixed at 0.5")


def test_export_of_ten_or_more_pads_the_rank_so_the_folders_list_in_rank_order(tmp_path):
    runs = tmp_path / "runs"
    for i in range(11):  # validation quality falls with i: trial i is rank i + 1
        folder = write_record(runs, "base_cnn", "flip", f"{i:02d}", 0.9 - 0.07 * i, seed=i).parent
        (folder / "model.keras").write_bytes(b"w%d" % i)
    written = export(runs, tmp_path / "out", top=11)
    names = [p.name for p in written]
    assert names[0].startswith("rank01_") and names[-1].startswith("rank11_")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names  # ls shows rank order
    from autopneumo.inference import resolve_model

    assert resolve_model(written[1]).info["rank_by_validation"] == 2  # predict reads it


def test_export_replaces_an_earlier_export_as_a_whole_and_refuses_other_files(runs, tmp_path):
    """Exporting --top 3 then --top 1 into one folder left three rank folders beside the
    new model (predict --model on it then read a stale one); a folder holding someone's
    files is refused and left as it was."""
    from autopneumo.inference import CARD_FILE

    for trial, family, policy in (("a", "base_cnn", "none"), ("b", "base_cnn", "flip"),
                                  ("c", "resnet18", "none")):
        (trial_dir(runs, family, policy, trial) / "model.keras").write_bytes(b"w" + trial.encode())
    out = tmp_path / "winner"
    three = export(runs, out, top=3)
    assert [p.name for p in three] == ["rank1_base_cnn__none_triala",
                                       "rank2_base_cnn__flip_trialb", "rank3_resnet18__none_trialc"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in three)
    [one] = export(runs, out, top=1)
    assert one == out and sorted(p.name for p in out.iterdir()) == sorted(
        [CARD_FILE, "model.keras", "validation_scores.csv"])
    assert (out / "model.keras").read_bytes() == b"wa"
    again = export(runs, out, top=2)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in again)
    assert not list(tmp_path.glob(".winner.export-*"))  # no staging folder left
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["export", "--runs-dir", str(runs), "--out", str(theirs)])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"Error: --out {theirs}: holds notes.txt, which is not part of an earlier export; "
        "choose an empty or new --out"]
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    many = CliRunner().invoke(main, ["export", "--runs-dir", str(runs), "--out",
                                     str(tmp_path / "many"), "--top", "9"])
    assert many.exit_code == 0 and "only 3 completed search trial(s) to export (--top 9)" \
        in many.output


def _exact_logit_mean(members):
    p = np.asarray(members, dtype=np.float64)
    z = np.mean(np.log(p) - np.log1p(-p), axis=0)
    return 1.0 / (1.0 + np.exp(-z))


# --- the twentieth session's reviews of the log-odds clip: the statistics review found the
# clip at 1e-7 tied real low scores; a wider clip below (to 1.4e-45) then leaned every
# saturated image towards NORMAL (the diff review). The clip is float32's own, both sides.

def test_logit_mean_of_two_opposite_saturated_members_is_even():
    """A float32 sigmoid gives exactly 1.0 from a logit of about +17 but still resolves a
    logit of -30: clipped at 1.4e-45 below and 1 - 2**-24 above, members at logits +30 and
    -30 averaged to 0.0012 instead of 0.5."""
    def sigmoid32(z):
        return float(np.float32(1.0) / (np.float32(1.0) + np.exp(np.float32(-z))))

    got = combine_scores([np.array([sigmoid32(30.0)]), np.array([sigmoid32(-30.0)])], "logit")
    assert got[0] == pytest.approx(0.5)


def test_logit_mean_keeps_every_score_float32_tells_apart_from_0_and_1():
    """Scores between float32's step below 1 (2**-24, 6e-8) and the old clip (1e-7) keep
    their own log-odds: 8e-8 and 9e-8 rank apart (the clip at 1e-7 tied them); below
    2**-24 scores tie within a member, the price of a symmetric clip."""
    a = np.array([8e-8, 9e-8, 1e-9, 1e-12])
    got = combine_scores([a, np.full(4, 0.5)], "logit")
    assert got[0] == pytest.approx(_exact_logit_mean([[8e-8], [0.5]])[0], rel=1e-9)
    assert got[0] < got[1]
    assert got[2] == got[3] < got[0]


def test_finalize_mean_over_seeds_does_not_silently_drop_a_seed_with_an_undefined_metric(
        tmp_path, monkeypatch):
    """The statistics review of the twentieth session (F3): one of three retrained seeds
    called every test image pneumonia (its validation threshold below all its test
    scores), so its NPV is undefined; summary.csv (and the report's 'mean ± sd over 3
    seeds') gave the mean and sd of the other two, with seeds = 3."""
    import math

    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    out = _finalized(runs, tmp_path, monkeypatch)
    final = json.loads((out / "seed0" / "final.json").read_text())
    final["test"] = {**final["test"], "npv": math.nan}  # as binary_metrics gives it
    (out / "seed0" / "final.json").write_text(json.dumps(final))
    row = finalize(runs, top=1, seeds=3).iloc[0]
    assert row["seeds"] == 3
    seeds = pd.read_csv(runs / "_finalize" / "runs.csv")
    assert seeds["npv"].isna().sum() == 1
    assert math.isnan(row["npv_mean"]) and math.isnan(row["npv_std"])
    assert row["precision_mean"] == pytest.approx(seeds["precision"].mean())  # defined: kept
