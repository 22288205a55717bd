"""A real (tiny) keras-tuner search end to end: records, threshold, test metrics, resume."""

from __future__ import annotations

import gc
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from autopneumo.backend import custom_gradient_names
from autopneumo.errors import AutopneumoNote, OptionError, RunsError
from autopneumo.objective import precision_at_recall
from autopneumo.tuning import SearchConfig, search
from tests.tiny_spaces import small_cnn

SMALL_CNN = small_cnn()


@pytest.fixture(scope="module")
def searched(tiny_kermany, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    space = runs.parent / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    config = SearchConfig("base_cnn", "flip", data=tiny_kermany, tuner="random", max_trials=2,
                          epochs=2, image_size=32, runs_dir=runs, spaces=[space], seed=1)
    records = search(config)
    return config, records


def test_search_writes_one_record_per_trial(searched):
    config, records = searched
    assert len(records) == 2
    assert {r["status"] for r in records} == {"completed"}
    for r in records:
        trial_dir = Path(r["_path"]).parent
        assert (trial_dir / "model.keras").is_file()
        assert (trial_dir / "predictions.csv").is_file()
        assert r["family"] == "base_cnn" and r["policy"] == "flip"
        assert 1 <= r["epochs_run"] <= 2
        assert r["hyperparameters"]["model.depth"] == 2
        assert r["data"]["image_size"] == 32
        assert r["environment"]["tensorflow"]


def test_threshold_and_test_metrics_recompute_from_predictions(searched):
    _, records = searched
    for r in records:
        preds = pd.read_csv(Path(r["_path"]).parent / "predictions.csv")
        val, test = preds[preds.split == "val"], preds[preds.split == "test"]
        point = precision_at_recall(val.label, val.probability, r["recall_target"])
        assert point.threshold == pytest.approx(r["threshold"], abs=1e-6)
        assert point.precision == pytest.approx(r["val"]["prec_at_recall"], abs=1e-9)
        assert point.recall >= r["recall_target"]
        # the evaluated weights are the best epoch's (not the last epoch's)
        assert r["val"]["objective"] == pytest.approx(max(r["history"]["val_objective"]),
                                                      abs=1e-9)
        assert r["best_epoch"] == 1 + r["history"]["val_objective"].index(
            max(r["history"]["val_objective"]))
        pred = (test.probability >= r["threshold"]).astype(int)
        t = r["test"]
        assert t["accuracy"] == pytest.approx(accuracy_score(test.label, pred))
        assert t["precision"] == pytest.approx(precision_score(test.label, pred, zero_division=0))
        assert t["recall"] == pytest.approx(recall_score(test.label, pred))
        assert t["auc"] == pytest.approx(roc_auc_score(test.label, test.probability))
        assert t["n"] == len(test) == 16  # 4 test patients x 2 images x 2 classes


def test_saved_model_reproduces_val_and_test_predictions(searched, tiny_kermany):
    import keras

    from autopneumo.data import load_dataset

    _, records = searched
    r = records[0]
    trial_dir = Path(r["_path"]).parent
    model = keras.saving.load_model(trial_dir / "model.keras", safe_mode=True)
    ds = load_dataset(tiny_kermany, image_size=32, seed=1)
    preds = pd.read_csv(trial_dir / "predictions.csv")
    test = preds[preds.split == "test"]
    np.testing.assert_array_equal(test.file.to_numpy(), ds.test.files)
    np.testing.assert_allclose(model.predict(ds.test.x, verbose=0).ravel(),
                               test.probability.to_numpy(), rtol=1e-5, atol=1e-6)
    # validation scores are the best epoch's, kept from training: the saved weights agree
    val = preds[preds.split == "val"]
    np.testing.assert_array_equal(val.file.to_numpy(), ds.val.files)
    np.testing.assert_allclose(model.predict(ds.val.x, verbose=0).ravel(),
                               val.probability.to_numpy(), rtol=1e-5, atol=1e-6)
    # the test intervals resample patients (the tiny set has 2 images a patient)
    from autopneumo.objective import bootstrap_intervals

    assert r["test_ci_resampled"] == "patients"
    assert len(np.unique(ds.test.patients)) < len(ds.test.patients)
    expected = bootstrap_intervals(test.label, test.probability, r["threshold"],
                                   groups=ds.test.patients, target=r["recall_target"])
    assert {"loss", "prec_at_recall"} <= set(expected)
    assert r["test_ci"] == {k: pytest.approx(list(v), nan_ok=True) for k, v in expected.items()}


def test_the_trials_model_file_is_its_only_checkpoint(searched, tmp_path):
    """keras-tuner's SaveBestEpoch wrote the weights at every improving epoch. The trial's
    model.keras, written once by its evaluation and holding the best epoch (the test
    above), is the file Hyperband continues from and ``load_model`` reads; a project
    written before keeps its keras-tuner checkpoint."""
    from types import SimpleNamespace

    from autopneumo.tuning import _tuner_class

    _, records = searched
    for r in records:
        assert not list(Path(r["_path"]).parent.glob("checkpoint*"))
    tuner = SimpleNamespace(get_trial_dir=lambda trial_id: str(tmp_path / f"trial_{trial_id}"))
    checkpoint = _tuner_class("random")._get_checkpoint_fname
    (tmp_path / "trial_1").mkdir()
    assert checkpoint(tuner, "1") == str(tmp_path / "trial_1" / "model.keras")
    (tmp_path / "trial_1" / "checkpoint.weights.h5").touch()  # an older project's trial
    assert checkpoint(tuner, "1") == str(tmp_path / "trial_1" / "checkpoint.weights.h5")
    (tmp_path / "trial_1" / "model.keras").touch()
    assert checkpoint(tuner, "1") == str(tmp_path / "trial_1" / "model.keras")


def test_validation_never_contains_test_or_train_patients(searched):
    _, records = searched
    preds = pd.read_csv(Path(records[0]["_path"]).parent / "predictions.csv")
    val_files = set(preds[preds.split == "val"].file)
    assert not any(f.startswith("test/") for f in val_files)
    assert all(f.startswith("test/") for f in preds[preds.split == "test"].file)


def test_rerun_resumes_without_retraining(searched):
    config, records = searched
    before = {r["_path"]: Path(r["_path"]).stat().st_mtime_ns for r in records}
    again = search(config)
    assert len(again) == 2
    assert {r["_path"]: Path(r["_path"]).stat().st_mtime_ns for r in again} == before


def test_resume_names_an_unreadable_keras_tuner_file(searched, tmp_path):
    import shutil

    config, _ = searched
    copy = tmp_path / "runs"
    shutil.copytree(config.runs_dir, copy)
    broken = sorted((copy / config.project).glob("trial_*/trial.json"))[0]
    broken.write_text(broken.read_text()[:40])
    with pytest.raises(RunsError, match=f"^{re.escape(str(broken))}: keras-tuner's state is "
                                        "unreadable"):
        search(SearchConfig(**{**config.__dict__, "runs_dir": copy, "max_trials": 3}))
    assert len(list(copy.rglob("record.json"))) == 2  # nothing lost


DEEP = "[" * 100000 + "]" * 100000  # valid JSON, nested past the recursion limit


@pytest.mark.parametrize(("name", "text", "why"), [
    ("autopneumo_project.json", "[]", "unreadable project file (not a JSON object)"),
    ("autopneumo_project.json", DEEP, "unreadable project file (maximum recursion"),
    ("oracle.json", "[]", "keras-tuner's state is unreadable (not a JSON object)"),
    ("oracle.json", '{"start_order": 3}', "keras-tuner's state is unreadable (its "
                                          "'start_order' is not a list)"),
    ("oracle.json", DEEP, "keras-tuner's state is unreadable (RecursionError: maximum"),
    ("oracle.json", '{"start_order": ["0", "1"]}', "keras-tuner's state is unreadable (its "
                                                   "'ongoing_trials' is not a dict)"),
    ("tuner0.json", "[]", "keras-tuner's state is unreadable (not a JSON object)"),
    ("trial_0/trial.json", '{"a": 1}', "keras-tuner's state is unreadable (not a trial's "
                                       "state (KeyError: 'trial_id')"),
])
def test_resume_names_keras_tuner_state_of_the_wrong_shape(searched, tmp_path, name, text,
                                                            why):
    """Valid JSON of another shape was a traceback: AttributeError in _pin_project, a
    TypeError or KeyError inside keras-tuner's reload, or a RecursionError (review 21). It
    is now the line a truncated file gets, naming the file, and nothing is touched."""
    import shutil

    config, _ = searched
    copy = tmp_path / "runs"
    shutil.copytree(config.runs_dir, copy)
    (copy / config.project / name).write_text(text)
    files = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with pytest.raises(RunsError, match=f"^{re.escape(str(copy / config.project / name))}: "
                                        f"{re.escape(why)}"):
        search(SearchConfig(**{**config.__dict__, "runs_dir": copy, "max_trials": 3}))
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == files


def test_resume_re_evaluates_a_trial_whose_record_was_damaged(searched, tmp_path):
    import shutil

    config, records = searched
    copy = tmp_path / "runs"
    shutil.copytree(config.runs_dir, copy)
    first = sorted((copy / config.project).glob("trial_*/record.json"))[0]
    before = json.loads(first.read_text())
    first.write_text(first.read_text()[:50])  # truncated
    import autopneumo

    assert len(autopneumo.leaderboard(copy).attrs["skipped"]) == 1
    again = search(SearchConfig(**{**config.__dict__, "runs_dir": copy}))
    assert len(again) == 2 and not autopneumo.leaderboard(copy).attrs["skipped"]
    after = json.loads(first.read_text())
    assert after["status"] == "completed"
    assert after["test"]["auc"] == pytest.approx(before["test"]["auc"], abs=1e-6)
    assert after["threshold"] == pytest.approx(before["threshold"], abs=1e-6)


def test_resume_with_other_settings_is_refused(searched):
    config, _ = searched
    other = SearchConfig(**{**config.__dict__, "image_size": 40})
    with pytest.raises(RunsError, match=r"\(image_size\); use the same options or another "
                                        r"--runs-dir$"):
        search(other)
    # a changed hyperparameter is named: --epochs fixes the training space's epochs; a
    # changed space, built-in ones too, is resumed with the file the project began with
    other = SearchConfig(**{**config.__dict__, "epochs": 3})
    with pytest.raises(RunsError, match=r"other settings \(spaces: training\.epochs\); use the "
                       r"same options or another --runs-dir \(or give the space file it began "
                       r"with: --space FILE, or for a study AUTOPNEUMO_SPACES=FOLDER; see the "
                       r"README's Search spaces\)$"):
        search(other)


def test_a_start_that_failed_before_its_first_trial_does_not_pin_the_project(
        tiny_kermany, tmp_path, monkeypatch):
    """A first start that fails after writing the project file (a bad --weights, a space
    that crashes the first build) must not make the corrected command refuse to start."""
    import autopneumo.tuning as tuning

    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    config = SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random", max_trials=1,
                          epochs=1, image_size=32, runs_dir=tmp_path / "runs", spaces=[space])

    def crash(*args, **kwargs):
        raise RunsError("the first start failed")

    with monkeypatch.context() as patch:
        patch.setattr(tuning, "_run_tuner", crash)
        with pytest.raises(RunsError, match="the first start failed"):
            search(SearchConfig(**{**config.__dict__, "epochs": 2}))
    assert (tmp_path / "runs" / config.project / "autopneumo_project.json").is_file()
    [record] = search(config)  # other settings, and nothing to keep: it starts
    assert record["status"] == "completed"
    settings = json.loads((tmp_path / "runs" / config.project / "autopneumo_project.json")
                          .read_text())
    assert settings["spaces"]["training"]["hyperparameters"]["epochs"]["value"] == 1


def test_project_file_pins_the_settings(searched):
    config, _ = searched
    settings = json.loads((Path(config.runs_dir) / config.project / "autopneumo_project.json")
                          .read_text())
    assert settings["image_size"] == 32 and settings["recall_target"] == 0.95
    assert settings["spaces"]["family"]["hyperparameters"]["depth"] == {"type": "fixed", "value": 2}


def test_a_card_of_other_data_in_the_kermany_layout_does_not_claim_the_kermany_set(
        searched, tmp_path):
    """Any folder in the Kermany layout (a hospital's export arranged that way, here the
    tiny test images) is recorded as source kermany, and every card said the model was
    trained on Kermany et al.'s paediatric images from Guangzhou (review 22): only the
    official test split (234 normal, 390 pneumonia images) makes it the Kermany set."""
    from autopneumo.inference import KERMANY_LIMITS, OTHER_LIMITS, export

    config, _ = searched
    [folder] = export(config.runs_dir, tmp_path / "winner", top=1)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["data"]["source"] == "kermany" and card["data_counts"]["test"]["NORMAL"] == 8
    assert card["limitations"] == OTHER_LIMITS != KERMANY_LIMITS


def test_export_and_predict_reproduce_the_test_predictions(searched, tiny_kermany, tmp_path):
    from click.testing import CliRunner

    import autopneumo
    from autopneumo.cli import main
    from autopneumo.inference import export, predict

    config, _ = searched
    best = autopneumo.leaderboard(config.runs_dir).iloc[0]
    [folder] = export(config.runs_dir, tmp_path / "winner", top=1)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["trial_id"] == best["trial_id"] and card["image_size"] == 32
    assert card["threshold"] == pytest.approx(best["threshold"])
    assert card["threshold_chosen_on"] == "validation split"
    assert card["test"]["precision"] == pytest.approx(best["test_precision"])
    frame = predict(folder, [tiny_kermany / "test"])
    preds = pd.read_csv(Path(best["trial_dir"]) / "predictions.csv")
    expected = preds[preds.split == "test"].set_index("file")["probability"]
    got = frame.assign(file=[str(Path(f).relative_to(tiny_kermany)) for f in frame.file])
    got = got.set_index("file")["probability"]
    assert len(got) == 16
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=1e-5, atol=1e-6)
    labels = frame["label"] == "PNEUMONIA"
    assert (labels == (frame["probability"] >= card["threshold"])).all()
    result = CliRunner().invoke(main, ["predict", "--model", str(folder), "--csv",
                                       str(tiny_kermany / "test" / "NORMAL")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "file,probability,label,error,warning,threshold"
    assert len(result.stdout.splitlines()) == 9
    # another trial's model copied over the exported one: the card describes another model
    other = Path(autopneumo.leaderboard(config.runs_dir).iloc[1]["trial_dir"]) / "model.keras"
    import shutil

    shutil.copyfile(other, folder / "model.keras")
    swapped = CliRunner().invoke(main, ["predict", "--model", str(folder),
                                        str(tiny_kermany / "test" / "NORMAL")])
    assert swapped.exit_code == 2, swapped.output
    assert "model.keras is not the model" in swapped.output
    assert "model_card.json describes (its sha256 differs" in swapped.output
    assert len(swapped.output.strip().splitlines()) == 1


def test_predict_table_shows_unreadable_images_as_errors(searched, tiny_kermany, tmp_path):
    """The terminal table (not only --csv) lists an unreadable file as an error row,
    also when it is the only input (then the command fails: nothing could be read); a
    threshold outside [0, 1] is refused."""
    from click.testing import CliRunner

    import autopneumo
    from autopneumo.cli import main

    config, _ = searched
    trial = Path(autopneumo.leaderboard(config.runs_dir).iloc[0]["trial_dir"])
    bad = tmp_path / "broken.jpeg"
    bad.write_bytes(b"not a jpeg")
    good = next((tiny_kermany / "test" / "NORMAL").iterdir())
    for inputs in ([bad], [good, bad]):
        result = CliRunner().invoke(main, ["predict", "--model", str(trial),
                                           *map(str, inputs)], env={"COLUMNS": "400"})
        assert result.exit_code == (0 if len(inputs) == 2 else 2), result.output
        assert "error:" in result.output and "broken.jpeg" in result.output
        assert ("NORMAL" in result.output or "PNEUMONIA" in result.output) == (len(inputs) == 2)
    result = CliRunner().invoke(main, ["predict", "--model", str(trial), "--threshold", "2",
                                       str(good)])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: --threshold must be in [0, 1], got 2.0"


def test_predict_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from autopneumo.cli import main

    result = CliRunner().invoke(main, ["predict", "--model", str(tmp_path / "no"), "x.png"])
    assert result.exit_code == 2 and result.output.startswith("Error: --model")


def test_batch_level_policy_trains_through_the_search(tiny_kermany, tmp_path):
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    config = SearchConfig("base_cnn", "mixup", data=tiny_kermany, tuner="random", max_trials=1,
                          epochs=2, image_size=32, runs_dir=tmp_path / "runs", spaces=[space])
    [record] = search(config)
    assert record["status"] == "completed", record.get("traceback")
    assert "augment.alpha" in record["hyperparameters"]
    assert record["epochs_run"] >= 1


def test_grid_tuner_runs_a_discrete_space_and_refuses_a_continuous_one(tiny_kermany, tmp_path):
    from autopneumo.errors import OptionError

    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    training = tmp_path / "training.yaml"
    training.write_text("kind: training\nname: training\nhyperparameters:\n"
                        "  learning_rate: {type: choice, values: [0.001, 0.003]}\n"
                        "  batch_size: {type: fixed, value: 16}\n"
                        "  balance: {type: choice, values: [class_weights, oversample]}\n"
                        "  epochs: {type: fixed, value: 1}\n  patience: {type: fixed, value: 1}\n")
    config = SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="grid", max_trials=2,
                          image_size=32, runs_dir=tmp_path / "runs", spaces=[space, training])
    records = search(config)
    assert len(records) == 2 and {r["status"] for r in records} == {"completed"}
    combos = {(r["hyperparameters"]["train.learning_rate"], r["hyperparameters"]["model.width"],
               r["hyperparameters"]["train.balance"]) for r in records}
    assert len(combos) == 2  # a grid never repeats a point
    with pytest.raises(OptionError, match="learning_rate is a continuous float"):
        search(SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="grid",
                            image_size=32, runs_dir=tmp_path / "runs2", spaces=[space]))


class _RssProbe:
    """A progress object (the search calls it per trial) that reads this process's RSS."""

    def __init__(self):
        self.rss = []
        self.frozen = []

    def search_begin(self, config, done, deadline=None):
        pass

    def trial_begin(self, trial):
        pass

    def trial_end(self, record):
        with open("/proc/self/status") as fh:
            self.rss.append(next(int(ln.split()[1]) for ln in fh if ln.startswith("VmRSS")))
        self.frozen.append(gc.get_freeze_count())

    def epoch_callback(self):
        import keras

        return keras.callbacks.Callback()


@pytest.mark.slow
def test_memory_does_not_grow_across_ten_trials(tiny_kermany, tmp_path):
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    probe = _RssProbe()
    gradients_before, graphs_before = custom_gradient_names(), _live_func_graphs()
    search(SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random", max_trials=10,
                        epochs=1, image_size=32, runs_dir=tmp_path / "runs", spaces=[space]),
           progress=probe)
    assert len(probe.rss) == 10
    # generous: graphs and models of finished trials must be freed, not kept
    assert probe.rss[-1] <= probe.rss[2] * 1.25, probe.rss
    # the collections between trials skip what the search started with, and only then
    assert min(probe.frozen) > 100_000 and gc.get_freeze_count() == 0
    # exact: no traced graph of a finished trial stays alive (TensorFlow's global registry
    # of custom gradients kept ~50 per trial before autopneumo released them)
    assert custom_gradient_names() == gradients_before
    assert _live_func_graphs() <= graphs_before


def _live_func_graphs() -> int:
    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


def _tiny_hyperband(tiny_kermany, tmp_path) -> list[dict]:
    """Four hyperband trials at 32 px, 3 epochs at most: some of them continued."""
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    return search(SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="hyperband",
                               max_trials=4, epochs=3, image_size=32, runs_dir=tmp_path / "runs",
                               spaces=[space], seed=2))


@pytest.mark.slow
def test_hyperband_continues_a_trial_from_its_parents_checkpoint(tiny_kermany, tmp_path,
                                                                monkeypatch):
    """Hyperband trains the best of a round further, starting from the parent trial's
    checkpoint: its model.keras, which must exist by the time the oracle hands out the
    continuation."""
    import keras

    loaded = []
    load_weights = keras.Model.load_weights

    def spy(model, filepath, *args, **kwargs):
        loaded.append(str(filepath))
        return load_weights(model, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "load_weights", spy)
    records = _tiny_hyperband(tiny_kermany, tmp_path)
    assert len(records) == 4
    assert {r["status"] for r in records} == {"completed"}
    by_id = {r["trial_id"]: r for r in records}
    continued = [r for r in records if r["hyperparameters"].get("tuner/trial_id")]
    assert continued, [r["hyperparameters"] for r in records]
    for r in continued:
        parent = by_id[r["hyperparameters"]["tuner/trial_id"]]
        assert str(Path(parent["_path"]).parent / "model.keras") in loaded
        assert r["hyperparameters"]["tuner/initial_epoch"] >= 1
        # it started from the epochs its parent's kept weights had trained
        assert r["start_epoch"] == parent["epochs_trained"] == parent["best_epoch"] >= 1
        assert r["epochs_trained"] == r["start_epoch"] + r["best_epoch"]
    assert all(r["start_epoch"] == 0 for r in records if r not in continued)


def test_a_hyperband_continuation_trains_the_epochs_its_parent_missed(tmp_path):
    """Hyperband numbers a continuation from its parent's rung. A parent cut by the time
    budget after 4 of its 9 epochs (or whose best epoch was the 4th) holds weights trained
    4 epochs: the continuation to rung 27 starts at epoch 4, not 9, and its record says
    so. Where the parent's record is missing, keras-tuner's numbering stands."""
    import keras_tuner as kt

    from autopneumo.tuning import _tuner_class

    fits = []

    class Stub(kt.HyperModel):
        def build(self, hp):
            return None

        def fit(self, hp, model, *args, **kwargs):
            fits.append(kwargs["initial_epoch"])
            return {"val_objective": 0.5}

    tuner = _tuner_class("hyperband")(Stub(), objective=kt.Objective("val_objective", "max"),
                                      max_epochs=27, factor=3, directory=str(tmp_path),
                                      project_name="p", evaluator=None)
    from types import SimpleNamespace

    # no parent checkpoint to load here; keras-tuner saves the model's build config
    tuner._try_build = lambda hp: SimpleNamespace(get_build_config=lambda: {})
    cut = {"trial_id": "0001", "hyperparameters": {"tuner/initial_epoch": 3,
                                                   "tuner/epochs": 9},
           "start_epoch": 3, "epochs_run": 1, "best_epoch": 1, "kept_start": False,
           "history": {"stopped_at_deadline": [1.0]}}
    folder = tmp_path / "p" / "trial_0001"
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(cut))

    def continuation(trial_id, parent):
        hp = kt.HyperParameters()
        for name, value in (("tuner/trial_id", parent), ("tuner/initial_epoch", 9),
                            ("tuner/epochs", 27)):
            hp.Fixed(name, value)
        trial = kt.engine.trial.Trial(hp, trial_id=trial_id)
        tuner._build_and_fit_model(trial, epochs=27, initial_epoch=9, callbacks=[])
        return tuner._start_epoch.pop(trial_id)

    assert continuation("0002", "0001") == 4 and fits == [4]
    assert continuation("0003", "0009") == 9 and fits == [4, 9]  # no record: unchanged
    (folder / "record.json").write_text(json.dumps({**cut, "kept_start": True}))
    assert continuation("0004", "0001") == 3  # it kept the weights it started from


@pytest.mark.slow
def test_a_hyperband_continuation_that_only_gets_worse_keeps_its_parents_weights(
        tiny_kermany, tmp_path, monkeypatch):
    """Every epoch of a continued trial ends with a constant model (the output layer's
    kernel zeroed after each batch), never better than the parent's best epoch it starts
    from: the trial keeps those weights, its record says so (best_epoch 0) and keras-tuner
    scores it by them, not by its best new epoch."""
    import keras

    import autopneumo.hypermodel as hypermodel

    class ZeroHead(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            head = self.model.layers[-1]
            head.kernel.assign(keras.ops.zeros_like(head.kernel))

    real_train = hypermodel.train

    def train(*args, initial_epoch=0, callbacks=None, **kwargs):
        extra = [ZeroHead()] if initial_epoch > 0 else []
        return real_train(*args, initial_epoch=initial_epoch,
                          callbacks=list(callbacks or []) + extra, **kwargs)

    monkeypatch.setattr(hypermodel, "train", train)
    records = _tiny_hyperband(tiny_kermany, tmp_path)
    by_id = {r["trial_id"]: r for r in records}
    continued = [r for r in records if r["hyperparameters"].get("tuner/trial_id")]
    assert continued
    for r in continued:
        parent = by_id[r["hyperparameters"]["tuner/trial_id"]]
        assert r["kept_start"] is True and r["best_epoch"] == 0
        assert max(r["history"]["val_objective"]) <= parent["val"]["objective"]
        assert r["val"]["objective"] == pytest.approx(parent["val"]["objective"])
        assert r["test"]["auc"] == pytest.approx(parent["test"]["auc"])
        oracle_trial = json.loads((Path(r["trial_dir"]) / "trial.json").read_text())
        assert oracle_trial["score"] == pytest.approx(r["val"]["objective"])
    assert not any(r["kept_start"] for r in records if r not in continued)


def test_ctrl_c_during_a_trials_evaluation_marks_it_and_the_rerun_repeats_it(
        tiny_kermany, tmp_path, monkeypatch):
    from autopneumo.evaluation import RECORD_FILE, Evaluator

    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    config = SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random", max_trials=1,
                          epochs=1, image_size=32, runs_dir=tmp_path / "runs", spaces=[space])

    def ctrl_c(*args, **kwargs):  # the fit is done; the signal lands in the evaluation
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Evaluator, "evaluate", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            search(config)
    [path] = (tmp_path / "runs").rglob(RECORD_FILE)
    record = json.loads(path.read_text())
    assert record["status"] == "interrupted"
    assert "during its evaluation" in record["message"]
    [record] = search(config)  # the oracle still counts it as running: repeated, not lost
    assert record["status"] == "completed", record.get("traceback")
    assert Path(record["trial_dir"]) == path.parent


def test_a_metric_undefined_at_every_epoch_prints_no_numpy_warning():
    """A trial whose model calls no validation image positive at 0.5 logs val_precision NaN
    at each epoch; keras-tuner's best-value lookup must not print numpy's All-NaN warning
    into the search's output (seen in a study on the shared data)."""
    import warnings

    from keras_tuner.src.engine.metrics_tracking import MetricHistory

    import autopneumo

    history = MetricHistory(direction="max")
    history.update(float("nan"), step=0)
    history.update(float("nan"), step=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # as a plain Python run shows RuntimeWarnings
        autopneumo.quiet_expected_warnings()
        assert np.isnan(history.get_best_value())
    assert not [w for w in caught if "All-NaN" in str(w.message)], caught


def test_a_search_whose_every_trial_failed_exits_non_zero(tiny_kermany, tmp_path, monkeypatch):
    import keras_tuner as kt
    from click.testing import CliRunner

    import autopneumo.hypermodel as hypermodel
    from autopneumo.cli import main

    def diverge(*args, **kwargs):
        raise kt.errors.FailedTrialError("loss became nan in epoch 1")

    monkeypatch.setattr(hypermodel, "train", diverge)
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    result = CliRunner().invoke(main, [
        "search", "--family", "base_cnn", "--augment", "none", "--data", str(tiny_kermany),
        "--tuner", "random", "--max-trials", "1", "--epochs", "1", "--image-size", "32",
        "--runs-dir", str(tmp_path / "runs"), "--space", str(space)])
    assert result.exit_code == 1, result.output  # as a search stopped by failures
    assert f"base_cnn__none: 0 completed, 1 failed trials in {tmp_path / 'runs'}" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: base_cnn__none: no trial completed (the first failure: ")
    assert last.endswith("loss became nan in epoch 1)")
    [path] = (tmp_path / "runs").rglob("record.json")  # the failure is recorded
    assert json.loads(path.read_text())["status"] == "failed"


def test_a_library_search_with_no_completed_trial_raises_and_keeps_the_callers_random_state(
        tiny_kermany, tmp_path, monkeypatch):
    """The API review's B5 and B4: from Python, a 2-trial search whose trials all failed
    returned them quietly (the CLI's check was in the CLI, keras-tuner's stop needs 3 in
    a row), and a search left Python's and NumPy's generators seeded with its seed."""
    import random

    import keras_tuner as kt

    import autopneumo
    import autopneumo.hypermodel as hypermodel
    from autopneumo.errors import SearchError

    def diverge(*args, **kwargs):
        raise kt.errors.FailedTrialError("loss became nan in epoch 1")

    monkeypatch.setattr(hypermodel, "train", diverge)
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    config = autopneumo.SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random",
                                     max_trials=2, epochs=1, image_size=32,
                                     runs_dir=tmp_path / "runs", spaces=[space])
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    with pytest.raises(SearchError, match="^base_cnn__none: no trial completed .*nan") as info:
        autopneumo.search(config)
    assert [r["status"] for r in info.value.records] == ["failed", "failed"]
    assert (random.random(), np.random.rand()) == expected


def test_resume_refuses_a_weights_file_whose_contents_changed(tmp_path):
    from types import SimpleNamespace

    from autopneumo.tuning import _pin_project, resolve_spaces

    weights = tmp_path / "imagenet.weights.h5"
    weights.write_bytes(b"first weights")
    config = SearchConfig("base_cnn", "none", image_size=32, runs_dir=tmp_path / "runs")
    spaces = resolve_spaces(config)["spaces"]
    config.weights = weights  # pinned by contents; base_cnn's space is not consulted here
    dataset = SimpleNamespace(manifest={"data_hash": "h"})
    project_dir = tmp_path / "runs" / config.project
    project_dir.mkdir(parents=True)
    first = _pin_project(project_dir, config, dataset, spaces)
    assert first["weights_md5"] == hashlib.md5(b"first weights").hexdigest()
    (project_dir / "trial_0").mkdir()  # a trial ran
    _pin_project(project_dir, config, dataset, spaces)  # the same file: resumes
    weights.write_bytes(b"other weights")
    with pytest.raises(RunsError, match=r"other settings \(weights \(the file's contents\)\)"):
        _pin_project(project_dir, config, dataset, spaces)
    with pytest.raises(OptionError, match="is a folder, not a weights file"):
        resolve_spaces(SearchConfig("densenet121", "none", image_size=32, weights=tmp_path))


def test_resume_refuses_another_mixed_precision_setting(tmp_path):
    """Float16 compute changes what a trial trains: a project started with it in effect
    (on a GPU) does not resume without it, nor the other way round; a project file from
    before the setting was recorded resumes either way."""
    from types import SimpleNamespace

    from autopneumo.tuning import PROJECT_FILE, _pin_project, resolve_spaces

    config = SearchConfig("base_cnn", "none", image_size=32, runs_dir=tmp_path / "runs")
    spaces = resolve_spaces(config)["spaces"]
    dataset = SimpleNamespace(manifest={"data_hash": "h"})
    project_dir = tmp_path / "runs" / config.project
    project_dir.mkdir(parents=True)
    assert _pin_project(project_dir, config, dataset, spaces, True)["mixed_precision"] is True
    (project_dir / "trial_0").mkdir()  # a trial ran
    _pin_project(project_dir, config, dataset, spaces, True)  # the same: resumes
    with pytest.raises(RunsError, match=r"other settings \(--mixed-precision \(float16 on a "
                                        r"GPU: on when started\)\)"):
        _pin_project(project_dir, config, dataset, spaces, False)
    path = project_dir / PROJECT_FILE
    recorded = json.loads(path.read_text())
    recorded["mixed_precision"] = False
    path.write_text(json.dumps(recorded))
    with pytest.raises(RunsError, match=r"off when started"):
        _pin_project(project_dir, config, dataset, spaces, True)
    del recorded["mixed_precision"]  # an older project file
    path.write_text(json.dumps(recorded))
    _pin_project(project_dir, config, dataset, spaces, True)
    _pin_project(project_dir, config, dataset, spaces, False)


def test_resume_refuses_a_validation_split_that_now_holds_other_images(tmp_path):
    """The seed and fraction name a split only while the splitter draws the same way (a
    scikit-learn upgrade may not): the project pins the split's images (``split_hash``);
    a project file from before it resumes."""
    from types import SimpleNamespace

    from autopneumo.tuning import PROJECT_FILE, _pin_project, resolve_spaces

    config = SearchConfig("base_cnn", "none", image_size=32, runs_dir=tmp_path / "runs")
    spaces = resolve_spaces(config)["spaces"]
    project_dir = tmp_path / "runs" / config.project
    project_dir.mkdir(parents=True)
    pinned = _pin_project(project_dir, config,
                          SimpleNamespace(manifest={"data_hash": "h", "split_hash": "s1"}), spaces)
    assert pinned["split_hash"] == "s1"
    (project_dir / "trial_0").mkdir()  # a trial ran
    with pytest.raises(RunsError, match=r"other settings \(the validation split \(the same "
                                        r"--seed and --val-fraction now draw other images"):
        _pin_project(project_dir, config,
                     SimpleNamespace(manifest={"data_hash": "h", "split_hash": "s2"}), spaces)
    with pytest.raises(RunsError, match=r"other settings \(data_hash\); use"):  # one reason
        _pin_project(project_dir, config,
                     SimpleNamespace(manifest={"data_hash": "other", "split_hash": "s2"}), spaces)
    recorded = json.loads((project_dir / PROJECT_FILE).read_text())
    del recorded["split_hash"]  # an older project file
    (project_dir / PROJECT_FILE).write_text(json.dumps(recorded))
    _pin_project(project_dir, config,
                 SimpleNamespace(manifest={"data_hash": "h", "split_hash": "s2"}), spaces)


def test_records_name_their_validation_images_and_a_retraining_checks_them(tiny_kermany,
                                                                          tmp_path):
    from autopneumo.data import load_dataset
    from autopneumo.data.dataset import recorded_dataset, split_hash
    from autopneumo.errors import DataError

    dataset = load_dataset(tiny_kermany, image_size=32, channels=1, seed=0)
    assert dataset.manifest["split_hash"] == split_hash(dataset.val.files)
    assert split_hash(dataset.val.files[::-1]) == dataset.manifest["split_hash"]  # a set
    other = load_dataset(tiny_kermany, image_size=32, channels=1, seed=1)
    assert set(other.val.files) != set(dataset.val.files)
    assert other.manifest["split_hash"] != dataset.manifest["split_hash"]
    record = {"data": {k: dataset.manifest[k] for k in (
        "path", "data_hash", "image_size", "channels", "val_fraction", "split_seed",
        "split_hash")}}
    assert recorded_dataset(load_dataset, record, tmp_path / "p" / "trial_0").manifest[
        "split_hash"] == dataset.manifest["split_hash"]
    record["data"]["split_hash"] = other.manifest["split_hash"]  # drawn another way back then
    with pytest.raises(DataError, match=r"trial_0: its validation split \(seed 0, fraction "
                                        r"0.2\) now holds other images"):
        recorded_dataset(load_dataset, record, tmp_path / "p" / "trial_0")


def test_the_time_budget_counts_from_the_start_including_the_data_load(
        tiny_kermany, tmp_path, monkeypatch):
    """A study charges a pair everything from the call on; so does the search's own
    deadline. A data load that uses up the budget leaves one trial of one epoch (the
    running trial always finishes its epoch), not a full budget after the load."""
    import time

    import autopneumo.data

    real = autopneumo.data.load_dataset

    def slow(*args, **kwargs):
        time.sleep(6)
        return real(*args, **kwargs)

    monkeypatch.setattr(autopneumo.data, "load_dataset", slow)
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    records = search(SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random",
                                  max_trials=3, epochs=3, image_size=32, time_budget=6.0,
                                  runs_dir=tmp_path / "runs", spaces=[space]))
    assert len(records) == 1
    assert records[0]["epochs_run"] == 1 and records[0]["history"]["stopped_at_deadline"]


def _replace_same_size(path: Path) -> None:
    """Other bytes of the same size, with a later modification time (as a copy gets)."""
    import os

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    before = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))


def test_resume_refuses_other_image_bytes_and_accepts_a_legacy_list_hash(tmp_path):
    """The pinned data hash covers the files' bytes; a project pinned before that (with
    the file-list hash) still resumes on the same files, and its new trials record the
    pinned value."""
    from autopneumo.data import load_dataset
    from autopneumo.data.kermany import scan_kermany
    from autopneumo.tuning import PROJECT_FILE, _pin_project, resolve_spaces
    from tests.conftest import make_kermany

    data = make_kermany(tmp_path / "data", patients={"train": 3, "val": 1, "test": 2})
    config = SearchConfig("base_cnn", "none", image_size=32, runs_dir=tmp_path / "runs")
    spaces = resolve_spaces(config)["spaces"]
    project_dir = tmp_path / "runs" / config.project
    project_dir.mkdir(parents=True)

    def pin():
        dataset = load_dataset(data, image_size=32, cache_folder=tmp_path / "cache")
        return dataset.manifest, _pin_project(project_dir, config, dataset, spaces)

    manifest, first = pin()
    assert first["data_hash"] == manifest["data_hash"]
    (project_dir / "trial_0").mkdir()  # a trial ran
    pin()  # the same data: resumes
    _replace_same_size(next((data / "train" / "NORMAL").glob("*.jpeg")))
    refused = (rf"^{re.escape(str(project_dir))}: this project was started with other settings "
               r"\(data_hash\); use the same options or another --runs-dir$")
    with pytest.raises(RunsError, match=refused):
        pin()
    assert manifest["data_hash"] != manifest["data_list_hash"]

    # a project pinned by an older autopneumo: its data hash is the file-list hash
    settings = json.loads((project_dir / PROJECT_FILE).read_text())
    legacy = scan_kermany(data).digest()
    (project_dir / PROJECT_FILE).write_text(json.dumps({**settings, "data_hash": legacy}))
    manifest, pinned = pin()
    assert pinned["data_hash"] == legacy
    assert manifest["data_hash"] == legacy  # what its new trials record
    (data / "test" / "NORMAL" / "IM-0999-0001.jpeg").write_bytes(
        (next((data / "test" / "NORMAL").glob("*.jpeg"))).read_bytes())  # one file more
    with pytest.raises(RunsError, match=refused):
        pin()


@pytest.mark.slow
def test_a_resumed_legacy_project_records_its_pinned_data_hash(tmp_path):
    """End to end: a search refuses same-size replaced bytes; a project pinned with the
    old file-list hash resumes, and its records carry one data hash (no "mixed" warning)."""
    import autopneumo
    from autopneumo.data.kermany import scan_kermany
    from autopneumo.tuning import PROJECT_FILE
    from tests.conftest import make_kermany

    data = make_kermany(tmp_path / "data")
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    config = SearchConfig("base_cnn", "none", data=data, tuner="random", max_trials=1,
                          epochs=1, image_size=32, runs_dir=tmp_path / "runs", spaces=[space])
    [first] = search(config)
    _replace_same_size(next((data / "train" / "PNEUMONIA").glob("*.jpeg")))
    with pytest.raises(RunsError, match=r"other settings \(data_hash\)"):
        search(SearchConfig(**{**config.__dict__, "max_trials": 2}))
    assert first["data"]["data_hash"] != first["data"]["data_list_hash"]

    # as an older autopneumo left it: the project and its record hold the list hash
    legacy = scan_kermany(data).digest()
    project_file = Path(config.runs_dir) / config.project / PROJECT_FILE
    project_file.write_text(json.dumps({**json.loads(project_file.read_text()),
                                        "data_hash": legacy}))
    record_path = Path(first["_path"])
    old = json.loads(record_path.read_text())
    old["data"] = {k: v for k, v in old["data"].items() if k != "data_list_hash"}
    record_path.write_text(json.dumps({**old, "data": {**old["data"], "data_hash": legacy}}))
    records = search(SearchConfig(**{**config.__dict__, "max_trials": 2}))
    assert len(records) == 2
    assert {r["data"]["data_hash"] for r in records} == {legacy}
    assert autopneumo.leaderboard(config.runs_dir).attrs["mixed"] == []


def test_hyperband_runs_all_its_brackets_unless_max_trials_is_given(tmp_path, monkeypatch):
    """Hyperband counts every rung's trial: 10 trials at a 10-epoch cap are all spent in
    its first bracket's 2-epoch round, so without --max-trials it runs one whole
    iteration (30 trials at a 10-epoch cap); the other tuners run 10; a given
    --max-trials wins."""
    import autopneumo.tuning as tuning

    assert tuning.default_trials("hyperband", 10) == 30
    assert tuning.default_trials("hyperband", 3) == 6
    assert tuning.default_trials("bayesian", 10) == tuning.default_trials("random", 3) == 10
    seen = []
    monkeypatch.setattr(tuning, "_search_locked",
                        lambda config, *args: seen.append(config.max_trials) or [])
    for tuner, given, expected in (("hyperband", None, 30), ("random", None, 10),
                                   ("hyperband", 4, 4)):
        search(SearchConfig("base_cnn", "none", data=tmp_path, tuner=tuner, max_trials=given,
                            epochs=10, runs_dir=tmp_path / "runs"))
        assert seen[-1] == expected, tuner
    with pytest.raises(OptionError, match="--max-trials must be positive"):
        search(SearchConfig("base_cnn", "none", data=tmp_path, max_trials=0))


def test_a_medmnist_search_says_its_split_is_official_and_its_intervals_resample_images(
        tmp_path):
    """A .npz has its own validation split and no patient ids: the search says so, and its
    records say their intervals resample images (a Kermany search's resample patients)."""
    from tests.test_data_loading import _medmnist

    npz = tmp_path / "pneumoniamnist.npz"
    _medmnist(npz, n=(40, 12, 12))
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    with pytest.warns(AutopneumoNote, match=re.escape(
            "a MedMNIST .npz keeps its official train/val/test split (--val-fraction does not "
            "apply)")):
        [record] = search(SearchConfig("base_cnn", "none", data=npz, tuner="random",
                                       max_trials=1, epochs=1, image_size=32,
                                       runs_dir=tmp_path / "runs", spaces=[space]))
    assert record["status"] == "completed", record.get("traceback")
    assert record["test_ci_resampled"] == "images"


def test_the_evaluation_scores_test_precision_at_the_runs_own_recall_target(tiny_kermany,
                                                                             tmp_path,
                                                                             monkeypatch):
    """A run at recall >= 0.8 records its test precision at 0.8, not at the default 0.95
    (a mutant that hard-coded 0.95 passed every search test, all run at the default)."""
    from types import SimpleNamespace

    import autopneumo.evaluation
    from autopneumo.data import load_dataset
    from autopneumo.evaluation import Evaluator
    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    dataset = load_dataset(tiny_kermany, image_size=32, channels=1, seed=0)

    def scores(model, x, *args, **kwargs):
        """Every pneumonia image above every normal one, except one far below them all:
        recall 0.8 needs no normal call, recall 0.95 needs every normal image called."""
        y = dataset.test.y if x is dataset.test.x else dataset.val.y
        s = np.where(y == 1, 0.6 + 0.01 * np.arange(len(y)), 0.4)
        s[np.flatnonzero(y == 1)[0]] = 0.1
        return s[:, None]

    monkeypatch.setattr(autopneumo.evaluation, "predict_batches", scores)
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1),
                        {"width": 0.25, "depth": 2, "dense_units": "8"})
    evaluator = Evaluator(dataset, {"project": "p", "family": "base_cnn", "policy": "none",
                                    "tuner": "random"}, 0.8, n_boot=20)
    trial = SimpleNamespace(trial_id="0", status="COMPLETED", message=None,
                            hyperparameters=SimpleNamespace(values={}))
    record = evaluator.evaluate(model, trial, tmp_path / "trial_0", None, 1.0)
    test = dataset.test
    val_scores = scores(None, dataset.val.x).ravel()
    assert record["recall_target"] == 0.8
    assert record["threshold"] == precision_at_recall(dataset.val.y, val_scores, 0.8).threshold
    assert record["threshold"] > 0.4  # the outlier stays below it on validation too
    at = {t: precision_at_recall(test.y, scores(None, test.x).ravel(), t).precision
          for t in (0.8, 0.95)}
    assert at == {0.8: 1.0, 0.95: pytest.approx(test.y.mean())}  # the two targets differ
    assert record["test"]["prec_at_recall"] == 1.0


def test_predict_at_another_recall_target_thresholds_on_the_saved_validation_scores(
        searched, tiny_kermany, tmp_path):
    """A deployer who wants recall >= 0.8 (or 0.99) gets the threshold that operating
    point has on validation, from an export's validation_scores.csv or a trial's
    predictions.csv: never from the images being predicted."""
    from click.testing import CliRunner

    import autopneumo
    from autopneumo.cli import main
    from autopneumo.inference import VALIDATION_FILE, export, predict

    config, _ = searched
    best = autopneumo.leaderboard(config.runs_dir).iloc[0]
    [folder] = export(config.runs_dir, tmp_path / "winner", top=1)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["validation_scores"] == VALIDATION_FILE
    saved = pd.read_csv(folder / VALIDATION_FILE)
    trial = pd.read_csv(Path(best["trial_dir"]) / "predictions.csv").query("split == 'val'")
    assert saved.file.tolist() == trial.file.tolist()
    expected = precision_at_recall(saved.label, saved.probability, 0.8).threshold
    for source in (folder, Path(best["trial_dir"])):
        frame = predict(source, tiny_kermany / "test", recall_target=0.8)
        assert frame.attrs["threshold"] == pytest.approx(expected)
        assert frame.attrs["threshold_source"] == "chosen on validation for recall >= 0.8"
        assert ((frame.label == "PNEUMONIA") == (frame.probability >= expected)).all()
    shown = CliRunner().invoke(main, ["predict", "--model", str(folder), "--recall-target",
                                      "0.8", str(tiny_kermany / "test")],
                               env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "(chosen on validation for recall >= 0.8)" in shown.output
    both = CliRunner().invoke(main, ["predict", "--model", str(folder), "--recall-target", "0.8",
                                     "--threshold", "0.5", str(tiny_kermany / "test")])
    assert both.exit_code == 2 and "--threshold and --recall-target: give one" in both.output
    (folder / VALIDATION_FILE).unlink()
    none = CliRunner().invoke(main, ["predict", "--model", str(folder), "--recall-target", "0.8",
                                     str(tiny_kermany / "test")])
    assert none.exit_code == 2 and "no validation scores beside the model" in none.output


@pytest.mark.parametrize("tta", [False, True])
def test_an_exported_ensemble_predicts_what_the_ensemble_scored(searched, tiny_kermany,
                                                                tmp_path, tta):
    """export --ensemble NAME copies every member with the combination rule, TTA and the
    ensemble's threshold; predict on that folder gives the ensemble's own saved test
    scores (so the seeds' ensemble, the less lucky estimate, can be deployed too)."""
    import shutil

    from click.testing import CliRunner

    from autopneumo.cli import main
    from autopneumo.ensemble import ensemble
    from autopneumo.inference import export, predict

    config, _ = searched
    runs = tmp_path / "runs"
    shutil.copytree(config.runs_dir, runs)  # the module's runs stay without an ensemble
    record = ensemble(runs, top=2, tta=tta, combine="logit", n_boot=20)
    name = record["trial_id"]
    [folder] = export(runs, tmp_path / "deployed", ensemble=name)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["kind"] == "ensemble" and card["combine"] == "logit" and card["tta"] is tta
    assert [m["folder"] for m in card["members"]] == ["member1", "member2"]
    assert card["threshold"] == pytest.approx(record["threshold"])
    frame = predict(folder, tiny_kermany / "test")
    saved = pd.read_csv(runs / "_ensemble" / name / "predictions.csv").query("split == 'test'")
    got = frame.assign(file=[str(Path(f).relative_to(tiny_kermany)) for f in frame.file])
    np.testing.assert_allclose(got.set_index("file").loc[saved.file, "probability"],
                               saved.probability, rtol=1e-5, atol=1e-6)
    assert ((frame.label == "PNEUMONIA") == (frame.probability >= record["threshold"])).all()
    with_top = CliRunner().invoke(main, ["export", "--runs-dir", str(runs), "--out",
                                         str(tmp_path / "y"), "--ensemble", name, "--top", "3"])
    assert with_top.exit_code == 2 and "an ensemble row is exported whole" in with_top.output
    assert "only" not in with_top.output and not (tmp_path / "y").exists()
    missing = CliRunner().invoke(main, ["export", "--runs-dir", str(runs), "--out",
                                        str(tmp_path / "x"), "--ensemble", "nosuch"])
    assert missing.exit_code == 2 and "--ensemble nosuch: no readable ensemble record" \
        in missing.output
    shutil.copyfile(folder / "member2" / "model.keras", folder / "member1" / "model.keras")
    swapped = CliRunner().invoke(main, ["predict", "--model", str(folder), str(tiny_kermany)])
    assert swapped.exit_code == 2 and "member1/model.keras is not the model" in swapped.output
    (folder / "member2" / "model.keras").unlink()
    gone = CliRunner().invoke(main, ["predict", "--model", str(folder), str(tiny_kermany)])
    assert gone.exit_code == 2 and "the ensemble's member model" in gone.output


def test_a_builder_that_fails_at_the_spaces_first_values_is_one_line(tiny_kermany, tmp_path,
                                                                     monkeypatch):
    """The extensibility review's B5: keras-tuner builds the model once as it makes the
    tuner, outside any trial; a builder failing there was a 60-line traceback. (base_cnn
    states its ranges since session 22, which refuse '32-x' before the build: here it
    states none, as a plugin's builder may.)"""
    import autopneumo.spaces
    from autopneumo.errors import SpaceError

    monkeypatch.setattr(autopneumo.spaces, "literal_choices", lambda builder: {})

    space = tmp_path / "base_cnn.yaml"
    space.write_text(SMALL_CNN.replace('value: "32"', 'value: "32-x"'))
    config = SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random", max_trials=1,
                          epochs=1, image_size=32, runs_dir=tmp_path / "runs", spaces=[space])
    with pytest.raises(SpaceError) as info:
        search(config)
    message = str(info.value)
    assert message.startswith("family base_cnn with policy none cannot be built as keras-tuner "
                              "declares its search spaces, with {")
    assert "'model.dense_units': '32-x'" in message
    assert message.endswith("ValueError: invalid literal for int() with base 10: 'x' (check "
                            "the space files' values against the builders' arguments)")
    assert "\n" not in message


def test_a_resumed_search_prints_nothing_on_stdout(searched, capfd):
    """keras-tuner prints "Reloading Tuner from ..." on stdout: a script piping its own
    output (a CSV) got that line in the middle (the API review's S2). It goes to stderr."""
    config, _ = searched
    capfd.readouterr()
    search(config)  # the trials are all done: it reloads and returns
    out, err = capfd.readouterr()
    assert out == ""
    assert "Reloading Tuner from" in err


def test_a_resume_with_other_settings_is_refused_before_the_data_are_loaded(tmp_path,
                                                                           monkeypatch):
    """The resume review 22: a resume at another --image-size decoded the whole data set at
    that size (minutes on a large folder, and a cache beside the search's) before it was
    refused. The settings that need no data are checked first."""
    import autopneumo.data
    from autopneumo.tuning import PROJECT_FILE, _pin_project, resolve_spaces, search
    from tests.conftest import make_kermany

    data = make_kermany(tmp_path / "data", patients={"train": 3, "val": 1, "test": 2})
    config = SearchConfig("base_cnn", "none", data=data, image_size=32,
                          runs_dir=tmp_path / "runs")
    project_dir = tmp_path / "runs" / config.project
    project_dir.mkdir(parents=True)
    dataset = autopneumo.data.load_dataset(data, image_size=32, cache_folder=tmp_path / "c")
    _pin_project(project_dir, config, dataset, resolve_spaces(config)["spaces"])
    (project_dir / "trial_0").mkdir()  # a trial ran
    assert (project_dir / PROJECT_FILE).is_file()

    def no_load(*args, **kwargs):
        raise AssertionError("the data were loaded before the settings were compared")

    monkeypatch.setattr(autopneumo.data, "load_dataset", no_load)
    refused = (rf"^{re.escape(str(project_dir))}: this project was started with other settings "
               r"\(image_size, seed\); use the same options or another --runs-dir$")
    with pytest.raises(RunsError, match=refused):
        search(replace(config, image_size=48, seed=3))
