"""The classroom separable-conv CNN (keras-io ``xray_classification_with_tpus``).

Two Conv2D(16) + MaxPool, separable-conv blocks of 32/64/128/256 filters with
BatchNorm + MaxPool, then dense blocks 512/128/64 with dropout 0.7/0.5/0.3. Width,
depth, dropout and the dense sizes are tunable; the defaults are the classroom model.
"""

from __future__ import annotations

import re
from typing import Annotated

import keras
from keras import layers

from ..registry import register_family
from ..spaces import POSITIVE, RATE, ValueRule, in_range

SEPARABLE_FILTERS = (32, 64, 128, 256)
# what the builder takes (a space's value outside: refused before a search): more blocks
# than SEPARABLE_FILTERS built the same model as 4, a negative count fewer blocks
DEPTH = in_range(0, len(SEPARABLE_FILTERS), integer=True)
DENSE_UNITS = ValueRule(
    lambda v: isinstance(v, str) and re.fullmatch(r"[1-9][0-9]*(-[1-9][0-9]*)*", v) is not None,
    "positive units per dense layer joined by '-', like '512-128-64'")


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
    width: Annotated[float, POSITIVE] = 1.0,
    depth: Annotated[int, DEPTH] = 4,
    conv_dropout: Annotated[float, RATE] = 0.2,
    dense_units: Annotated[str, DENSE_UNITS] = "512-128-64",
    dense_dropout: Annotated[float, RATE] = 0.7,
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
