"""The HyperModel: family builder x augmentation policy x training hyperparameters."""

from __future__ import annotations

import math
import time
import weakref
from typing import Any

from .backend import import_tensorflow_quietly

import_tensorflow_quietly()  # before Keras loads TensorFlow: quiet, thread pools sized

import keras
import keras_tuner as kt
import numpy as np
from keras import layers

from .backend import predict_batches
from .objective import OBJECTIVE, validation_summary
from .preprocessing import Augmentation, HistogramEqualization, PerImageStandardization
from .registry import Entry
from .spaces import SearchSpace
from .tuning import DEADLINE_LOG

EMA_MOMENTUM = 0.99  # train.ema: Keras' default; about 100 steps, most of an epoch here


def load_trained_model(path, data: bytes | None = None) -> keras.Model:
    """Load a saved trial model safely (no code from the file runs): every policy and
    family module is imported first so their registered custom layers resolve
    (``autopneumo.load_model``). ``data``: the file's
    bytes, already read (and checked) from ``path``, loaded from a private copy. A model
    saved before the twenty-first session, whose augmentation is a plain ``Sequential``
    (on when called without ``training``), is loaded with it as an ``Augmentation``."""
    import io
    import os
    import tempfile
    import zipfile

    from .errors import RunsError
    from .registry import FAMILIES, POLICIES

    POLICIES.names()
    FAMILIES.names()  # a plugin family's own layers too
    if not zipfile.is_zipfile(io.BytesIO(data) if data is not None else path):
        # Keras would say "File not found" of a file that is there
        raise RunsError(f"{path}: not a Keras model file (.keras); unreadable or corrupt")
    try:
        if data is None:
            return _with_augmentation_layer(
                keras.saving.load_model(str(path), safe_mode=True, compile=False))
        with tempfile.TemporaryDirectory(prefix="autopneumo-model-") as tmp:
            copy = os.path.join(tmp, "model.keras")
            with open(copy, "wb") as fh:
                fh.write(data)
            return _with_augmentation_layer(
                keras.saving.load_model(copy, safe_mode=True, compile=False))
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunsError(f"{path}: cannot load the model ({reason})") from exc


def _with_augmentation_layer(model: keras.Model) -> keras.Model:
    """A model saved before the twenty-first session holds its augmentation as a plain
    ``Sequential`` named ``augmentation``, whose random layers are on when the model is
    called without ``training``: it becomes an ``Augmentation`` (the same layers, off
    unless trained; the class only changes ``call``). Done on the loaded model, not in the
    file's config: Keras numbers saved weights per class, and renaming the class there
    would shift a later ``Sequential`` (a plugin's block) onto the augmentation's."""
    for layer in model._flatten_layers(include_self=False):
        if type(layer) is keras.Sequential and layer.name == "augmentation":
            layer.__class__ = Augmentation
    return model


def build_model(
    family: Entry,
    policy: Entry,
    image_shape: tuple[int, int, int],
    model_params: dict[str, Any] | None = None,
    augment_params: dict[str, Any] | None = None,
    learning_rate: float = 1e-3,
    training: dict[str, Any] | None = None,
    steps_per_epoch: int = 100,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    """uint8 image -> [0, 1] -> augmentation (training only) -> backbone -> sigmoid.

    ``training`` chooses the optimizer (adam / adamw / sgd with momentum), the schedule
    (constant / cosine over the epoch cap), the loss (binary cross-entropy / focal) and
    label smoothing, whether the image borders are cropped off (``crop``: the central
    fraction kept, resized back), whether each image's histogram is equalised and whether
    each image is standardised to zero mean and unit deviation after the augmentation (all
    part of the model, so prediction and export see the same preprocessing); ``steps_per_epoch``
    sizes the cosine schedule."""
    training = training or {}
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = inputs
    crop = float(training.get("crop", 1.0))
    if not 0.0 < crop <= 1.0:
        raise ValueError(f"train.crop must be in (0, 1], got {crop}")
    if crop < 1.0:  # keep the central part, drop the borders (markers, collimation edges)
        side = (max(1, round(image_shape[0] * crop)), max(1, round(image_shape[1] * crop)))
        x = layers.CenterCrop(*side, name="crop")(x)
        x = layers.Resizing(image_shape[0], image_shape[1], name="crop_resize")(x)
    if training.get("equalize"):  # per-image histogram equalisation, train and test alike
        x = HistogramEqualization(name="equalize")(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    augmentation = policy.builder(**(augment_params or {}))
    if augmentation:
        x = Augmentation(augmentation, name="augmentation")(x)
    if training.get("standardize"):  # after augmentation: blind to global brightness/contrast
        x = PerImageStandardization(name="standardize")(x)
    features = family.builder(x, **(model_params or {}))
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="pneumonia")(features)
    model = keras.Model(inputs, outputs, name=f"{family.name}__{policy.name}")
    model.compile(
        optimizer=make_optimizer(training, learning_rate,
                                 steps_per_epoch * int(training.get("epochs", 10))),
        loss=make_loss(training),
        jit_compile=jit_compile,
        metrics=[
            HardLabelAccuracy(name="accuracy"),
            HardLabelPrecision(name="precision"),
            HardLabelRecall(name="recall"),
            HardLabelAUC(name="auc"),
        ],
    )
    # The optimizer's variables now, not inside the first traced train step: TensorFlow
    # traces a function that creates variables twice, which made the first epoch of every
    # trial about 5 s longer on CPU than the same model compiled from its config (measured,
    # base_cnn 64 px). Keras' compile_from_config does the same.
    model.optimizer.build(model.trainable_variables)
    return model


class _HardLabels:
    """A training metric on labels rounded to their majority class. MixUp and CutMix make
    them soft: Keras' accuracy compares a 0.7 label with the thresholded prediction (never
    equal), precision and recall cast it to true (0.3 counted a positive), so the
    History's training curves for those policies were wrong. Hard labels are unchanged."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(keras.ops.greater_equal(y_true, 0.5), y_pred.dtype)
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="autopneumo")
class HardLabelAccuracy(_HardLabels, keras.metrics.BinaryAccuracy):
    pass


@keras.saving.register_keras_serializable(package="autopneumo")
class HardLabelPrecision(_HardLabels, keras.metrics.Precision):
    pass


@keras.saving.register_keras_serializable(package="autopneumo")
class HardLabelRecall(_HardLabels, keras.metrics.Recall):
    pass


@keras.saving.register_keras_serializable(package="autopneumo")
class HardLabelAUC(_HardLabels, keras.metrics.AUC):
    pass


def make_optimizer(training: dict[str, Any], learning_rate: float, total_steps: int):
    """``ema``: the optimizer also keeps an exponential moving average of the weights
    (momentum 0.99); ``train`` makes the weights that average at every epoch's end."""
    rate = learning_rate
    if training.get("schedule", "constant") == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps))
    ema = {"use_ema": True, "ema_momentum": EMA_MOMENTUM} if training.get("ema") else {}
    kind = training.get("optimizer", "adam")
    if kind == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=1e-4, **ema)
    if kind == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, **ema)
    return keras.optimizers.Adam(rate, **ema)


def make_loss(training: dict[str, Any]):
    smoothing = float(training.get("label_smoothing", 0.0))
    if training.get("loss", "bce") == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=2.0, label_smoothing=smoothing)
    return keras.losses.BinaryCrossentropy(label_smoothing=smoothing)


def balance_mode(training: dict[str, Any]) -> str:
    """``balance`` (class_weights / oversample / none); older files' ``class_weights`` flag."""
    if "balance" in training:
        return training["balance"]
    return "class_weights" if training.get("class_weights", True) else "none"


def steps_per_epoch(y: np.ndarray, training: dict[str, Any]) -> int:
    """The training steps of one epoch, which a schedule over the epochs is sized by: the
    rows the fit sees (``oversample`` repeats the minority class up to the majority, about
    1.5x the Kermany training split) over the batch size."""
    rows = len(y)
    if balance_mode(training) == "oversample":
        counts = np.bincount(np.asarray(y).astype(int), minlength=2)[:2]
        rows = int(counts.max()) * int((counts > 0).sum())
    return -(-rows // int(training["batch_size"]))


def oversample(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices that repeat the minority class (drawn with replacement) up to the majority."""
    y = np.asarray(y).astype(int)
    rng = np.random.default_rng(seed)
    idx = [np.flatnonzero(y == c) for c in (0, 1)]
    target = max(len(i) for i in idx)
    parts = [i if len(i) == target or len(i) == 0 else
             np.concatenate([i, rng.choice(i, target - len(i), replace=True)]) for i in idx]
    return rng.permutation(np.concatenate(parts))


class FailOnNaN(keras.callbacks.Callback):
    """A diverged trial is marked failed with the reason; the search goes on."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise kt.errors.FailedTrialError(f"loss became {loss} in epoch {epoch + 1}")


class AverageWeightsEachEpoch(keras.callbacks.Callback):
    """With ``train.ema``: at each epoch's end the weights become the optimizer's moving
    average of them, before the validation objective scores the epoch. So the epoch that
    is scored, kept as the best and saved is the averaged model, and training goes on from
    it. (Keras' own ``ema_overwrite_frequency`` counts steps, which do not line up with
    epochs when the training split is oversampled; Keras averages once more when the fit
    ends, and the best epoch is restored after that.)

    The BatchNorm statistics are then recomputed for the averaged weights from ``x``
    (training images: up to ``BN_IMAGES`` of them, the same ones each epoch), as SWA's
    ``update_bn`` does: the moving ones were gathered under the raw weights, whose noise
    the average removes, and overstated the averaged model's variances 2-3 times."""

    BN_IMAGES = 512

    def __init__(self, x=None, seed: int = 0, batch_size: int = 128):
        super().__init__()
        self.batch_size = batch_size
        self.x = None
        if x is not None and len(x):
            pick = np.random.default_rng(seed).permutation(len(x))[:self.BN_IMAGES]
            self.x = x[np.sort(pick)]

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if getattr(optimizer, "use_ema", False) or getattr(
                getattr(optimizer, "inner_optimizer", None), "use_ema", False):
            optimizer.finalize_variable_values(self.model.trainable_variables)
            if self.x is not None:
                refresh_batchnorm(self.model, self.x, self.batch_size)


def refresh_batchnorm(model, x: np.ndarray, batch_size: int = 64) -> None:
    """Set every BatchNorm layer's moving mean and variance to the mean of its batch
    statistics over ``x`` under the model's present weights: forward passes in training
    mode (as the statistics were gathered), momentum (k - 1) / k at the k-th batch. No
    weight changes."""
    # every layer the model tracks, at any depth: nested models and a plugin's own blocks
    norms = [layer for layer in model._flatten_layers(include_self=False)
             if isinstance(layer, layers.BatchNormalization)]
    if not norms:
        return
    momenta = [layer.momentum for layer in norms]
    try:
        for k, start in enumerate(range(0, len(x), batch_size), start=1):
            for layer in norms:
                layer.momentum = (k - 1) / k
            model(x[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


class EpochTimer(keras.callbacks.Callback):
    """Logs ``epoch_seconds``: the trial-overhead benchmark and the budget tests read it."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class StopAtDeadline(keras.callbacks.Callback):
    """Ends the running trial after the epoch in which the time budget runs out, and says
    so in that epoch's logs (``stopped_at_deadline``), so the record shows it."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch, logs=None):
        if time.time() >= self.deadline:
            self.model.stop_training = True
            if logs is not None:
                logs[DEADLINE_LOG] = 1.0


class ValidationObjective(keras.callbacks.Callback):
    """After each epoch: one batched predict on the whole validation split, exact metrics.

    Adds ``val_loss`` (the compiled loss, as Keras' own), ``val_accuracy``,
    ``val_precision``, ``val_recall``, ``val_auc``, ``val_prec_at_recall``,
    ``val_threshold`` and ``val_objective`` to the epoch logs,
    where keras-tuner, early stopping and the History read them. Keeps the best epoch's
    weights and optimizer state (step count, moments) in memory and restores both when
    the fit ends, so the model is saved as it was at that epoch (``_snapshot`` says
    where the copies are kept).

    ``score_start``: the weights the fit starts from are trained already (a Hyperband
    trial continued from its parent's best epoch) and are scored before the first epoch;
    they are the first candidate, so a continuation that only gets worse ends where it
    started instead of at its best new epoch (``kept_start`` then says so).

    ``keep_best=False`` keeps the last epoch instead (the classroom baseline, which its
    study evaluated after its tenth epoch; ``kept_last`` then says so).
    """

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, recall_target: float,
                 batch_size: int = 256, score_start: bool = False, keep_best: bool = True):
        super().__init__()
        self.keep_best = keep_best
        self.x_val, self.y_val = x_val, y_val
        self.recall_target = recall_target
        self.batch_size = batch_size
        self.score_start = score_start
        self.best = -np.inf
        self.best_weights = None
        self.best_optimizer = None
        self.best_scores = None
        self.start_summary = None

    def on_train_begin(self, logs=None):
        _KEPT_START.pop(self.model, None)
        _KEPT_LAST.pop(self.model, None)
        if self.score_start:
            scores = predict_batches(self.model, self.x_val, self.batch_size).ravel()
            self.start_summary = validation_summary(self.y_val, scores, self.recall_target)
            self._keep(self.start_summary, scores)

    def on_epoch_end(self, epoch, logs=None):
        scores = predict_batches(self.model, self.x_val, self.batch_size).ravel()
        if not np.all(np.isfinite(scores)):  # diverged where the training loss did not show it
            bad = int(np.sum(~np.isfinite(scores)))
            raise kt.errors.FailedTrialError(
                f"{bad} validation predictions became NaN or infinite in epoch {epoch + 1}")
        summary = validation_summary(self.y_val, scores, self.recall_target)
        if logs is not None:
            logs.update({f"val_{k}": float(v) for k, v in summary.items()})
            logs["val_loss"] = self._compiled_loss(scores, summary["loss"])
        if summary["objective"] > self.best or not self.keep_best:  # strictly better, as
            # keras-tuner's checkpoint; or every epoch, so the last one is kept
            self.start_summary = None
            self._keep(summary, scores)

    def _compiled_loss(self, scores: np.ndarray, fallback: float) -> float:
        """Keras' ``val_loss``: the loss the model trains with (focal, label-smoothed), on
        the scores just computed; the History plots it beside the training ``loss``. The
        plain cross-entropy (``fallback``) where the model has no compiled loss."""
        loss = getattr(self.model, "loss", None)
        if loss is None or isinstance(loss, str):
            return float(fallback)
        y = np.asarray(self.y_val, dtype="float32").reshape(-1, 1)
        return float(keras.ops.convert_to_numpy(loss(y, scores.reshape(-1, 1))))

    def _keep(self, summary: dict[str, float], scores: np.ndarray) -> None:
        self.best = summary["objective"]
        self.best_weights = _snapshot(self.model.weights)
        self.best_optimizer = _optimizer_state(self.model)
        self.best_scores = scores

    def on_train_end(self, logs=None):
        """Leave the model at its best epoch: that is what gets evaluated and saved."""
        if self.best_weights is not None:
            _restore(self.model.weights, self.best_weights)
            if self.best_optimizer is not None:
                _restore(self.model.optimizer.variables, self.best_optimizer)
            self.best_weights = self.best_optimizer = None
            _BEST_VALIDATION_SCORES[self.model] = (self.x_val, self.best_scores)
        if self.start_summary is not None:
            _KEPT_START[self.model] = self.start_summary
        if not self.keep_best:
            _KEPT_LAST[self.model] = True


def _snapshot(variables) -> list:
    """Copies of the variables' current values. Under TensorFlow the copies stay where
    the variables live (on a 2-core CPU 1.7-4.6x faster than numpy copies, see
    ``benchmarks/snapshot.py``); under JAX they go to the host, which was as fast or
    faster than one on-device copy per variable on the H100 and on the CPU. A copy, not
    the value itself: the JAX trainer donates the state's buffers to the next step."""
    if keras.backend.backend() == "jax":
        return [keras.ops.convert_to_numpy(v.value).copy() for v in variables]
    return [keras.ops.copy(v.value) for v in variables]


def _restore(variables, values) -> None:
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _optimizer_state(model) -> list | None:
    """A copy of the model's optimizer variables (None where it has none built)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return None
    return _snapshot(optimizer.variables)


_BEST_VALIDATION_SCORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEPT_START: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEPT_LAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def kept_last(model) -> bool:
    """Whether the model's last fit kept its last epoch, not its best (``keep_best=False``)."""
    return bool(_KEPT_LAST.get(model))


def kept_start(model) -> dict[str, float] | None:
    """The validation summary of the weights the model's last fit started from, where no
    epoch of that fit beat them and the model holds them again (``score_start``)."""
    return _KEPT_START.get(model)


def best_validation_scores(model, x_val: np.ndarray) -> np.ndarray | None:
    """The validation scores ``ValidationObjective`` computed at the epoch whose weights the
    model now holds (so the evaluation need not predict them again), or None where the
    model was not trained on exactly ``x_val`` with it (or its weights changed since)."""
    seen, scores = _BEST_VALIDATION_SCORES.get(model, (None, None))
    if seen is x_val or (seen is not None and seen.shape == x_val.shape
                         and np.array_equal(seen, x_val)):
        return scores
    return None


def class_weights(y: np.ndarray) -> dict[int, float]:
    """'Balanced' weights: n / (2 * n_class), as the classroom notebooks used."""
    y = np.asarray(y).astype(int)
    n = len(y)
    counts = np.bincount(y, minlength=2)
    return {c: float(n / (2 * counts[c])) if counts[c] else 1.0 for c in (0, 1)}


class PneumoniaHyperModel(kt.HyperModel):
    """Builds and fits one trial's model; validation data stays inside, test never enters."""

    def __init__(self, family: Entry, policy: Entry, spaces: dict[str, SearchSpace],
                 train, val, recall_target: float, jit: bool = False,
                 mixed_precision: bool = False, data_on_device: bool = False, seed: int = 0):
        super().__init__(name=f"{family.name}__{policy.name}")
        self.seed = seed  # the search's --seed: oversampling draws with it
        self.family, self.policy, self.spaces = family, policy, spaces
        self.train, self.val = train, val
        self.recall_target = recall_target
        self.image_shape = tuple(train.x.shape[1:])
        self.last_fit = None  # (hyperparameter values, model at its best epoch)
        self.declaring = False  # keras-tuner builds the model once as its tuner is made
        self.jit = jit
        self.mixed_precision = mixed_precision  # float16 compute, float32 head and weights
        self.data_on_device = data_on_device  # training split held on the accelerator

    def values(self, hp) -> dict[str, dict[str, Any]]:
        return {kind: space.apply(hp) for kind, space in self.spaces.items()}

    def build(self, hp):
        from .errors import SpaceError, UserError

        try:
            return self._make(hp)
        except UserError:
            raise
        except Exception as exc:
            if not self.declaring:
                raise  # a trial's own values: keras-tuner records the trial as failed

            raise SpaceError(
                f"family {self.family.name} with policy {self.policy.name} cannot be built "
                f"as keras-tuner declares its search spaces, with {dict(hp.values)}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                "(check the space files' values against the builders' arguments)") from exc

    def _make(self, hp):
        v = self.values(hp)
        t = v["training"]
        steps = steps_per_epoch(self.train.y, t)
        if self.mixed_precision:  # per build: keras-tuner's clear_session resets the policy
            keras.config.set_dtype_policy("mixed_float16")
        return build_model(self.family, self.policy, self.image_shape, v["family"], v["augment"],
                           t["learning_rate"], training=t, steps_per_epoch=steps,
                           jit_compile=True if self.jit else "auto")

    def fit(self, hp, model, *args, epochs=None, callbacks=None, initial_epoch=0, **kwargs):
        self.last_fit = None
        values = self.values(hp)
        history = train(model, self.train, self.val, values["training"], self.recall_target,
                        epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                        augmentation=self.policy.builder(**values["augment"]),
                        data_on_device=self.data_on_device, seed=self.seed)
        self.last_fit = (dict(hp.values), model)
        return history


def train(model, train_split, val_split, training: dict[str, Any], recall_target: float,
          epochs: int | None = None, initial_epoch: int = 0, callbacks=None,
          early_stopping: bool = True, augmentation=None, seed: int = 0,
          data_on_device: bool = False, keep_best: bool = True):
    """One trial's training: exact validation objective per epoch, early stopping on it,
    best epoch restored. Shared by the search, ``finalize`` and ``baseline``.

    ``data_on_device`` holds the training split on the accelerator and gathers each batch
    there (``autopneumo.data.device``); the caller decides where that applies.

    A batch-level policy (MixUp, CutMix: ``augmentation`` has a ``transform``) mixes the
    training batches; validation never sees mixed images. The TensorFlow gradient
    registrations that tracing the train step leaves behind are dropped when the fit
    ends, so training many models in one process does not accumulate graphs. A Ctrl-C
    during the fit is raised between batches, never inside TensorFlow (``interrupts``)."""
    from .augment._mixing import batch_transform
    from .backend import releasing_custom_gradients
    from .interrupts import defer_ctrl_c, stop_on_ctrl_c_callback

    own = [
        EpochTimer(),
        FailOnNaN(),
        # before scoring; the BatchNorm refresh's forward passes in batches of up to 4
        # training batches: without a backward pass's stored activations, that fits
        # where training fits
        *([AverageWeightsEachEpoch(train_split.x, seed,
                                   min(128, 4 * int(training.get("batch_size", 32))))]
          if training.get("ema") else []),
        # a fit from initial_epoch > 0 continues trained weights: they are scored too
        ValidationObjective(val_split.x, val_split.y, recall_target,
                            score_start=initial_epoch > 0, keep_best=keep_best),
    ]
    if early_stopping:
        own.append(keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode="max",
                                                 patience=training.get("patience", 3)))
    mode = balance_mode(training)
    weights = class_weights(train_split.y) if mode == "class_weights" else None
    if mode == "oversample":
        train_split = train_split.take(oversample(train_split.y, seed))
    transform = batch_transform(augmentation) if augmentation is not None else None
    with defer_ctrl_c(), releasing_custom_gradients():
        return _fit(model, train_split, training, epochs, initial_epoch,
                    # last: every other callback has seen the batch a Ctrl-C stops after
                    own + list(callbacks or []) + [stop_on_ctrl_c_callback()],
                    weights, transform, seed, data_on_device)


def _fit(model, train_split, training, epochs, initial_epoch, callbacks, weights, transform,
         seed, data_on_device=False):
    model.data_on_device = transform is None and bool(data_on_device)  # for the record
    if model.data_on_device:
        from .data.device import DeviceBatches

        batches = DeviceBatches(train_split.x, train_split.y, training["batch_size"],
                                class_weight=weights, seed=seed, epoch=initial_epoch)
        return model.fit(batches, epochs=epochs or training["epochs"], shuffle=False,
                         initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)
    if transform is not None:
        from .augment._mixing import MixedBatches

        batches = MixedBatches(train_split.x, train_split.y, training["batch_size"], transform,
                               class_weight=weights, seed=seed, epoch=initial_epoch)
        return model.fit(batches, epochs=epochs or training["epochs"],
                         initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)
    return model.fit(
        train_split.x,
        train_split.y,
        batch_size=training["batch_size"],
        epochs=epochs or training["epochs"],
        initial_epoch=initial_epoch,
        class_weight=weights,
        callbacks=callbacks,
        shuffle=True,
        verbose=0,
    )
