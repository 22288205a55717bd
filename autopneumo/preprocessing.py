"""Preprocessing that is part of every trained model (so prediction and export see it too)."""

from __future__ import annotations

from .backend import import_tensorflow_quietly

import_tensorflow_quietly()  # before Keras loads TensorFlow: quiet, thread pools sized

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="autopneumo")
class HistogramEqualization(layers.Layer):
    """Per-image, per-channel histogram equalisation of 0-255 pixels, in training and at
    inference alike: each grey level maps to its rank in the image's cumulative
    histogram, spread over 0-255 (``keras.layers.Equalization`` only acts in training).
    Outputs float32 0-255."""

    def __init__(self, bins: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.bins = int(bins)

    def call(self, images):
        shape = ops.shape(images)
        channels = images.shape[-1]
        # round, not truncate: after the crop's resize the levels are floats (127.999 is 128)
        levels = ops.clip(ops.cast(ops.round(images), "int32"), 0, self.bins - 1)
        rows = ops.reshape(ops.moveaxis(levels, -1, 1), (-1, shape[1] * shape[2]))  # (B*C, HW)
        hist = self._histograms(rows)  # (B*C, bins)
        cdf = ops.cumsum(hist, axis=-1)
        # the darkest level present maps to 0: subtract the cdf below it
        first = ops.min(ops.where(hist > 0, cdf, ops.max(cdf, axis=-1, keepdims=True)),
                        axis=-1, keepdims=True)
        total = cdf[:, -1:]
        lut = (cdf - first) / ops.maximum(total - first, 1.0) * (self.bins - 1)
        lut = ops.where(total - first > 0, lut, ops.cast(ops.arange(self.bins), "float32"))
        out = ops.take_along_axis(ops.maximum(lut, 0.0), rows, axis=-1)
        out = ops.reshape(out, (shape[0], channels, shape[1], shape[2]))
        return ops.moveaxis(out, 1, -1)

    def _histograms(self, rows):
        """Counts of each level per row, as one segment sum over (row, level) ids: works
        on every backend (JAX cannot trace a batched ``bincount``)."""
        n = ops.shape(rows)[0]
        ids = ops.reshape(rows + ops.expand_dims(ops.arange(n, dtype="int32") * self.bins, -1),
                          (-1,))
        counts = ops.segment_sum(ops.ones_like(ids, dtype="float32"), ids,
                                 num_segments=n * self.bins)
        return ops.reshape(counts, (n, self.bins))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        return super().get_config() | {"bins": self.bins}


@keras.saving.register_keras_serializable(package="autopneumo")
class PerImageStandardization(layers.Layer):
    """Each image to zero mean and unit standard deviation over its pixels (and
    channels), in training and at inference alike, as ``tf.image.per_image_standardization``
    (the deviation is floored at 1/sqrt(pixels)), on every backend. Placed after the
    augmentation: the model is then blind to a global change of brightness or contrast,
    the invariance photometric augmentation teaches only approximately."""

    def call(self, images):
        x = ops.cast(images, "float32")
        axes = tuple(range(1, len(x.shape)))
        mean = ops.mean(x, axis=axes, keepdims=True)
        std = ops.std(x, axis=axes, keepdims=True)
        pixels = 1
        for dim in x.shape[1:]:
            pixels *= dim
        return (x - mean) / ops.maximum(std, 1.0 / float(pixels) ** 0.5)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="autopneumo")
class Augmentation(keras.Sequential):
    """A policy's layers, run only when the model is called with ``training=True`` (fit).
    Keras' random layers default to ``training=True``, so in a plain ``Sequential`` the saved
    model called without ``training`` (``model(x)``, or ``model.export()``'s serving
    graph) flipped, rotated and re-exposed what it scored; here None means off."""

    def call(self, inputs, training=False, mask=None, **kwargs):
        return super().call(inputs, training=bool(training), mask=mask, **kwargs)
