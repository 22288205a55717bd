"""Small rotations, zooms and shifts, as a scanner's patient positioning varies."""

from keras import layers

from ..registry import register_policy


@register_policy("geometric", description="random rotation, zoom and translation")
def geometric(*, rotation: float = 0.05, zoom: float = 0.1, translation: float = 0.05) -> list:
    out = []
    if rotation > 0:
        out.append(layers.RandomRotation(rotation, fill_mode="constant"))
    if zoom > 0:
        out.append(layers.RandomZoom(zoom, fill_mode="constant"))
    if translation > 0:
        out.append(layers.RandomTranslation(translation, translation, fill_mode="constant"))
    return out
