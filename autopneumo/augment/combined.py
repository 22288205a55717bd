"""Geometric then photometric augmentation: positioning and exposure both vary."""

from typing import Annotated

from ..registry import register_policy
from ..spaces import in_range
from .geometric import FRACTION, geometric
from .photometric import photometric


@register_policy("combined", description="random rotation, zoom, translation, then contrast, "
                                         "brightness, Gaussian noise and sharpness")
def combined(*, rotation: Annotated[float, FRACTION] = 0.05,
             zoom: Annotated[float, FRACTION] = 0.1,
             translation: Annotated[float, FRACTION] = 0.05,
             contrast: Annotated[float, FRACTION] = 0.2,
             brightness: Annotated[float, FRACTION] = 0.1,
             noise: Annotated[float, FRACTION] = 0.02,
             sharpness: Annotated[float, in_range(0, 0.5)] = 0.0) -> list:
    return (geometric(rotation=rotation, zoom=zoom, translation=translation)
            + photometric(contrast=contrast, brightness=brightness, noise=noise,
                          sharpness=sharpness))
