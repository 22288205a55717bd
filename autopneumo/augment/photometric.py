"""Contrast, brightness and noise, as exposure and detectors vary between scanners."""

from keras import layers

from ..registry import register_policy


@register_policy("photometric", description="random contrast, brightness and Gaussian noise")
def photometric(*, contrast: float = 0.2, brightness: float = 0.1, noise: float = 0.02) -> list:
    out = []
    if contrast > 0:
        out.append(layers.RandomContrast(contrast, value_range=(0.0, 1.0)))
    if brightness > 0:
        out.append(layers.RandomBrightness(brightness, value_range=(0.0, 1.0)))
    if noise > 0:
        out.append(layers.GaussianNoise(noise))
    return out
