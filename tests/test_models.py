"""Conformance: every registered family x every policy builds, trains a step, saves, loads."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from autopneumo.hypermodel import build_model, class_weights  # noqa: E402
from autopneumo.registry import FAMILIES, POLICIES  # noqa: E402
from autopneumo.spaces import builtin_space  # noqa: E402

PAIRS = [(f, p) for f in FAMILIES.names() for p in POLICIES.names()]


@pytest.fixture(autouse=True)
def _fresh_session():
    """Each case starts from an empty Keras graph state (it otherwise slows later cases)."""
    keras.backend.clear_session()
    yield


def test_registries_list_the_issue_minimum():
    assert {"base_cnn", "resnet18"} <= set(FAMILIES.names())
    assert {"none", "flip", "geometric", "photometric"} <= set(POLICIES.names())
    for name in FAMILIES.names():
        assert FAMILIES.get(name).space_file.is_file()
    for name in POLICIES.names():
        assert POLICIES.get(name).space_file.is_file()


@pytest.mark.parametrize("family,policy", PAIRS)
def test_build_train_save_load(family, policy, tmp_path):
    fam, pol = FAMILIES.get(family), POLICIES.get(policy)
    model_params = builtin_space("family", family).defaults()
    augment_params = builtin_space("augment", policy).defaults()
    if family == "resnet18":
        model_params["width"] = 0.25  # keep the test small
    model = build_model(fam, pol, (32, 32, 1), model_params, augment_params)
    model.run_eagerly = True  # one step: tracing a graph would cost 10x the step itself
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
    y = np.array([0, 1] * 2, dtype=np.uint8)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    before = np.asarray(model(x, training=False))
    assert before.shape == (4, 1) and np.all((before >= 0) & (before <= 1))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), before, rtol=1e-5,
                               atol=1e-6)


def test_augmentation_is_inactive_at_inference():
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("geometric"), (32, 32, 1),
                        {"depth": 2, "width": 0.5}, {"rotation": 0.1, "zoom": 0.2,
                                                     "translation": 0.1})
    x = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_photometric_sharpness_blurs_and_sharpens_in_training_only(tmp_path):
    """``sharpness`` > 0 adds a RandomSharpness layer whose factor spans both sides of 0.5:
    over a batch some images come out blurrier, some sharper; never at inference; and the
    model saves and loads with it."""
    from autopneumo.augment.photometric import photometric

    assert not any(isinstance(layer, keras.layers.RandomSharpness) for layer in photometric())
    augment = photometric(contrast=0.0, brightness=0.0, noise=0.0, sharpness=0.5)
    assert [type(layer).__name__ for layer in augment] == ["RandomSharpness"]
    x = np.random.default_rng(2).random((64, 32, 32, 1)).astype("float32")

    def detail(images):  # mean absolute horizontal difference per image
        return np.abs(np.diff(np.asarray(images)[..., 0], axis=2)).mean(axis=(1, 2))

    ratio = detail(augment[0](x, training=True)) / detail(x)
    assert (ratio < 0.9).any() and (ratio > 1.1).any(), ratio  # both ways across the batch
    np.testing.assert_array_equal(np.asarray(augment[0](x, training=False)), x)

    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("photometric"), (32, 32, 1),
                        {"depth": 2, "width": 0.5}, {"sharpness": 0.3})
    assert any(isinstance(layer, keras.layers.RandomSharpness)
               for layer in model._flatten_layers())
    xb = (x[:4] * 255).astype(np.uint8)
    before = model.predict(xb, verbose=0)
    np.testing.assert_array_equal(before, model.predict(xb, verbose=0))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(xb, verbose=0), before, rtol=1e-5, atol=1e-6)


def test_hyperparameters_change_the_architecture():
    fam, pol = FAMILIES.get("base_cnn"), POLICIES.get("none")
    small = build_model(fam, pol, (64, 64, 1), {"width": 0.5, "depth": 2})
    large = build_model(fam, pol, (64, 64, 1), {"width": 2.0, "depth": 4})
    assert small.count_params() < large.count_params()
    r_small = build_model(FAMILIES.get("resnet18"), pol, (32, 32, 1), {"width": 0.25})
    r_large = build_model(FAMILIES.get("resnet18"), pol, (32, 32, 1), {"width": 0.5})
    assert r_large.count_params() > 3 * r_small.count_params()


def test_class_weights_balance_the_classes():
    w = class_weights(np.array([0] * 25 + [1] * 75))
    assert w[0] * 25 == pytest.approx(w[1] * 75)
    assert w[0] == pytest.approx(2.0)


class _StubModel:
    """Predicts a scripted score vector per epoch; its one 'weight' is the epoch number."""

    def __init__(self, per_epoch):
        self.per_epoch, self.restored = per_epoch, None
        self.weights = [self._Weight(self)]

    class _Weight:
        def __init__(self, model):
            self.model, self.value = model, 0

        def assign(self, value):
            self.model.restored = int(value)

    @property
    def epoch(self):
        return self.weights[0].value

    @epoch.setter
    def epoch(self, epoch):
        self.weights[0].value = epoch

    def predict(self, x, batch_size=None, verbose=0):
        return np.asarray(self.per_epoch[self.epoch], dtype=float)[:, None]

    def predict_on_batch(self, x):
        return self.predict(x)[: len(x)]


def test_validation_objective_logs_exact_metrics_and_restores_the_best_epoch():
    from autopneumo.hypermodel import ValidationObjective
    from autopneumo.objective import precision_at_recall

    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    good = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9, 0.95]  # separable: precision 1 at recall 1
    bad = [0.9, 0.2, 0.3, 0.6, 0.7, 0.8, 0.1, 0.95]
    stub = _StubModel([bad, good, bad])
    callback = ValidationObjective(np.zeros((8, 4, 4, 1)), y, recall_target=0.95)
    callback.set_model(stub)
    logged = []
    for epoch in range(3):
        stub.epoch = epoch
        logs = {}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs)
    callback.on_train_end()
    assert stub.restored == 1  # the best epoch, not the last
    # the evaluation reuses the best epoch's validation scores instead of predicting again
    from autopneumo.hypermodel import best_validation_scores

    np.testing.assert_array_equal(best_validation_scores(stub, np.zeros((8, 4, 4, 1))), good)
    assert best_validation_scores(stub, np.ones((8, 4, 4, 1))) is None
    assert best_validation_scores(_StubModel([good]), np.zeros((8, 4, 4, 1))) is None
    assert logged[1]["val_prec_at_recall"] == 1.0
    assert logged[0]["val_prec_at_recall"] == precision_at_recall(y, bad, 0.95).precision
    assert logged[1]["val_objective"] > logged[0]["val_objective"]
    assert set(logged[0]) >= {"val_loss", "val_accuracy", "val_auc", "val_threshold"}


def test_validation_objective_fails_the_trial_on_non_finite_predictions():
    import keras_tuner as kt

    from autopneumo.hypermodel import ValidationObjective

    y = np.array([0, 0, 1, 1])
    stub = _StubModel([[0.1, np.nan, 0.8, 0.9]])
    callback = ValidationObjective(np.zeros((4, 4, 4, 1)), y, recall_target=0.95)
    callback.set_model(stub)
    stub.epoch = 0
    with pytest.raises(kt.errors.FailedTrialError,
                       match="^1 validation predictions became NaN or infinite in epoch 1$"):
        callback.on_epoch_end(0, {})


def test_validation_objective_restores_the_best_epochs_optimizer_state_too():
    """keras-tuner's own checkpoint held the best epoch's optimizer state (step count,
    Adam's moments) with its weights; the model left at its best epoch must too, or a
    Hyperband continuation resumes those weights with a later epoch's moments."""
    from autopneumo.hypermodel import ValidationObjective

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)
    x = np.array([[v, 0.0] for v in np.linspace(-2, 2, 8)], dtype="float32")
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    callback = ValidationObjective(x, y, recall_target=0.95)
    callback.set_model(model)
    dense = model.layers[-1]
    for epoch, sign in enumerate([-1.0, 1.0, -1.0]):  # the middle epoch separates the classes
        dense.kernel.assign([[sign], [0.0]])
        model.optimizer.iterations.assign(10 * (epoch + 1))
        for variable in _moments(model.optimizer):
            variable.assign(np.full(variable.shape, float(epoch), dtype="float32"))
        callback.on_epoch_end(epoch, {})
    callback.on_train_end()
    assert float(keras.ops.convert_to_numpy(dense.kernel)[0, 0]) == 1.0
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 20
    moments = [keras.ops.convert_to_numpy(v) for v in _moments(model.optimizer)]
    assert len(moments) == 4 and all(np.all(m == 1.0) for m in moments)  # Adam's m and v


def test_a_continued_fit_that_only_gets_worse_keeps_the_weights_it_started_from():
    """Hyperband continues a trial from its parent's best epoch: those weights are scored
    before the first epoch and kept when no new epoch beats them (weights, optimizer
    state and validation scores); ``kept_start`` says so. A later improvement wins."""
    from autopneumo.hypermodel import ValidationObjective, best_validation_scores, kept_start

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)
    x = np.array([[v, 0.0] for v in np.linspace(-2, 2, 8)], dtype="float32")
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    dense = model.layers[-1]

    def run(signs, score_start, start=1.0):  # 1.0 separates the classes, -1.0 does not
        dense.kernel.assign([[start], [0.0]])
        model.optimizer.iterations.assign(7)
        callback = ValidationObjective(x, y, recall_target=0.95, score_start=score_start)
        callback.set_model(model)
        callback.on_train_begin()
        for epoch, sign in enumerate(signs):
            dense.kernel.assign([[sign], [0.0]])
            model.optimizer.iterations.assign(10 * (epoch + 1))
            callback.on_epoch_end(epoch, {})
        callback.on_train_end()
        return float(keras.ops.convert_to_numpy(dense.kernel)[0, 0])

    assert run([-1.0, -0.5], score_start=True) == 1.0
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 7
    assert kept_start(model)["prec_at_recall"] == 1.0
    scores = best_validation_scores(model, x)
    np.testing.assert_allclose(scores, keras.ops.convert_to_numpy(model(x)).ravel(), rtol=1e-6)
    assert run([-0.5, -1.0], score_start=False) == -0.5  # the best new epoch, as before
    assert kept_start(model) is None
    assert run([-0.5, 2.0], score_start=True, start=-1.0) == 2.0  # better than the start
    assert kept_start(model) is None


def _moments(optimizer):
    return [v for v in optimizer.variables if v is not optimizer.iterations
            and "learning_rate" not in v.path]


def test_training_options_compile_as_asked():
    from autopneumo.hypermodel import make_loss, make_optimizer, oversample

    assert isinstance(make_optimizer({"optimizer": "sgd"}, 0.01, 10), keras.optimizers.SGD)
    adamw = make_optimizer({"optimizer": "adamw", "schedule": "cosine"}, 0.01, 10)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert float(adamw.learning_rate) == pytest.approx(0.01)  # step 0 of the cosine
    schedule = keras.optimizers.schedules.CosineDecay(0.01, 10)
    assert float(schedule(10)) == pytest.approx(0.0, abs=1e-9)
    assert isinstance(make_loss({"loss": "focal"}), keras.losses.BinaryFocalCrossentropy)
    smooth = make_loss({"label_smoothing": 0.1})
    y, p = np.array([[1.0]]), np.array([[0.999]])
    assert float(smooth(y, p)) > float(make_loss({})(y, p))  # smoothing penalises certainty
    idx = oversample(np.array([0] * 10 + [1] * 40), seed=0)
    assert len(idx) == 80 and np.bincount(np.array([0] * 10 + [1] * 40)[idx]).tolist() == [40, 40]
    assert set(idx[np.array([0] * 10 + [1] * 40)[idx] == 0]) == set(range(10))


def test_in_graph_normalisation_equals_classroom_float_input():
    """uint8 in, Rescaling inside the graph == the classroom's float32 0-255 input."""
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1),
                        {"width": 0.25, "depth": 2, "dense_units": "8"})
    as_float = keras.models.clone_model(model, input_tensors=keras.Input((32, 32, 1),
                                                                       dtype="float32"))
    as_float.set_weights(model.get_weights())
    x = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 1), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(as_float(x.astype("float32"))),
                               rtol=1e-6, atol=1e-7)


def test_histogram_equalisation_is_part_of_the_model_and_survives_saving(tmp_path):
    """``equalize``: each image's histogram is spread over 0-255 inside the model, so a
    low-contrast and a stretched copy of one scan look alike to the network."""
    params = {"width": 0.25, "depth": 2, "dense_units": "8"}
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1), params,
                        training={"equalize": True})
    plain = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1), params)
    assert "equalize" in [layer.name for layer in model.layers]
    assert "equalize" not in [layer.name for layer in plain.layers]
    rng = np.random.default_rng(3)
    low = rng.integers(100, 140, (4, 32, 32, 1)).astype(np.uint8)  # a dull, narrow histogram
    equalised = np.asarray(model.get_layer("equalize")(low.astype("float32")))
    assert equalised.min() <= 10 and equalised.max() >= 245
    stretched = ((low.astype(int) - 100) * 6).clip(0, 255).astype(np.uint8)  # same ranks
    np.testing.assert_allclose(np.asarray(model(low)), np.asarray(model(stretched)), atol=2e-2)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(low)), np.asarray(model(low)), rtol=1e-5, atol=1e-6)


def test_per_image_standardisation_makes_the_model_blind_to_brightness_and_contrast(
        tmp_path):
    """``standardize``: after the augmentation each image has zero mean and unit
    deviation (TensorFlow's per_image_standardization, on any backend), so a scan and an
    affinely brightened, contrast-stretched copy get the same prediction."""
    from autopneumo.preprocessing import PerImageStandardization

    rng = np.random.default_rng(4)
    images = rng.integers(60, 180, (3, 16, 16, 1)).astype(np.float32)
    images[2] = 90.0  # a flat image: the deviation's floor keeps it finite (all zeros)
    out = np.asarray(PerImageStandardization()(images))
    for b in range(3):
        x = images[b]
        expected = (x - x.mean()) / max(x.std(), 1 / np.sqrt(x.size))
        np.testing.assert_allclose(out[b], expected, rtol=1e-4, atol=1e-5)
    assert np.all(out[2] == 0.0)

    params = {"width": 0.25, "depth": 2, "dense_units": "8"}
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1), params,
                        training={"standardize": True})
    plain = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1), params)
    names = [layer.name for layer in model.layers]
    assert "standardize" in names and "standardize" not in [layer.name for layer in plain.layers]
    scan = rng.integers(60, 120, (4, 32, 32, 1)).astype(np.uint8)
    brighter = (scan.astype(int) * 2 + 10).astype(np.uint8)  # contrast x2, brightness +10

    def features(m, x):  # what the head sees: an untrained head's outputs all sit near 0.5
        return np.asarray(keras.Model(m.inputs, m.get_layer("pneumonia").input)([x]))

    same = features(model, scan)
    np.testing.assert_allclose(features(model, brighter), same, atol=1e-3 * np.abs(same).max())
    moved = np.abs(features(plain, brighter) - features(plain, scan)).max()
    assert moved > 0.1 * np.abs(features(plain, scan)).max()
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(scan)), np.asarray(model(scan)), rtol=1e-5, atol=1e-6)


def test_histogram_equalisation_matches_a_numpy_reference():
    from autopneumo.preprocessing import HistogramEqualization

    rng = np.random.default_rng(5)
    images = rng.integers(40, 200, (3, 16, 16, 2)).astype(np.uint8)
    images[2, :, :, 1] = 77  # a flat channel stays as it is
    out = np.asarray(HistogramEqualization()(images))
    for b in range(3):
        for c in range(2):
            x = images[b, :, :, c].ravel()
            hist = np.bincount(x, minlength=256)
            cdf = np.cumsum(hist)
            first = cdf[hist > 0].min()
            if cdf[-1] == first:
                expected = x.astype(float)
            else:
                expected = (cdf[x] - first) / (cdf[-1] - first) * 255
            np.testing.assert_allclose(out[b, :, :, c].ravel(), expected, rtol=1e-5, atol=1e-3)
    # float levels (after the crop's resize) are rounded, not truncated: 127.999 is 128
    nearly = images.astype(np.float32) - 0.001
    np.testing.assert_allclose(np.asarray(HistogramEqualization()(nearly)), out, atol=1e-3)


def test_border_crop_makes_the_model_blind_to_the_borders_and_survives_saving(tmp_path):
    """``crop``: only the central fraction reaches the network, so markers or collimation
    edges in the border cannot carry the label; 1.0 adds no layer."""
    keras.utils.set_random_seed(0)  # an untrained net: a rare draw can be blind to a small patch
    params = {"width": 0.25, "depth": 2, "dense_units": "8"}
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1), params,
                        training={"crop": 0.5})
    plain = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1), params,
                        training={"crop": 1.0})
    assert "crop" in [layer.name for layer in model.layers]
    assert "crop" not in [layer.name for layer in plain.layers]
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (4, 32, 32, 1)).astype(np.uint8)
    other_borders = rng.integers(0, 256, x.shape).astype(np.uint8)
    other_borders[:, 8:24, 8:24] = x[:, 8:24, 8:24]  # same centre (the kept 16 px), new borders
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(model(other_borders)), atol=1e-6)
    other_centre = x.copy()  # same borders, a new kept centre
    other_centre[:, 8:24, 8:24] = 255 - other_centre[:, 8:24, 8:24]
    assert not np.allclose(np.asarray(model(x)), np.asarray(model(other_centre)), atol=1e-6)
    assert not np.allclose(np.asarray(plain(x)), np.asarray(plain(other_borders)), atol=1e-6)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="train.crop"):
        build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1), params,
                    training={"crop": 1.5})


def test_the_optimizer_is_built_with_the_model_not_inside_the_first_traced_step():
    """TensorFlow traces a function that creates variables twice: the optimizer's slots
    must exist before the first fit (the first epoch was ~5 s longer on CPU otherwise)."""
    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    for training in ({}, {"optimizer": "adamw", "schedule": "cosine"}, {"optimizer": "sgd"}):
        model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("flip"), (24, 24, 1),
                            {"width": 0.25, "depth": 2, "dense_units": "8"}, training=training)
        assert model.optimizer.built, training
        slots = {v.path for v in model.optimizer.variables}
        assert len(slots) > 2, slots  # iterations, learning rate and per-weight state


def test_ema_scores_and_keeps_the_averaged_weights_of_each_epoch():
    """train.ema: at every epoch's end the weights are the optimizer's moving average (what
    the validation objective scores and the best epoch keeps), for every optimizer."""
    from autopneumo.data.dataset import Split
    from autopneumo.hypermodel import make_optimizer, train

    for kind in ("adam", "adamw", "sgd"):
        optimizer = make_optimizer({"optimizer": kind, "ema": True}, 0.01, 10)
        assert optimizer.use_ema and optimizer.ema_momentum == 0.99
    assert not make_optimizer({}, 0.01, 10).use_ema

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 8, 8, 1), dtype=np.uint8)
    y = (x.reshape(24, -1).mean(axis=1) > 127).astype(np.uint8)
    y[:2] = [0, 1]
    split = Split(x, y, np.array([f"f{i}" for i in range(24)]), np.array(["p"] * 24))

    class Seen(keras.callbacks.Callback):  # runs after the validation objective
        def __init__(self):
            super().__init__()
            self.gaps = []

        def on_epoch_end(self, epoch, logs=None):
            average = self.model.optimizer._model_variables_moving_average
            self.gaps.append(max(
                float(np.max(np.abs(keras.ops.convert_to_numpy(w)
                                    - keras.ops.convert_to_numpy(a))))
                for w, a in zip(self.model.trainable_variables, average, strict=True)))

    for ema in (True, False):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1), dtype="uint8"),
                                  keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=make_optimizer({"ema": True}, 0.05, 6),
                      loss="binary_crossentropy")
        seen = Seen()
        train(model, split, split, {"batch_size": 8, "epochs": 2, "ema": ema}, 0.95,
              callbacks=[seen], early_stopping=False)
        if ema:
            assert len(seen.gaps) == 2 and max(seen.gaps) == 0.0
        else:  # the optimizer averages, but nothing puts the average into the model
            assert min(seen.gaps) > 0.0


def test_a_trials_fit_draws_its_oversampling_with_the_searchs_seed(monkeypatch):
    from types import SimpleNamespace

    import keras_tuner as kt

    import autopneumo.hypermodel as hypermodel
    from autopneumo.tuning import SearchConfig, resolve_spaces

    resolved = resolve_spaces(SearchConfig("base_cnn", "none", image_size=32))
    split = SimpleNamespace(x=np.zeros((4, 32, 32, 1), np.uint8), y=np.array([0, 1, 0, 1]))
    hm = hypermodel.PneumoniaHyperModel(resolved["family"], resolved["policy"],
                                        resolved["spaces"], split, split, 0.95, seed=7)
    seen = {}
    monkeypatch.setattr(hypermodel, "train", lambda *a, **k: seen.update(k))
    hm.fit(kt.HyperParameters(), None, epochs=1)
    assert seen["seed"] == 7
