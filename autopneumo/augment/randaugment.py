"""RandAugment (Cubuk et al. 2020) for grey [0, 1] X-rays, built from Keras layers.

Each training image gets ``num_ops`` operations in a row, each picked uniformly (per
image) from: identity, rotate, shear x, shear y, translate x, translate y, brightness,
contrast, sharpness, posterize, auto-contrast and equalize. ``magnitude`` in (0, 1] sets
every operation's strength (at 1.0: rotation up to 30 degrees, shear 0.3, translation 30 %
of the size, brightness +-0.3, contrast +-50 %, posterize to 4-8 bits).

Keras' own ``keras.layers.RandAugment`` picks one set of operations per batch, adds
solarize and colour operations (meaningless or unrealistic on grey X-rays), and its
``factor`` maps to rotations of up to ``factor * 360`` degrees and to harsher
posterization at smaller factors; hence this equivalent. It acts only in training.
"""

from __future__ import annotations

from typing import Annotated

import keras
from keras import layers, ops

from ..preprocessing import HistogramEqualization
from ..registry import register_policy
from ..spaces import in_range

VALUE_RANGE = (0.0, 1.0)


def operations(magnitude: float) -> list[layers.Layer]:
    """The RandAugment operations at ``magnitude`` (identity is index 0, not listed)."""
    m = float(magnitude)
    geometric = dict(fill_mode="constant", fill_value=0.0)
    return [
        layers.RandomRotation(30.0 / 360.0 * m, **geometric),
        layers.RandomShear(x_factor=0.3 * m, y_factor=0.0, **geometric),
        layers.RandomShear(x_factor=0.0, y_factor=0.3 * m, **geometric),
        layers.RandomTranslation(0.0, 0.3 * m, **geometric),
        layers.RandomTranslation(0.3 * m, 0.0, **geometric),
        layers.RandomBrightness(0.3 * m, value_range=VALUE_RANGE),
        layers.RandomContrast(0.5 * m, value_range=VALUE_RANGE),
        layers.RandomSharpness((0.5 - 0.45 * m, 0.5 + 0.45 * m), value_range=VALUE_RANGE),
        # keeps a random bits..8 bits per image: a tuple, since Keras reads one int k as
        # (1, k) with k exclusive, i.e. 1 to k-1 bits (2 grey levels at any magnitude)
        layers.RandomPosterization((max(4, 8 - round(4 * m)), 9), value_range=VALUE_RANGE),
        layers.AutoContrast(value_range=VALUE_RANGE),
        Equalize(),
    ]


class Equalize(layers.Layer):
    """Histogram equalisation of each [0, 1] image on its own (``keras.layers.Equalization``
    pools one histogram over the whole batch, so an image's result depended on its batch
    mates, even those that drew another operation)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.equalize = HistogramEqualization()

    def build(self, input_shape):  # no weights, here or in the equaliser
        self.built = True

    def call(self, images, training=None):
        dtype = images.dtype
        out = self.equalize(ops.cast(images, "float32") * 255.0) / 255.0
        return ops.cast(out, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="autopneumo")
class RandAugment(layers.Layer):
    """``num_ops`` random operations per image at ``magnitude``, in training only."""

    def __init__(self, num_ops: int = 2, magnitude: float = 0.3, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if int(num_ops) < 0:
            raise ValueError(f"num_ops must be >= 0, got {num_ops}")
        if not 0.0 < magnitude <= 1.0:
            raise ValueError(f"magnitude must be in (0, 1], got {magnitude}")
        self.num_ops = int(num_ops)
        self.magnitude = float(magnitude)
        self.seed = seed
        self.choices = operations(self.magnitude)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        for op in self.choices:
            op.build(input_shape)
        self.built = True

    def call(self, images, training=None):
        if not training or self.num_ops == 0:
            return images
        images = ops.cast(images, self.compute_dtype)
        batch = ops.shape(images)[0]
        for _ in range(self.num_ops):
            pick = keras.random.randint((batch,), 0, len(self.choices) + 1,
                                        seed=self.seed_generator)[:, None, None, None]
            out = images
            for k, op in enumerate(self.choices, start=1):
                out = ops.where(pick == k, ops.cast(op(images, training=True), out.dtype), out)
            images = ops.clip(out, *VALUE_RANGE)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_ops": self.num_ops, "magnitude": self.magnitude,
                "seed": self.seed}


@register_policy("randaugment", description="RandAugment: num_ops random operations per "
                                            "image at one magnitude")
def randaugment(*, num_ops: Annotated[int, in_range(0, integer=True)] = 2,
                magnitude: Annotated[float, in_range(0, 1, low_open=True)] = 0.3) -> list:
    if num_ops <= 0:
        return []
    return [RandAugment(num_ops, magnitude, name="randaugment")]
