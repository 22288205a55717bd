"""No augmentation: the classroom study's first model."""

from ..registry import register_policy


@register_policy("none", description="no augmentation")
def none() -> list:
    return []
