"""Random horizontal flip: the classroom study's augmented model."""

from typing import Literal

from keras import layers

from ..registry import register_policy


@register_policy("flip", description="random horizontal flip (the classroom policy)")
def flip(*, mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"
         ) -> list:
    return [layers.RandomFlip(mode)]
