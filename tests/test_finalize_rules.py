"""finalize (and the baseline) after review 21: a trial's seeds are reused whatever rank an
earlier run gave it, and a retraining that diverges is recorded, not a traceback. Nothing
trains here: a stand-in writes what a retraining writes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from autopneumo.atomic import atomic_write_json
from tests.records import edit_record as _set
from tests.records import write_record


def _real_records(runs: Path, data: Path) -> list[Path]:
    """Two completed search-trial records on ``data`` (its real manifest), no training."""
    from autopneumo.data import load_dataset

    manifest = load_dataset(data, image_size=32).manifest
    recorded = {k: manifest.get(k) for k in (
        "source", "path", "data_hash", "data_list_hash", "image_size", "channels",
        "split_seed", "val_fraction", "split_hash", "counts")}
    paths = []
    for tid, quality in (("0", 0.5), ("1", 0.3)):
        path = write_record(runs, "base_cnn", "none", tid, quality, seed=0)
        _set(path, data=recorded, trial_dir=str(path.parent))
        paths.append(path)
    return paths


def _stand_in(calls: list, diverge: set | None = None):
    """``trials._train_and_evaluate`` without training: the final.json a retraining
    writes; seeds in ``diverge`` raise as a diverged fit does."""
    def fake(family, policy, values, dataset, evaluator, trial_dir, trial_id, recall_target,
             seed, threshold, early_stopping, extra, filename, keep_best=True):
        import keras_tuner as kt

        calls.append((str((extra or {}).get("finalize_of")), seed))
        if seed in (diverge or ()):
            raise kt.errors.FailedTrialError("Traceback ...\nloss became nan in epoch 1")
        metrics = {"precision": 0.5 + seed / 10, "recall": 0.9, "accuracy": 0.7, "auc": 0.8,
                   "specificity": 0.5, "npv": 0.6, "f1": 0.6, "prec_at_recall": 0.5}
        final = {"status": "completed", "hyperparameters": values,
                 "data": {"data_hash": dataset.manifest["data_hash"]},
                 "test": metrics, "val": {"prec_at_recall": 0.5}, **(extra or {})}
        Path(trial_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(extra["finalize_of"]) / "predictions.csv",
                        Path(trial_dir) / "predictions.csv")  # the seed ensemble reads it
        atomic_write_json(Path(trial_dir) / filename, final)
        return final
    return fake


def test_finalize_reuses_seeds_retrained_under_an_earlier_rank(tiny_kermany, tmp_path,
                                                               monkeypatch):
    """The seed folders are named by rank; a trial whose rank moved (a resumed search
    re-scored it) had every seed retrained, its earlier ones dropped from the summary and
    its old seed-ensemble row left beside the new one (review 21)."""
    import autopneumo.trials
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    first, second = _real_records(runs, tiny_kermany)
    calls: list = []
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls))
    finalize(runs, top=2, seeds=3)
    assert len(calls) == 6
    _set(second, val={"objective": 1.5})  # trial 1 now ranks first
    calls.clear()
    summary = finalize(runs, top=2, seeds=2)
    assert calls == []
    assert summary["trial_id"].tolist() == ["1", "0"]
    assert summary["seeds"].tolist() == [3, 3] and summary["reused"].tolist() == [3, 3]
    ensembles = sorted(p.name for p in (runs / "_ensemble").iterdir())
    assert ensembles == ["rank1_base_cnn__none_trial1_seeds3",
                         "rank2_base_cnn__none_trial0_seeds3"]
    # the seeds lie where they were retrained, and the row's members point there
    record = json.loads((runs / "_ensemble" / ensembles[0] / "record.json").read_text())
    assert all("rank2_base_cnn__none_trial1" in m["trial_dir"] for m in record["members"])
    # a fourth seed goes under the trial's present rank, beside the three reused
    calls.clear()
    summary = finalize(runs, top=1, seeds=4)
    assert calls == [(str(second.parent), 3)]
    assert (runs / "_finalize" / "rank1_base_cnn__none_trial1" / "seed3" / "final.json").exists()
    assert summary.iloc[0]["seeds"] == 4 and summary.iloc[0]["reused"] == 3
    # a folder whose name merely ends alike (project x_base_cnn__none) is not this trial's
    alike = runs / "_finalize" / "rank1_x_base_cnn__none_trial1" / "seed4"
    shutil.copytree(runs / "_finalize" / "rank1_base_cnn__none_trial1" / "seed3", alike)
    final = json.loads((alike / "final.json").read_text())
    atomic_write_json(alike / "final.json", {**final, "seed": 4})
    assert finalize(runs, top=1, seeds=1).iloc[0]["seeds"] == 4
    shutil.move(alike.parent, runs / "_finalize" / "rank7_base_cnn__none_trial1")
    assert finalize(runs, top=1, seeds=1).iloc[0]["seeds"] == 5  # the trial's, under rank 7


def test_a_diverging_retraining_is_recorded_and_the_others_go_on(tiny_kermany, tmp_path,
                                                                 monkeypatch):
    """A seed whose loss turned NaN raised keras-tuner's FailedTrialError out of finalize: a
    traceback, no record, no summary, and the ranks after it never retrained (review 21)."""
    from click.testing import CliRunner

    import autopneumo.trials
    from autopneumo.cli import main

    runs = tmp_path / "runs"
    _real_records(runs, tiny_kermany)
    calls: list = []
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls, {1}))
    result = CliRunner().invoke(main, ["finalize", "--runs-dir", str(runs), "--top", "2",
                                       "--seeds", "2"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: 2 retraining(s) diverged: trial 0 seed 1 (")
    assert "loss became nan in epoch 1" in line and "summary.csv" in line
    assert len(calls) == 4  # both ranks, both seeds
    summary = pd.read_csv(runs / "_finalize" / "summary.csv")
    assert summary["seeds"].tolist() == [1, 1]
    failed = json.loads((runs / "_finalize" / "rank1_base_cnn__none_trial0" / "seed1" /
                         "final.json").read_text())
    assert failed["status"] == "failed" and failed["seed"] == 1
    assert failed["message"] == "loss became nan in epoch 1"
    # a rerun tries the failed seed again and reuses the finished ones
    calls.clear()
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls))
    summary = autopneumo.finalize(runs, top=2, seeds=2)
    assert sorted(calls) == [(c, 1) for c in sorted(c for c, _ in calls)]
    assert summary["seeds"].tolist() == [2, 2] and summary["reused"].tolist() == [1, 1]


def test_a_diverging_reference_model_is_recorded_and_the_others_go_on(tiny_kermany, tmp_path,
                                                                      monkeypatch):
    import autopneumo.trials
    from autopneumo.baseline import classroom
    from autopneumo.errors import SearchError

    def fake(family, policy, values, dataset, evaluator, trial_dir, trial_id, *args):
        import keras_tuner as kt

        if trial_id == "cnn_flip":
            raise kt.errors.FailedTrialError("loss became nan in epoch 3")
        record = {"status": "completed", "trial_id": trial_id}
        atomic_write_json(Path(trial_dir) / "record.json", record)
        return record

    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", fake)
    with pytest.raises(SearchError, match=r"1 reference model\(s\) diverged: .*trial_cnn_flip: "
                                          r"loss became nan in epoch 3") as info:
        classroom(tiny_kermany, tmp_path / "runs", image_size=32)
    assert [r["trial_id"] for r in info.value.records] == ["cnn", "resnet18"]
    failed = json.loads((tmp_path / "runs" / "classroom__reference" / "trial_cnn_flip" /
                         "record.json").read_text())
    assert failed["status"] == "failed" and failed["reference"] is True


@pytest.mark.parametrize("key, value, says", [
    ("recall_target", "abc", "recall_target must be a number in (0, 1), got 'abc'"),
    ("recall_target", 2, "recall_target must be a number in (0, 1), got 2"),
    ("train.batch_size", "x", "hyperparameters.train.batch_size: 'x' is not accepted; it must "
                              "be a positive integer"),
    ("train.learning_rate", -1, "hyperparameters.train.learning_rate: -1 is not accepted"),
    ("model.bogus", 3, "hyperparameters.model.bogus: not one that base_cnn + none"),
    ("train.learning_rate", None, "hyperparameters.train.learning_rate: None is not accepted"),
    ("model.conv_dropout", 1.5, "hyperparameters.model.conv_dropout: 1.5 is not accepted; it "
                                "must be a number in [0, 1)"),
])
def test_finalize_checks_every_record_before_it_retrains(tiny_kermany, tmp_path, monkeypatch,
                                                         key, value, says):
    """A record's recall target or hyperparameter it cannot train with was met after the
    retraining (the seed lost to a traceback) or deep inside Keras (review 21)."""
    from click.testing import CliRunner

    import autopneumo.trials
    from autopneumo.cli import main

    runs = tmp_path / "runs"
    first, second = _real_records(runs, tiny_kermany)
    record = json.loads(second.read_text())
    if key == "recall_target":
        record[key] = value
    else:
        record["hyperparameters"][key] = value
    atomic_write_json(second, record)  # the second rank's: nothing may train for the first
    calls: list = []
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls))
    result = CliRunner().invoke(main, ["finalize", "--runs-dir", str(runs), "--top", "2",
                                       "--seeds", "1"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {second}: {says}")
    assert calls == [] and not (runs / "_finalize" / "summary.csv").exists()


@pytest.mark.parametrize("damage", ["test_not_a_mapping", "val_not_a_mapping", "too_deep"])
def test_a_damaged_earlier_seed_is_retrained_not_a_traceback(tiny_kermany, tmp_path,
                                                             monkeypatch, damage):
    import autopneumo.trials
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    _real_records(runs, tiny_kermany)
    calls: list = []
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls))
    finalize(runs, top=1, seeds=1)
    final = runs / "_finalize" / "rank1_base_cnn__none_trial0" / "seed0" / "final.json"
    if damage == "too_deep":
        final.write_text("[" * 100000 + "]" * 100000)
    else:
        record = json.loads(final.read_text())
        record[damage.split("_")[0]] = "x"
        final.write_text(json.dumps(record))
    calls.clear()
    summary = finalize(runs, top=1, seeds=1)
    assert len(calls) == 1 and summary.iloc[0]["reused"] == 0
    assert json.loads(final.read_text())["test"]["precision"] == 0.5


SPACE = [
    {"class_name": "Float", "config": {"name": "model.conv_dropout", "min_value": 0.0,
                                       "max_value": 0.4000001, "step": 0.1}},
    {"class_name": "Choice", "config": {"name": "model.dense_units",
                                        "values": ["512-128-64", "256-64", "128"]}},
    {"class_name": "Int", "config": {"name": "train.batch_size", "min_value": 16,
                                     "max_value": 64}},
    {"class_name": "Boolean", "config": {"name": "train.standardize"}},
]


@pytest.mark.parametrize("key, value, says", [
    ("model.conv_dropout", 0.5, "0.5 is not one its search's space could draw (0.0 to "
                                "0.4000001)"),
    ("model.dense_units", "64", "'64' is not one its search's space could draw (one of"),
    ("train.batch_size", 8, "8 is not one its search's space could draw (16 to 64)"),
    ("train.standardize", 1, "1 is not accepted; it must be true or false"),
])
def test_finalize_checks_values_against_the_searched_space(tiny_kermany, tmp_path,
                                                           monkeypatch, key, value, says):
    """The builder's annotations say only a type: a value the search's space could never
    draw passed (diff review 21); the space is the project's oracle.json."""
    import autopneumo.trials
    from autopneumo.errors import RunsError
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    _, second = _real_records(runs, tiny_kermany)
    atomic_write_json(runs / "base_cnn__none" / "oracle.json",
                      {"hyperparameters": {"space": SPACE, "values": {}}})
    calls: list = []
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls))
    assert len(finalize(runs, top=2, seeds=1)) == 2  # the recorded values are drawable
    record = json.loads(second.read_text())
    record["hyperparameters"][key] = value
    atomic_write_json(second, record)
    calls.clear()
    with pytest.raises(RunsError, match=f"{second}: hyperparameters.{key}: ") as info:
        finalize(runs, top=2, seeds=2)
    assert says in str(info.value) and calls == []


def test_finalize_retrains_a_value_its_search_drew_before_the_builder_stated_its_range(
        tiny_kermany, tmp_path, monkeypatch):
    """Review 22: base_cnn states depth 0 to 4 since session 22, and finalize refused a
    completed trial an earlier search had drawn depth 5 for (it built depth 4): that one
    record stopped every rank's retraining. A value its search's space drew (oracle.json)
    is retrained as the search trained it; without the space the rule still holds."""
    import autopneumo.trials
    from autopneumo.errors import RunsError
    from autopneumo.finalize import finalize

    runs = tmp_path / "runs"
    first, second = _real_records(runs, tiny_kermany)
    for path, depth in ((first, 4), (second, 5)):
        _set(path, hyperparameters={"model.depth": depth})
    calls: list = []
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls))
    with pytest.raises(RunsError, match=re.escape(
            f"{second}: hyperparameters.model.depth: 5 is not accepted; it must be an "
            "integer from 0 to 4")):
        finalize(runs, top=2, seeds=1)
    assert calls == []
    depth = {"class_name": "Choice", "config": {"name": "model.depth", "values": [4, 5]}}
    atomic_write_json(runs / "base_cnn__none" / "oracle.json",
                      {"hyperparameters": {"space": [*SPACE, depth], "values": {}}})
    assert len(finalize(runs, top=2, seeds=1)) == 2 and len(calls) == 2
    record = json.loads(second.read_text())
    record["hyperparameters"]["model.depth"] = 6  # not one its search could draw
    atomic_write_json(second, record)
    with pytest.raises(RunsError, match=re.escape(
            f"{second}: hyperparameters.model.depth: 6 is not accepted")):
        finalize(runs, top=2, seeds=1)


@pytest.mark.parametrize("key, value", [("model.conv_dropout", 1.5),
                                        ("model.dense_units", "x")])
def test_finalize_refuses_a_record_whose_model_does_not_build_before_training(
        tiny_kermany, tmp_path, monkeypatch, key, value):
    """No oracle.json to check against: the model is built (not trained) first, so a value
    its builder refuses stops finalize before any rank trains (diff review 21). (base_cnn
    states its ranges since session 22: here it is a builder that states none, a plugin's.)"""
    import autopneumo.spaces
    import autopneumo.trials
    from autopneumo.errors import RunsError
    from autopneumo.finalize import finalize

    monkeypatch.setattr(autopneumo.spaces, "literal_choices", lambda builder: {})

    runs = tmp_path / "runs"
    _, second = _real_records(runs, tiny_kermany)
    record = json.loads(second.read_text())
    record["hyperparameters"] |= {key: value, "model.depth": 4}
    atomic_write_json(second, record)
    calls: list = []
    monkeypatch.setattr(autopneumo.trials, "_train_and_evaluate", _stand_in(calls))
    with pytest.raises(RunsError, match=f"{second}: its hyperparameters do not build a model "
                                        r"\(ValueError: "):
        finalize(runs, top=2, seeds=1)
    assert calls == []
