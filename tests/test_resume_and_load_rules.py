"""After the last review of session 21's fixes: a bayesian project resumes (its oracle
saves num_initial_points null), finalize takes the values keras-tuner draws just past a
bound, and an old model with another Sequential after its augmentation still loads.
tmp_path only."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
kt = pytest.importorskip("keras_tuner")


def test_a_bayesian_oracle_as_keras_tuner_writes_it_still_resumes(tmp_path):
    """keras-tuner's BayesianOptimizationOracle saves "num_initial_points": null when none
    was given (autopneumo gives none: it is 3 x the dimensions, decided at populate time).
    _ORACLE_OWN wants an int there, so every bayesian project was refused on resume as
    "unreadable"."""
    from autopneumo.tuning import _check_tuner_files

    oracle = kt.oracles.BayesianOptimizationOracle(
        objective=kt.Objective("val_objective", "max"), max_trials=3)
    oracle._set_project_dir(str(tmp_path), "base_cnn__none")
    oracle.hyperparameters.Float("train.learning_rate", 1e-4, 3e-3, sampling="log")
    oracle.save()
    project = tmp_path / "base_cnn__none"
    assert json.loads((project / "oracle.json").read_text())["num_initial_points"] is None
    _check_tuner_files(project, owner=False)  # RunsError on HEAD


def _record(name: str, value) -> dict:
    values = {"train.learning_rate": 1e-3, "train.batch_size": 32, "train.epochs": 2}
    values[name] = value
    return {"family": "base_cnn", "policy": "none", "recall_target": 0.95,
            "hyperparameters": values, "data": {"image_size": 32}}


@pytest.mark.parametrize("sampling, low, high, prob", [
    ("log", 1e-4, 3e-2, 1.0),          # 0.030000000000000002
    ("linear", 1e-3, 1e-2, 1.0),       # 0.010000000000000002
    ("reverse_log", 1e-4, 3e-3, 0.0),  # max + min - max: below min by an ulp
])
def test_a_float_drawn_at_its_bound_is_not_refused(sampling, low, high, prob):
    """keras-tuner maps a probability to a Float as min + p (max - min), min (max/min)^p
    or max + min - min (max/min)^(1-p): at the bound the Bayesian oracle's L-BFGS-B
    proposes (p = 1, or 0 for reverse_log) that lands one ulp past max. check_recorded's
    strict min <= value <= max refused such a record: finalize stopped on a value its
    own search drew."""
    from autopneumo.trials import check_recorded

    hps = kt.HyperParameters()
    hps.Float("train.learning_rate", low, high, sampling=sampling)
    space = hps.get_config()["space"]
    drawn = hps._hps["train.learning_rate"][0].prob_to_value(prob)
    assert not low <= drawn <= high  # what keras-tuner really hands the builder
    values = check_recorded(_record("train.learning_rate", drawn), "record.json", space)
    assert values["train.learning_rate"] == drawn


def test_an_old_model_with_another_sequential_after_its_augmentation_still_loads(tmp_path):
    """Keras 3 files weights by class name in snake case, numbered per class
    (layers/sequential, layers/sequential_1): declaring the old augmentation an
    Augmentation moves it to layers/augmentation, and the next Sequential (a plugin
    family's backbone or head) now reads layers/sequential, the augmentation's empty group.
    The model loaded before the rewrite; now it is refused ("2 objects could not be
    loaded")."""
    from autopneumo.hypermodel import load_trained_model
    from autopneumo.preprocessing import Augmentation

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.Sequential([keras.layers.RandomFlip("horizontal")], name="augmentation")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(1)], name="head")(x)
    old = keras.Model(inputs, x)
    old.save(tmp_path / "model.keras")
    images = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    expected = np.asarray(old(images, training=False))
    loaded = load_trained_model(tmp_path / "model.keras")  # RunsError on HEAD
    assert isinstance(loaded.get_layer("augmentation"), Augmentation)
    np.testing.assert_allclose(np.asarray(loaded(images)), expected, atol=1e-6)


def test_an_int_on_a_log_scale_drawn_at_its_upper_bound_is_not_refused():
    """An Int with log sampling and no step (allowed by IntHP: "a continuous log scale")
    maps p to int(min ((max + 1)/min)^p): the Bayesian oracle's p = 1.0 gives max + 1, a
    value keras-tuner really hands the builder and the search trained; check_recorded's
    min <= value <= max refuses that record at finalize."""
    from autopneumo.trials import check_recorded

    hps = kt.HyperParameters()
    hps.Int("train.epochs", 2, 64, sampling="log")
    space = hps.get_config()["space"]
    drawn = hps._hps["train.epochs"][0].prob_to_value(1.0)
    assert drawn == 65
    assert check_recorded(_record("train.epochs", drawn), "record.json", space)[
        "train.epochs"] == 65
