"""Small rotations, zooms and shifts, as a scanner's patient positioning varies."""

from typing import Annotated

from keras import layers

from ..registry import register_policy
from ..spaces import in_range

FRACTION = in_range(0, 1)  # Keras refuses more than 1; below 0 was no augmentation


@register_policy("geometric", description="random rotation, zoom and translation")
def geometric(*, rotation: Annotated[float, FRACTION] = 0.05,
              zoom: Annotated[float, FRACTION] = 0.1,
              translation: Annotated[float, FRACTION] = 0.05) -> list:
    out = []
    if rotation > 0:
        out.append(layers.RandomRotation(rotation, fill_mode="constant"))
    if zoom > 0:
        out.append(layers.RandomZoom(zoom, fill_mode="constant"))
    if translation > 0:
        out.append(layers.RandomTranslation(translation, translation, fill_mode="constant"))
    return out
