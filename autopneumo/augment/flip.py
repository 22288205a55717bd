"""Random horizontal flip: the classroom study's augmented model."""

from keras import layers

from ..registry import register_policy


@register_policy("flip", description="random horizontal flip (the classroom policy)")
def flip(*, mode: str = "horizontal") -> list:
    return [layers.RandomFlip(mode)]
