"""Random erasing (Zhong et al. 2020): a random rectangle of each image becomes noise.

``probability`` is the share of training images that get a rectangle; its area is a
uniform fraction of the image between 2 % and ``max_area``, its aspect ratio log-uniform
in [0.3, 3.3], and it is filled with uniform noise in [0, 1] (the same in every channel,
as the X-rays are grey). Like Keras' random layers it acts only in training.
"""

from __future__ import annotations

import math
from typing import Annotated

import keras
from keras import layers, ops

from ..registry import register_policy
from ..spaces import in_range

MIN_AREA = 0.02
ASPECT = (0.3, 1 / 0.3)


@keras.saving.register_keras_serializable(package="autopneumo")
class RandomErase(layers.Layer):
    """Erase one random rectangle per image, with ``probability``, in training only."""

    def __init__(self, probability: float = 0.5, max_area: float = 0.2,
                 min_area: float = MIN_AREA, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if not 0.0 <= min_area <= 1.0 or not 0.0 <= max_area <= 1.0:
            raise ValueError(f"areas must be in [0, 1], got {min_area}, {max_area}")
        self.probability = float(probability)
        self.max_area = float(max_area)
        self.min_area = float(min(min_area, max_area))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, images, training=None):
        if not training or self.probability <= 0.0 or self.max_area <= 0.0:
            return images
        images = ops.cast(images, self.compute_dtype)
        shape = ops.shape(images)
        batch = shape[0]
        height = images.shape[1] if images.shape[1] is not None else shape[1]
        width = images.shape[2] if images.shape[2] is not None else shape[2]
        h, w = ops.cast(height, "float32"), ops.cast(width, "float32")

        def uniform(lo, hi):
            return keras.random.uniform((batch,), lo, hi, seed=self.seed_generator)

        area = uniform(self.min_area, self.max_area)
        ratio = ops.exp(uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
        box_h = ops.minimum(ops.sqrt(area * ratio) * h, h)
        box_w = ops.minimum(ops.sqrt(area / ratio) * w, w)
        top = uniform(0.0, 1.0) * (h - box_h)
        left = uniform(0.0, 1.0) * (w - box_w)
        chosen = uniform(0.0, 1.0) < self.probability
        rows = ops.arange(height, dtype="float32")[None, :, None] + 0.5
        cols = ops.arange(width, dtype="float32")[None, None, :] + 0.5

        def col(v):
            return v[:, None, None]

        inside = ops.logical_and(
            ops.logical_and(rows >= col(top), rows < col(top + box_h)),
            ops.logical_and(cols >= col(left), cols < col(left + box_w)),
        )
        inside = ops.logical_and(inside, col(chosen))[..., None]
        noise = keras.random.uniform((batch, height, width, 1), 0.0, 1.0,
                                     dtype=self.compute_dtype, seed=self.seed_generator)
        return ops.where(inside, noise, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "probability": self.probability,
                "max_area": self.max_area, "min_area": self.min_area, "seed": self.seed}


@register_policy("erasing", description="random erasing: a noise rectangle per image")
def erasing(*, probability: Annotated[float, in_range(0, 1)] = 0.5,
            max_area: Annotated[float, in_range(0, 1)] = 0.2) -> list:
    if probability <= 0 or max_area <= 0:
        return []
    return [RandomErase(probability, max_area, name="random_erase")]
