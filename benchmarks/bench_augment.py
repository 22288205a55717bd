"""Augmentation cost: steady-state trial epoch time of base_cnn at 64 px with each
registered policy / with ``none`` (--quick: none, combined, randaugment).

Every policy's model is built by ``PneumoniaHyperModel`` at its search space's defaults
(batch size 32) and traced by one untimed epoch; then rounds of one epoch per policy
follow, each round in a new random order, so a busy neighbour slows all alike. The epoch is the
trial's (with the validation predict, see ``epochs.py``); the ratio of the training part
alone (epoch minus validation) is printed too. Medians over rounds.
"""

from __future__ import annotations

import inspect

import numpy as np
from common import Context, Result, check, fmt, median, ratio, spread
from epochs import clear_session, epoch_timer, hypermodel, subset, timed_validation

TARGET = "<= 1.3"
QUICK_POLICIES = ("none", "combined", "randaugment")


def run(ctx: Context) -> list[Result]:
    from autopneumo import hypermodel as hm_module
    from autopneumo.registry import POLICIES

    size = 64
    n_train, rounds = (128, 2) if ctx.quick else (256, 4)
    policies = ["none"] + [p for p in POLICIES.names() if p != "none"]
    if ctx.quick:  # tracing nine models takes two minutes: the layer-heavy ones only
        policies = [p for p in policies if p in QUICK_POLICIES]
    clear_session()
    data = subset(ctx, size, n_train, n_train // 4)
    fits = {}
    for policy in policies:
        hm, hp = hypermodel("base_cnn", policy, data, epochs=1)
        fits[policy] = (hm, hp, hm.build(hp), epoch_timer())
    epochs: dict[str, list[float]] = {p: [] for p in policies}
    val: dict[str, list[float]] = {p: [] for p in policies}
    with timed_validation() as val_times:
        rng = np.random.default_rng(0)
        for r in range(rounds + 1):  # round 0 traces and is not kept
            order = list(rng.permutation(policies)) if r else policies
            for policy in order:
                hm, hp, model, timer = fits[policy]
                hm.fit(hp, model, epochs=1, callbacks=[timer])
                if r:
                    epochs[policy].append(timer.times[-1])
                    val[policy].append(val_times[-1])
            ctx.log(f"  round {r}{' (tracing, not kept)' if r == 0 else ''} done")
    base = median(epochs["none"])
    base_train = median([e - v for e, v in zip(epochs["none"], val["none"], strict=True)])
    sides = {}
    ratios, train_ratios = {}, {}
    for policy in policies:
        train_only = [e - v for e, v in zip(epochs[policy], val[policy], strict=True)]
        ratios[policy] = ratio(median(epochs[policy]), base)
        train_ratios[policy] = ratio(median(train_only), base_train)
        sides[f"{policy}: epoch s (ratio; training part only)"] = (
            f"{spread(epochs[policy])} ({fmt(ratios[policy], 3)}; "
            f"{fmt(train_ratios[policy], 3)})")
    heaviest = max(ratios, key=lambda p: ratios[p])
    value = ratios[heaviest]
    wired = "MixedBatches" in inspect.getsource(hm_module.PneumoniaHyperModel.fit)
    notes = [data.source + f"; base_cnn at its defaults, {size} px, batch 32",
             f"heaviest: {heaviest} (training part alone: {fmt(train_ratios[heaviest], 3)}x)",
             "mixup / cutmix are batch-level transforms; PneumoniaHyperModel.fit "
             + ("applies them (MixedBatches)" if wired else
                "does not apply them in this checkout: their models equal none's, so their "
                "ratios show this run's noise")]
    return [Result("augment", f"augmentation cost, heaviest policy ({heaviest}) / none",
                   "trial epoch time with the heaviest policy / with none (base_cnn, 64 px)",
                   sides, value, TARGET, check(value, TARGET), notes)]
