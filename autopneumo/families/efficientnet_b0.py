"""EfficientNet-B0 (Tan & Le 2019), built from ``keras.applications``' EfficientNet.

``width`` and ``depth`` are EfficientNet's compound-scaling coefficients: 1.0 / 1.0 is
B0 itself (the one ImageNet weights fit); smaller values keep a CPU search and the tests
fast, and the default is the half-width, half-depth model. ``drop_connect`` is the
stochastic-depth rate inside the MBConv blocks, ``dropout`` the rate before the head.

Keras' EfficientNet rescales by 1/255 and normalises inside the network; our input is
already [0, 1], so it is scaled back to [0, 255] first. From scratch the inner
normalisation is the identity; with ``weights`` (a local file, e.g. Keras'
``efficientnetb0_notop.h5``; nothing is downloaded) the input is repeated to RGB and the
inner normalisation is set to the ImageNet mean and std (Keras' ``weights="imagenet"``
does the same with an extra rescaling layer).
"""

from __future__ import annotations

import functools
from typing import Annotated

import keras
import numpy as np
from keras import layers

from ..errors import OptionError
from ..registry import register_family
from ..spaces import POSITIVE, RATE
from ._applications import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    attach_backbone,
    check_weights_path,
    pooled,
    pretrained,
    to_rgb,
)


def backbone(*, input_tensor=None, input_shape=None, width: float = 1.0, depth: float = 1.0,
             drop_connect: float = 0.2) -> keras.Model:
    """The EfficientNet feature extractor (no top, no pooling, random initialisation)."""
    if width <= 0 or depth <= 0 or not 0.0 <= drop_connect < 1.0:
        raise OptionError(f"efficientnet_b0: width and depth must be positive and "
                          f"drop_connect in [0, 1), got {width}, {depth}, {drop_connect}")
    common = dict(include_top=False, weights=None, input_tensor=input_tensor,
                  input_shape=input_shape, pooling=None)
    # the generic constructor behind EfficientNetB0-B7 is not exported
    from keras.src.applications.efficientnet import EfficientNet

    return EfficientNet(float(width), float(depth), 224, dropout_rate=0.0,
                        drop_connect_rate=float(drop_connect),
                        name="efficientnet_backbone", **common)


@pretrained(width=1.0, depth=1.0)
@register_family(
    "efficientnet_b0",
    description="EfficientNet-B0 (keras.applications); width/depth scaling, drop-connect, "
                "dropout; --weights",
    min_image_size=32,
)
def efficientnet_b0(
    x: keras.KerasTensor,
    *,
    width: Annotated[float, POSITIVE] = 0.5,
    depth: Annotated[float, POSITIVE] = 0.5,
    drop_connect: Annotated[float, RATE] = 0.2,
    dropout: Annotated[float, RATE] = 0.2,
    weights: str | None = None,
) -> keras.KerasTensor:
    path = check_weights_path(weights, "efficientnet_b0")
    if path is not None:
        x = to_rgb(x, "efficientnet_rgb")
    x = layers.Rescaling(255.0, name="efficientnet_to_255")(x)  # the backbone divides by 255
    make = functools.partial(backbone, width=width, depth=depth, drop_connect=drop_connect)
    features, own = attach_backbone(make, x, weights=path, family="efficientnet_b0")
    if path is not None:
        norm = next(layer for layer in own if isinstance(layer, layers.Normalization))
        norm.adapt_mean.assign(np.asarray(IMAGENET_MEAN, "float32"))
        norm.adapt_variance.assign(np.square(np.asarray(IMAGENET_STD, "float32")))
        norm.finalize_state()
    return pooled(features, dropout, "efficientnet")
