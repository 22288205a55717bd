"""The classroom separable-conv CNN (keras-io ``xray_classification_with_tpus``).

Two Conv2D(16) + MaxPool, separable-conv blocks of 32/64/128/256 filters with
BatchNorm + MaxPool, then dense blocks 512/128/64 with dropout 0.7/0.5/0.3. Width,
depth, dropout and the dense sizes are tunable; the defaults are the classroom model.
"""

from __future__ import annotations

import keras
from keras import layers

from ..registry import register_family

SEPARABLE_FILTERS = (32, 64, 128, 256)


def conv_block(x, filters: int):
    x = layers.SeparableConv2D(filters, 3, activation="relu", padding="same")(x)
    x = layers.SeparableConv2D(filters, 3, activation="relu", padding="same")(x)
    x = layers.BatchNormalization()(x)
    return layers.MaxPool2D()(x)


def dense_block(x, units: int, dropout: float):
    x = layers.Dense(units, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    return layers.Dropout(dropout)(x)


@register_family(
    "base_cnn",
    description="classroom separable-conv CNN (conv 16x2, separable blocks 32-256, dense 512/128/64)",
    min_image_size=32,
)
def base_cnn(
    x: keras.KerasTensor,
    *,
    width: float = 1.0,
    depth: int = 4,
    conv_dropout: float = 0.2,
    dense_units: str = "512-128-64",
    dense_dropout: float = 0.7,
) -> keras.KerasTensor:
    """``depth`` separable blocks (2-4); ``dense_dropout`` is the first dense block's rate,
    each later block uses 0.2 less (the classroom's 0.7 / 0.5 / 0.3)."""
    x = layers.Conv2D(max(4, round(16 * width)), 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(max(4, round(16 * width)), 3, activation="relu", padding="same")(x)
    x = layers.MaxPool2D()(x)
    for i, filters in enumerate(SEPARABLE_FILTERS[:depth]):
        x = conv_block(x, max(4, round(filters * width)))
        if i >= 2 and conv_dropout > 0:  # the classroom model drops out after 128 and 256
            x = layers.Dropout(conv_dropout)(x)
    x = layers.Flatten()(x)
    for i, units in enumerate(int(u) for u in str(dense_units).split("-")):
        x = dense_block(x, units, max(0.0, dense_dropout - 0.2 * i))
    return x
