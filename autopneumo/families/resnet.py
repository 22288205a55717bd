"""ResNet-18 / ResNet-34 from scratch: basic residual blocks (He et al. 2016).

One builder of basic-block stages serves both depths (and the ``resnet18`` family):
18 is [2, 2, 2, 2] blocks per stage, 34 is [3, 4, 6, 3]. ``width`` scales every stage's
filters (64-128-256-512 at 1.0). There is no ImageNet ResNet-18/34 in
``keras.applications``, so these families take no ``weights``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import keras
from keras import layers, regularizers

from ..errors import OptionError
from ..registry import register_family
from ..spaces import NON_NEGATIVE, POSITIVE, RATE

STAGE_FILTERS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def basic_block(x, filters: int, stride: int, reg):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                      kernel_regularizer=reg)(x)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(y)
    y = layers.BatchNormalization()(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                 kernel_regularizer=reg)(shortcut)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet_features(x: keras.KerasTensor, blocks_per_stage, *, width: float, dropout: float,
                    weight_decay: float) -> keras.KerasTensor:
    """7x7/2 stem + max-pool, one stage of basic blocks per entry, global average pool."""
    reg = regularizers.L2(weight_decay) if weight_decay > 0 else None
    x = layers.Conv2D(max(8, round(64 * width)), 7, strides=2, padding="same", use_bias=False,
                      kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPool2D(3, strides=2, padding="same")(x)
    for stage, (filters, blocks) in enumerate(zip(STAGE_FILTERS, blocks_per_stage, strict=True)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, max(8, round(filters * width)), stride, reg)
    x = layers.GlobalAveragePooling2D()(x)
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    return x


@register_family(
    "resnet",
    description="ResNet-18/34 from scratch (basic blocks); depth, width, dropout, weight decay",
    min_image_size=32,
)
def resnet(
    x: keras.KerasTensor,
    *,
    depth: Literal[18, 34] = 18,
    width: Annotated[float, POSITIVE] = 0.5,  # a stage's filters: at least 8
    dropout: Annotated[float, RATE] = 0.0,
    weight_decay: Annotated[float, NON_NEGATIVE] = 1e-5,
) -> keras.KerasTensor:
    if int(depth) not in BLOCKS_PER_STAGE:
        raise OptionError(f"resnet: depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")
    return resnet_features(x, BLOCKS_PER_STAGE[int(depth)], width=width, dropout=dropout,
                           weight_decay=weight_decay)
