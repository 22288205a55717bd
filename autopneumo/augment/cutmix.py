"""CutMix (Yun et al. 2019): a box of one training image is pasted into another, and the
labels mix by area.

A batch-level policy: the model gets no augmentation layer; the training loop applies
``cutmix_batch`` to each training batch (see ``_mixing.py`` for the wiring).
"""

import functools
from typing import Annotated

from ..registry import register_policy
from ..spaces import NON_NEGATIVE, in_range
from ._mixing import BatchPolicy, cutmix_batch


@register_policy("cutmix", description="CutMix: paste a box from another training image, "
                                       "labels mixed by area (batch-level)")
def cutmix(*, alpha: Annotated[float, NON_NEGATIVE] = 1.0,
           probability: Annotated[float, in_range(0, 1)] = 0.5) -> BatchPolicy:
    return BatchPolicy(transform=functools.partial(cutmix_batch, alpha=alpha,
                                                   probability=probability))
