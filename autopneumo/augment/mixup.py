"""MixUp (Zhang et al. 2018): training images and labels are blended in pairs.

A batch-level policy: the model gets no augmentation layer; the training loop applies
``mixup_batch`` to each training batch (see ``_mixing.py`` for the wiring).
"""

import functools

from ..registry import register_policy
from ._mixing import BatchPolicy, mixup_batch


@register_policy("mixup", description="MixUp: blend pairs of training images and their "
                                      "labels (batch-level)")
def mixup(*, alpha: float = 0.2, probability: float = 1.0) -> BatchPolicy:
    return BatchPolicy(transform=functools.partial(mixup_batch, alpha=alpha,
                                                   probability=probability))
