"""MobileNetV3-Small (Howard et al. 2019), built from ``keras.applications``.

``alpha`` is the width multiplier, ``minimalistic`` drops squeeze-excite, hard-swish and
5x5 kernels; ``dropout`` is the rate before the head. Keras' built-in input rescaling is
off: from scratch the backbone reads the [0, 1] image as it is.

Supports ``weights`` (a local file, e.g. Keras'
``weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5``; nothing is downloaded): the
input is repeated to RGB and mapped to [-1, 1] as the ImageNet weights expect. Keras
publishes ImageNet weights for alpha 0.75 and 1.0 (and 1.0 minimalistic); a search with
``--weights`` pins alpha 1.0, not minimalistic, so it takes that file only (the others
are refused in one line).
"""

from __future__ import annotations

import functools
from typing import Annotated

import keras
from keras import layers

from ..registry import register_family
from ..spaces import POSITIVE, RATE
from ._applications import attach_backbone, check_weights_path, pooled, pretrained, to_rgb


def backbone(*, input_tensor=None, input_shape=None, alpha: float = 1.0,
             minimalistic: bool = False) -> keras.Model:
    """The MobileNetV3-Small feature extractor (no top, no pooling, random initialisation)."""
    return keras.applications.MobileNetV3Small(
        input_shape=input_shape, alpha=float(alpha), minimalistic=bool(minimalistic),
        include_top=False, weights=None, input_tensor=input_tensor, pooling=None,
        include_preprocessing=False, name="mobilenet_v3_small_backbone",
    )


@pretrained(alpha=1.0, minimalistic=False)
@register_family(
    "mobilenet_v3_small",
    description="MobileNetV3-Small (keras.applications); width multiplier, minimalistic, "
                "dropout; --weights",
    min_image_size=32,
)
def mobilenet_v3_small(
    x: keras.KerasTensor,
    *,
    alpha: Annotated[float, POSITIVE] = 0.75,
    minimalistic: bool = False,
    dropout: Annotated[float, RATE] = 0.2,
    weights: str | None = None,
) -> keras.KerasTensor:
    path = check_weights_path(weights, "mobilenet_v3_small")
    if path is not None:  # ImageNet MobileNetV3 reads RGB in [-1, 1]
        x = layers.Rescaling(2.0, offset=-1.0, name="mobilenet_to_pm1")(
            to_rgb(x, "mobilenet_rgb"))
    make = functools.partial(backbone, alpha=alpha, minimalistic=minimalistic)
    features, _ = attach_backbone(make, x, weights=path, family="mobilenet_v3_small")
    return pooled(features, dropout, "mobilenet")
