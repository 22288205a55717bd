"""The training-path review of the twentieth session: each test failed before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def _split(n_neg: int, n_pos: int, size: int = 32):
    from autopneumo.data.dataset import Split

    n = n_neg + n_pos
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
    y = np.array([0] * n_neg + [1] * n_pos, np.uint8)
    return Split(x, y, np.array([f"f{i}" for i in range(n)]), np.array([f"p{i}" for i in range(n)]))


def test_cosine_schedule_spans_every_step_of_an_oversampled_trial():
    """train.schedule=cosine decays over the epoch cap; with train.balance=oversample the
    training split grows to 2 x the majority class, but the schedule is sized from the
    original split (hypermodel.py:370), so the learning rate reaches 0 before the last
    epoch ends and the remaining steps train nothing."""
    import keras_tuner as kt

    from autopneumo.hypermodel import PneumoniaHyperModel
    from autopneumo.tuning import SearchConfig, resolve_spaces

    keras.backend.clear_session()
    resolved = resolve_spaces(SearchConfig("base_cnn", "none", image_size=32))
    split = _split(3, 9)  # oversampled: 18 images, 3 batches of 6 per epoch (not 2)
    hm = PneumoniaHyperModel(resolved["family"], resolved["policy"], resolved["spaces"],
                             split, split, 0.95)
    hp = kt.HyperParameters()
    for name, value in (("train.schedule", "cosine"), ("train.balance", "oversample"),
                        ("train.batch_size", 6), ("train.epochs", 2), ("model.depth", 2),
                        ("model.width", 0.5), ("model.dense_units", "128")):
        hp.Fixed(name, value)
    model = hm.build(hp)
    rates = []

    class Rates(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    hm.fit(hp, model, callbacks=[Rates()])
    assert len(rates) == 6  # 2 epochs x 3 batches
    assert min(rates) > 0.0, f"learning rate per step: {rates}"


def test_finalize_sizes_the_cosine_schedule_from_the_split_it_trains_on(monkeypatch, tmp_path):
    """The same in ``trials.train_and_evaluate`` (finalize, baseline), trials.py:64:
    steps_per_epoch must count the oversampled training split."""
    from types import SimpleNamespace

    import autopneumo.hypermodel as hypermodel
    from autopneumo.trials import train_and_evaluate

    seen = {}

    class Stop(Exception):
        pass

    def fake_build(*args, steps_per_epoch=None, **kwargs):
        seen["steps"] = steps_per_epoch
        raise Stop

    monkeypatch.setattr(hypermodel, "build_model", fake_build)
    train = _split(3, 9)
    dataset = SimpleNamespace(train=train, val=train, test=train, image_shape=(32, 32, 1),
                              manifest={})
    values = {"train.batch_size": 6, "train.learning_rate": 1e-3, "train.epochs": 2,
              "train.schedule": "cosine", "train.balance": "oversample"}
    with pytest.raises(Stop):
        train_and_evaluate("base_cnn", "none", values, dataset, None, tmp_path, "t", 0.95, 0)
    oversampled = len(hypermodel.oversample(train.y))  # 18
    assert seen["steps"] == math.ceil(oversampled / 6), seen


def test_a_continued_mixup_fit_does_not_replay_its_parents_first_epoch(monkeypatch):
    """MixedBatches draws each epoch's order and mixing from (seed, epoch) with the epoch
    counted from the start of *this* fit (_mixing.py:130, 136, 143): a Hyperband
    continuation from epoch 2 replays exactly the shuffle, partners and lambdas of
    its parent's epoch 1."""
    from autopneumo.augment._mixing import MixedBatches
    from autopneumo.hypermodel import train
    from autopneumo.registry import POLICIES

    served = []
    original = MixedBatches.__getitem__

    def spy(self, index):
        x, y, *rest = original(self, index)
        served.append((index, np.asarray(x).copy(), np.asarray(y).copy()))
        return (x, y, *rest)

    monkeypatch.setattr(MixedBatches, "__getitem__", spy)
    split = _split(12, 12, size=8)
    training = {"batch_size": 8, "epochs": 1, "balance": "none"}

    def first_epoch(initial_epoch: int):
        keras.backend.clear_session()
        served.clear()
        model = keras.Sequential([keras.Input((8, 8, 1), dtype="uint8"),
                                  keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile("adam", "binary_crossentropy")
        train(model, split, split, {**training, "epochs": initial_epoch + 1}, 0.95,
              initial_epoch=initial_epoch, early_stopping=False,
              augmentation=POLICIES.get("mixup").builder(alpha=0.4, probability=1.0))
        # the last len() calls are the one trained epoch (earlier ones: Keras' spec probe)
        batches = served[-3:]
        return {i: (x, y) for i, x, y in batches}

    fresh, continued = first_epoch(0), first_epoch(2)
    same = all(np.array_equal(fresh[i][0], continued[i][0])
               and np.array_equal(fresh[i][1], continued[i][1]) for i in fresh)
    assert not same, "epoch 3 of a continuation mixed exactly as epoch 1 of its parent"


@pytest.mark.parametrize(("balance", "steps"), [("oversample", 3), ("class_weights", 2),
                                               ("none", 2)])
def test_steps_per_epoch_counts_the_rows_each_balance_mode_trains_on(balance, steps):
    from autopneumo.hypermodel import oversample, steps_per_epoch

    y = np.array([0] * 3 + [1] * 9)
    assert steps_per_epoch(y, {"batch_size": 6, "balance": balance}) == steps
    if balance == "oversample":
        assert math.ceil(len(oversample(y)) / 6) == steps
    assert steps_per_epoch(np.ones(7), {"batch_size": 6, "balance": "oversample"}) == 2


def test_the_classroom_baseline_keeps_its_last_epoch_as_its_study_did():
    """The training review's concern: baseline.py says the reference models are trained as
    the study trained them (ten epochs, evaluated after the tenth), yet the fit kept the
    best validation epoch, as a search does: a reference picked on (leaky) validation."""
    from autopneumo.baseline import classroom  # noqa: F401  (the caller of keep_best=False)
    from autopneumo.hypermodel import kept_last, train

    split = _split(12, 12, size=8)
    training = {"batch_size": 8, "epochs": 4, "balance": "none"}

    def fit(keep_best: bool):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1), dtype="uint8"),
                                  keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
        seen = []

        class Weights(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == training["epochs"] - 1:  # a last epoch worse than the others
                    self.model.set_weights([np.zeros_like(w) for w in self.model.get_weights()])
                    self.model.optimizer.learning_rate.assign(0.0)

            def on_epoch_end(self, epoch, logs=None):
                seen.append([np.array(w) for w in self.model.get_weights()])

        history = train(model, split, split, training, 0.95, early_stopping=False,
                        keep_best=keep_best, callbacks=[Weights()])
        return model, seen, history.history["val_objective"]

    model, seen, objective = fit(keep_best=False)
    assert int(np.argmax(objective)) < len(objective) - 1, objective  # the best is not last
    assert kept_last(model)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), seen[-1], strict=True))
    model, seen, objective = fit(keep_best=True)
    assert not kept_last(model)
    best = int(np.argmax(objective))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), seen[best], strict=True))


def test_the_baseline_asks_for_its_last_epoch(monkeypatch, tmp_path):
    import autopneumo.data
    import autopneumo.trials
    from autopneumo.baseline import classroom

    calls = []
    monkeypatch.setattr(autopneumo.data, "load_dataset", lambda *a, **k: None)
    monkeypatch.setattr(autopneumo.trials, "train_and_evaluate",
                        lambda *a, **k: calls.append(k) or {})
    classroom(tmp_path, runs_dir=tmp_path / "runs")
    assert len(calls) == 3 and all(k["keep_best"] is False and k["early_stopping"] is False
                                   for k in calls)


@pytest.mark.parametrize("training", [{"loss": "focal"}, {"label_smoothing": 0.1}, {}])
def test_the_logged_val_loss_is_the_compiled_loss(training):
    """val_loss was always plain cross-entropy, plotted beside the training loss, which is
    the compiled one (focal, label-smoothed): 0.69 against 0.30 on the same predictions,
    a train/validation gap that was only a change of loss function (review 21)."""
    import keras

    from autopneumo.hypermodel import ValidationObjective, make_loss

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer="adam", loss=make_loss(training))
    callback = ValidationObjective(x, y, 0.95)
    callback.set_model(model)
    logs: dict = {}
    callback.on_epoch_end(0, logs)
    compiled = float(model.evaluate(x, y, verbose=0))
    assert logs["val_loss"] == pytest.approx(compiled, rel=1e-4)
    if training:  # not the plain cross-entropy
        p = np.clip(model.predict(x, verbose=0).ravel(), 1e-7, 1 - 1e-7)
        assert abs(logs["val_loss"] - np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p))) > 0.01


def test_training_metrics_score_mixed_labels_by_their_majority_class():
    """MixUp/CutMix labels are soft: Keras' accuracy never matched a 0.7 label, precision
    counted a 0.3 label a positive; the training curves showed it (review 21)."""
    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("mixup"), (32, 32, 1),
                        {"width": 0.5, "depth": 2}, {"alpha": 0.2, "probability": 1.0},
                        training={"epochs": 1})
    x = np.zeros((4, 32, 32, 1), dtype="uint8")
    y_soft = np.array([[0.7], [0.3], [0.2], [1.0]], dtype="float32")  # majority 1, 0, 0, 1
    y_pred = np.array([[0.9], [0.9], [0.1], [0.2]], dtype="float32")
    model.reset_metrics()
    got = {k: float(v) for k, v in model.compute_metrics(x, y_soft, y_pred).items()}
    assert got["accuracy"] == pytest.approx(0.5)  # right: the 1st and the 3rd
    assert got["precision"] == pytest.approx(0.5)  # called positive: 1st (1), 2nd (0)
    assert got["recall"] == pytest.approx(0.5)  # positives: 1st found, 4th missed
    model.reset_metrics()
    hard = np.array([[1.0], [0.0], [0.0], [1.0]], dtype="float32")
    same = {k: float(v) for k, v in model.compute_metrics(x, hard, y_pred).items()}
    assert same == pytest.approx(got)


def _bn_model():
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 1), dtype="uint8")
    h = keras.layers.Rescaling(1 / 255)(i)
    h = keras.layers.Conv2D(4, 3, name="conv")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(i, keras.layers.Dense(1, activation="sigmoid")(h))


@pytest.mark.parametrize("ema", [True, False])
def test_with_ema_the_batchnorm_statistics_fit_the_averaged_weights(ema):
    """With train.ema each epoch ends on the weights' moving average, but the BatchNorm
    statistics were gathered under the raw weights: the moving variance was 2-3 times the
    averaged model's (review 21). They are recomputed for the averaged weights."""
    from autopneumo.data.dataset import Split
    from autopneumo.hypermodel import make_optimizer, train

    rng = np.random.default_rng(0)
    n = 256
    y = (rng.random(n) < 0.5).astype("uint8")
    x = (rng.normal(100, 30, (n, 8, 8, 1)) + 60 * y[:, None, None, None]).clip(0, 255)
    x = x.astype("uint8")
    names = np.array([f"f{i}" for i in range(n)])
    split = Split(x, y, names, names)
    model = _bn_model()
    model.compile(optimizer=make_optimizer({"ema": ema}, 1e-2, 1), loss="binary_crossentropy")
    train(model, split, split, {"ema": ema, "batch_size": 8, "epochs": 10, "balance": "none"},
          0.95, early_stopping=False, keep_best=False)
    conv = keras.Model(model.inputs, model.get_layer("conv").output)
    activations = np.asarray(conv.predict_on_batch(x))
    ratio = np.asarray(model.get_layer("bn").moving_variance) / activations.var(axis=(0, 1, 2))
    if ema:
        np.testing.assert_allclose(ratio, 1.0, rtol=0.1)
        mean = np.asarray(model.get_layer("bn").moving_mean)
        np.testing.assert_allclose(mean, activations.mean(axis=(0, 1, 2)), rtol=0.05,
                                   atol=1e-3)
    assert model.get_layer("bn").momentum == 0.99  # given back


def test_refresh_batchnorm_takes_the_mean_of_the_batch_statistics_and_changes_no_weight():
    from autopneumo.hypermodel import refresh_batchnorm

    model = _bn_model()
    x = np.random.default_rng(1).integers(0, 255, (96, 8, 8, 1)).astype("uint8")
    trainable = [np.asarray(w).copy() for w in model.trainable_weights]
    refresh_batchnorm(model, x, batch_size=32)
    conv = keras.Model(model.inputs, model.get_layer("conv").output)
    batches = [np.asarray(conv.predict_on_batch(x[i:i + 32])) for i in (0, 32, 64)]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(np.asarray(bn.moving_mean),
                               np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.moving_variance),
                               np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0),
                               rtol=1e-3)
    for before, after in zip(trainable, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, np.asarray(after))


def test_refresh_batchnorm_reaches_a_batchnorm_inside_a_custom_layer():
    """It walked only .layers: a plugin family's block holding its BatchNorm as an
    attribute kept the raw weights' statistics (diff review 21)."""
    from autopneumo.hypermodel import refresh_batchnorm

    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(2, 3, padding="same")
            self.bn = keras.layers.BatchNormalization()

        def call(self, x, training=None):
            return self.bn(self.conv(x), training=training)

    inputs = keras.Input((6, 6, 1))
    block = Block()
    model = keras.Model(inputs, keras.layers.Flatten()(block(inputs)))
    x = np.random.default_rng(0).normal(5.0, 2.0, (32, 6, 6, 1)).astype("float32")
    before = np.asarray(block.bn.moving_mean).copy()
    refresh_batchnorm(model, x, batch_size=16)
    assert not np.allclose(np.asarray(block.bn.moving_mean), before)


@pytest.mark.parametrize("batch_size, refresh", [(8, 32), (32, 128), (64, 128)])
def test_the_batchnorm_refresh_batches_follow_the_training_batch_size(monkeypatch, batch_size,
                                                                      refresh):
    """Up to 4 training batches at once (a forward pass stores no activations for a
    backward one), at most 128: a large backbone's refresh fits where its training fits."""
    import autopneumo.hypermodel as hm
    from autopneumo.data.dataset import Split

    seen = []
    monkeypatch.setattr(hm, "refresh_batchnorm", lambda model, x, size: seen.append(size))
    x = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 1)).astype("uint8")
    y = np.array([0, 1] * 8, dtype="uint8")
    names = np.array([f"f{i}" for i in range(16)])
    model = _bn_model()
    model.compile(optimizer=hm.make_optimizer({"ema": True}, 1e-3, 1),
                  loss="binary_crossentropy")
    hm.train(model, Split(x, y, names, names), Split(x, y, names, names),
             {"ema": True, "batch_size": batch_size, "epochs": 1, "balance": "none"}, 0.95,
             early_stopping=False)
    assert seen == [refresh]
