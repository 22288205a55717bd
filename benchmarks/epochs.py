"""Timing trial epochs: the data subset, the trial's hypermodel, epoch and callback timers.

A trial epoch here is exactly what keras-tuner runs inside ``run_trial``:
``PneumoniaHyperModel.fit`` (uint8 numpy in, Rescaling in the model, class weights, the
``ValidationObjective`` predict over the validation split, early stopping, NaN check).
keras-tuner's per-epoch checkpoint is not part of it: a trial's one checkpoint is its
model.keras, written by the evaluation after the fit. Epochs are timed from
``on_epoch_begin`` to ``on_epoch_end`` of a callback placed last, so every other
callback's end-of-epoch work is inside.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from common import Context


@dataclass
class Subset:
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    source: str


def subset(ctx: Context, size: int, n_train: int, n_val: int, seed: int = 0) -> Subset:
    """``n_train`` / ``n_val`` images of the real data's patient split at ``size`` px, or
    random images where the data folder is absent (timings do not depend on pixels)."""
    rng = np.random.default_rng(seed)
    if ctx.data is not None:
        from autopneumo.data import load_dataset

        ds = load_dataset(ctx.data, image_size=size, channels=1)
        ti = rng.permutation(len(ds.train))[:n_train]
        vi = rng.permutation(len(ds.val))[:n_val]
        return Subset(ds.train.x[ti], ds.train.y[ti], ds.val.x[vi], ds.val.y[vi],
                      f"Kermany patient split, {len(ti)} train / {len(vi)} val images")
    x = rng.integers(0, 256, (n_train + n_val, size, size, 1), dtype=np.uint8)
    y = (rng.random(n_train + n_val) < 0.74).astype(np.uint8)
    return Subset(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                  f"random uint8 images (no data folder), {n_train} train / {n_val} val")


def hypermodel(family: str, policy: str, data: Subset, epochs: int):
    """The trial's hypermodel and hyperparameters at the search space's defaults (batch
    size 32); patience is lifted so early stopping never ends a timed fit."""
    import keras_tuner as kt

    from autopneumo.data.dataset import Split
    from autopneumo.hypermodel import PneumoniaHyperModel
    from autopneumo.tuning import SearchConfig, resolve_spaces

    resolved = resolve_spaces(SearchConfig(family, policy, epochs=epochs))
    spaces = dict(resolved["spaces"])
    spaces["training"] = spaces["training"].with_fixed(batch_size=32, patience=10_000)

    def split(x, y):
        names = np.array([f"f{i}" for i in range(len(y))])
        return Split(x, y, names, names.copy())

    hm = PneumoniaHyperModel(resolved["family"], resolved["policy"], spaces,
                             split(data.train_x, data.train_y), split(data.val_x, data.val_y),
                             recall_target=0.95)
    return hm, kt.HyperParameters()


def bare_clone(model):
    """The same architecture with a float32 input, compiled the same way (fresh weights)."""
    import keras

    inputs = keras.Input(model.inputs[0].shape[1:], dtype="float32", name="image")
    clone = keras.models.clone_model(model, input_tensors=inputs)
    clone.compile_from_config(model.get_compile_config())
    return clone


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()


@contextlib.contextmanager
def timed_validation() -> Iterator[list[float]]:
    """Collect the seconds of every ``ValidationObjective.on_epoch_end`` (its predict)."""
    from autopneumo import hypermodel as hm_module

    times: list[float] = []
    original = hm_module.ValidationObjective.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        original(self, epoch, logs)
        times.append(time.perf_counter() - start)

    hm_module.ValidationObjective.on_epoch_end = on_epoch_end
    try:
        yield times
    finally:
        hm_module.ValidationObjective.on_epoch_end = original


def clear_session() -> None:
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
