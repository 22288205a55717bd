"""Geometric then photometric augmentation: positioning and exposure both vary."""

from ..registry import register_policy
from .geometric import geometric
from .photometric import photometric


@register_policy("combined", description="random rotation, zoom, translation, then contrast, "
                                         "brightness, Gaussian noise and sharpness")
def combined(*, rotation: float = 0.05, zoom: float = 0.1, translation: float = 0.05,
             contrast: float = 0.2, brightness: float = 0.1, noise: float = 0.02,
             sharpness: float = 0.0) -> list:
    return (geometric(rotation=rotation, zoom=zoom, translation=translation)
            + photometric(contrast=contrast, brightness=brightness, noise=noise,
                          sharpness=sharpness))
