"""Trial overhead: (trial wall-clock - time inside fit epochs) / trial wall-clock.

A real ``autopneumo.tuning.search`` at the ``quick`` preset's settings (base_cnn x none,
64 px, 3 epochs) on the whole shared data set, 3 trials; the random tuner instead of the
preset's hyperband so that every trial runs all its epochs (a 1-epoch hyperband rung has
no later epoch to tell tracing apart). --quick: 2 trials of 2 epochs on every 16th image
of each split and class (symlinks, so the proportions stay).
Trial wall-clock runs from the tuner's ``on_trial_begin`` to the end of ``on_trial_end``
(its record written), which covers the record's ``seconds.trial`` +
``seconds.evaluation`` plus keras-tuner's own bookkeeping. Epochs are timed by a
callback placed after every other one (see ``searches.py``); the trial's model.keras
(its one checkpoint, written by the evaluation) is outside the epochs and so counts as
overhead.

Two rows: epochs as measured (the first one includes tracing the train and predict
functions), and the first epoch's excess over the later ones counted as overhead.
"""

from __future__ import annotations

import time

from common import Context, Result, check, fmt, median, ratio, spread
from searches import Probe, probed, subset_folder, synthetic_folder

TARGET = "<= 0.05"


def run(ctx: Context) -> list[Result]:
    from autopneumo.tuning import SearchConfig, search

    every, trials, epochs = (16, 2, 2) if ctx.quick else (1, 3, 3)
    if ctx.data is not None and every == 1:
        data, source = ctx.data, "the whole Kermany folder"
    elif ctx.data is not None:
        data = subset_folder(ctx.data, ctx.scratch("overhead-data"), every)
        source = f"every {every}th image of the Kermany folder"
    else:
        data = synthetic_folder(ctx.scratch("overhead-data"), 5216 // every, 624 // every)
        source = "synthetic JPEGs (no data folder)"
    config = SearchConfig("base_cnn", "none", data=str(data), tuner="random", max_trials=trials,
                          epochs=epochs, image_size=64, runs_dir=str(ctx.scratch("overhead-runs")),
                          seed=0)
    probe = Probe()
    start = time.perf_counter()
    with probed(probe):
        records = search(config, progress=probe)
    search_wall = time.perf_counter() - start
    by_id = {str(r["trial_id"]): r for r in records}
    done = [t for t in probe.trials if t.status == "completed" and t.epochs]
    if not done:
        raise RuntimeError("no trial completed")
    counts = next(iter(by_id.values())).get("data", {}).get("counts", {})
    rows = []
    literal, strict = [], []
    parts: dict[str, list[float]] = {k: [] for k in (
        "wall", "record seconds.trial + evaluation", "epochs", "build", "fit outside epochs",
        "first-epoch excess (tracing)", "  of which the validation predict's",
        "validation predicts (inside epochs)", "record_trial",
        "  of which the model.keras write (the trial's one checkpoint)",
        "  of which seconds.evaluation", "rest (keras-tuner bookkeeping)")}
    for t in done:
        rec = by_id.get(t.trial_id, {})
        sec = rec.get("seconds") or {}
        inside = sum(t.epochs)
        steady = median(t.epochs[1:]) if len(t.epochs) > 1 else t.epochs[0]
        excess = max(0.0, t.epochs[0] - steady)
        literal.append((t.wall - inside) / t.wall)
        strict.append((t.wall - inside + excess) / t.wall)
        parts["wall"].append(t.wall)
        parts["record seconds.trial + evaluation"].append(
            (sec.get("trial") or 0) + (sec.get("evaluation") or 0))
        parts["epochs"].append(inside)
        parts["build"].append(t.build)
        parts["fit outside epochs"].append(t.fit - inside)
        parts["first-epoch excess (tracing)"].append(excess)
        val = t.validation
        val_steady = median(val[1:]) if len(val) > 1 else (val[0] if val else 0.0)
        parts["  of which the validation predict's"].append(
            max(0.0, val[0] - val_steady) if val else 0.0)
        parts["validation predicts (inside epochs)"].append(sum(val))
        parts["record_trial"].append(t.record)
        parts["  of which the model.keras write (the trial's one checkpoint)"].append(sum(t.saves))
        parts["  of which seconds.evaluation"].append(sec.get("evaluation") or 0)
        parts["rest (keras-tuner bookkeeping)"].append(t.wall - t.build - t.fit - t.record)
        rows.append(f"trial {t.trial_id}: wall {fmt(t.wall)} s, epochs "
                    + " ".join(fmt(e) for e in t.epochs) + f" s, build {fmt(t.build)} s, "
                    f"record {fmt(t.record)} s (evaluation {fmt(sec.get('evaluation') or 0)} s)")
    sides = {f"{k}, s": spread(v) for k, v in parts.items()}
    trial_sum = sum(parts["wall"])
    notes = [f"{source}; counts {counts}; {len(done)} completed trials of {epochs} epochs",
             f"search wall-clock {fmt(search_wall)} s, of which trials {fmt(trial_sum)} s "
             f"(data load, tuner set-up: {fmt(search_wall - trial_sum)} s)", *rows]
    value = median(literal)
    strict_value = median(strict)
    return [
        Result("overhead", "trial overhead, epochs as measured (quick search)",
               "(trial wall-clock - time inside fit epochs) / trial wall-clock, median of trials",
               sides, value, TARGET, check(value, TARGET), notes),
        Result("overhead", "trial overhead, first-epoch tracing counted as overhead",
               "(trial wall - epochs + first-epoch excess over later epochs) / trial wall",
               {"per trial": ", ".join(fmt(x, 3) for x in strict),
                "ratio of the medians (epochs / wall)":
                    fmt(ratio(median(parts["epochs"]), median(parts["wall"])), 3)},
               strict_value, TARGET, check(strict_value, TARGET)),
    ]
