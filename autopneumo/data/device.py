"""The training split held on the accelerator (``--data-on-device``).

Keras' own array input slices numpy on the host and copies every batch to the device;
under JAX it even copies a device array back to the host first (Keras 3.15's
``convert_to_sliceable`` turns a ``jax.Array`` into numpy). ``DeviceBatches`` uploads
the uint8 images, labels and sample weights once and cuts each shuffled batch out of
them with a gather on the device, so an epoch moves only the batch indices.

Only the JAX backend keeps such batches where they are: TensorFlow's ``PyDataset``
input runs through ``tf.data.Dataset.from_generator``, which copies them to the host
(``device_supported`` says which case holds).
"""

from __future__ import annotations

import math

from ..backend import import_tensorflow_quietly

import_tensorflow_quietly()  # before Keras loads TensorFlow: quiet, thread pools sized

import keras
import numpy as np


def device_supported() -> bool:
    """Whether batches cut on the device reach the train step without a host copy."""
    return keras.backend.backend() == "jax"


class DeviceBatches(keras.utils.PyDataset):
    """Shuffled ``(x, y, sample_weight)`` batches gathered from arrays on the device.

    The order is a permutation per epoch drawn from ``(seed, epoch)``, as in
    ``MixedBatches``; weights are the class weights per image (1.0 without them), so
    the loss is the one ``model.fit(x, y, class_weight=...)`` computes."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *,
                 class_weight: dict[int, float] | None = None, seed: int = 0, epoch: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        y = np.asarray(y, dtype=np.float32)
        weight = np.ones_like(y) if class_weight is None else np.where(
            y > 0.5, float(class_weight[1]), float(class_weight[0])).astype(np.float32)
        self.n = len(y)
        self.x = keras.ops.convert_to_tensor(np.asarray(x))  # stays uint8
        self.y = keras.ops.convert_to_tensor(y)
        self.weight = keras.ops.convert_to_tensor(weight)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = int(epoch)  # the first epoch's number, as in MixedBatches
        self.order = self._order()

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch, 1]).permutation(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if len(idx) == 0:
            raise IndexError(index)
        idx = keras.ops.convert_to_tensor(idx.astype(np.int32))
        return tuple(keras.ops.take(a, idx, axis=0) for a in (self.x, self.y, self.weight))

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()
