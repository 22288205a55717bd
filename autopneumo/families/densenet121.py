"""DenseNet-121 (Huang et al. 2017), the CheXNet backbone (Rajpurkar et al. 2017).

Built from ``keras.applications``' DenseNet. ``blocks`` sets the dense layers per block:
``6-12-24-16`` is DenseNet-121 itself (the one ImageNet weights fit); the shallower
settings are the same design at a CPU-friendly depth, and the default keeps a quick
search (and the conformance tests) fast. Growth rate 32 and compression 0.5 are fixed.

Supports ``weights`` (a local ImageNet file, e.g. Keras'
``densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5``; nothing is downloaded):
the input is repeated to RGB and standardised with the ImageNet mean and std.
"""

from __future__ import annotations

import functools
from typing import Annotated

import keras

from ..errors import OptionError
from ..registry import register_family
from ..spaces import RATE, ValueRule
from ._applications import (
    attach_backbone,
    check_weights_path,
    imagenet_standardize,
    pooled,
    pretrained,
    to_rgb,
)

DENSENET121 = "6-12-24-16"


def parse_blocks(blocks: str) -> list[int]:
    try:
        out = [int(b) for b in str(blocks).split("-")]
    except ValueError:
        out = []
    if len(out) != 4 or min(out) < 1:
        raise OptionError(f"densenet121: blocks must be four positive counts like "
                          f"'{DENSENET121}', got {blocks!r}")
    return out


def _blocks_ok(blocks) -> bool:
    try:
        parse_blocks(blocks)
    except OptionError:
        return False
    return isinstance(blocks, str)


BLOCKS = ValueRule(_blocks_ok, f"four positive counts joined by '-', like '{DENSENET121}'")


def backbone(*, input_tensor=None, input_shape=None, blocks: str = DENSENET121) -> keras.Model:
    """The DenseNet feature extractor (no top, no pooling, random initialisation)."""
    counts = parse_blocks(blocks)
    common = dict(include_top=False, weights=None, input_tensor=input_tensor,
                  input_shape=input_shape, pooling=None)
    if counts == [6, 12, 24, 16]:
        return keras.applications.DenseNet121(name="densenet121_backbone", **common)
    # the generic constructor behind DenseNet121/169/201 is not exported
    from keras.src.applications.densenet import DenseNet

    return DenseNet(counts, name=f"densenet{sum(counts) * 2 + 5}_backbone", **common)


@pretrained(blocks=DENSENET121)
@register_family(
    "densenet121",
    description="DenseNet-121 (CheXNet backbone, keras.applications); depth, dropout; "
                "--weights",
    min_image_size=32,
)
def densenet121(
    x: keras.KerasTensor,
    *,
    blocks: Annotated[str, BLOCKS] = DENSENET121,  # the real DenseNet-121; its space searches smaller ones
    dropout: Annotated[float, RATE] = 0.2,
    weights: str | None = None,
) -> keras.KerasTensor:
    path = check_weights_path(weights, "densenet121")
    if path is not None:
        x = imagenet_standardize(to_rgb(x, "densenet_rgb"), "densenet_imagenet_norm")
    make = functools.partial(backbone, blocks=blocks)
    features, _ = attach_backbone(make, x, weights=path, family="densenet121")
    return pooled(features, dropout, "densenet")
