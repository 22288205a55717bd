"""ResNet-18 from scratch: basic residual blocks [2, 2, 2, 2] (He et al. 2016)."""

from __future__ import annotations

import keras
from keras import layers, regularizers

from ..registry import register_family

STAGE_FILTERS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = (2, 2, 2, 2)


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


@register_family(
    "resnet18",
    description="ResNet-18 from scratch (basic blocks [2,2,2,2]); width, dropout, weight decay",
    min_image_size=32,
)
def resnet18(
    x: keras.KerasTensor,
    *,
    width: float = 1.0,
    dropout: float = 0.0,
    weight_decay: float = 0.0,
) -> keras.KerasTensor:
    reg = regularizers.L2(weight_decay) if weight_decay > 0 else None
    x = layers.Conv2D(max(8, round(64 * width)), 7, strides=2, padding="same", use_bias=False,
                      kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPool2D(3, strides=2, padding="same")(x)
    for stage, (filters, blocks) in enumerate(zip(STAGE_FILTERS, BLOCKS_PER_STAGE, strict=True)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, max(8, round(filters * width)), stride, reg)
    x = layers.GlobalAveragePooling2D()(x)
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    return x
