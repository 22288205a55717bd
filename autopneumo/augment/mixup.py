"""MixUp (Zhang et al. 2018): training images and labels are blended in pairs.

A batch-level policy: the model gets no augmentation layer; the training loop applies
``mixup_batch`` to each training batch (see ``_mixing.py`` for the wiring).
"""

import functools
from typing import Annotated

from ..registry import register_policy
from ..spaces import NON_NEGATIVE, in_range
from ._mixing import BatchPolicy, mixup_batch


@register_policy("mixup", description="MixUp: blend pairs of training images and their "
                                      "labels (batch-level)")
def mixup(*, alpha: Annotated[float, NON_NEGATIVE] = 0.2,
          probability: Annotated[float, in_range(0, 1)] = 1.0) -> BatchPolicy:
    return BatchPolicy(transform=functools.partial(mixup_batch, alpha=alpha,
                                                   probability=probability))
