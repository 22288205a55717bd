"""ResNet-18 from scratch: basic residual blocks [2, 2, 2, 2] (He et al. 2016).

The same network as ``resnet`` at depth 18 (one shared builder in ``resnet.py``).
"""

from __future__ import annotations

from typing import Annotated

import keras

from ..registry import register_family
from ..spaces import NON_NEGATIVE, POSITIVE, RATE
from .resnet import BLOCKS_PER_STAGE, resnet_features


@register_family(
    "resnet18",
    description="ResNet-18 from scratch (basic blocks [2,2,2,2]); width, dropout, weight decay",
    min_image_size=32,
)
def resnet18(
    x: keras.KerasTensor,
    *,
    width: Annotated[float, POSITIVE] = 0.5,
    dropout: Annotated[float, RATE] = 0.0,
    weight_decay: Annotated[float, NON_NEGATIVE] = 1e-5,
) -> keras.KerasTensor:
    return resnet_features(x, BLOCKS_PER_STAGE[18], width=width, dropout=dropout,
                           weight_decay=weight_decay)
