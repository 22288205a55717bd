"""Trial throughput: images/s of one autopneumo trial epoch / images/s of a bare
``model.fit`` on in-memory float32 tensors; same model, batch size 32, same image size.

autopneumo side: ``PneumoniaHyperModel.fit`` as a trial runs it (see ``epochs.py``),
uint8 numpy in. The epoch includes the ``ValidationObjective`` predict over a
validation split a quarter the size of the training subset (the share a real search
has with ``--val-fraction 0.2``); the rate without it is printed too. A trial writes
no checkpoint during its fit (its one checkpoint is the model.keras its evaluation
writes afterwards, part of the trial overhead benchmark). Training subsets are sized
for about 5 s epochs (the whole suite must fit in 20 minutes); a real search's epochs
are 4-16x longer, which dilutes the fixed per-epoch costs further, so these ratios are
on the pessimistic side.
bare side: the same architecture with a float32 input (``clone_model``; the Rescaling
layer stays), ``model.fit(x_float32_tensor, y, batch_size=32)``, no callbacks. (Keras
3.15 slices that tensor on the host: under JAX its array input turns a device array
back into numpy, so the bare side copies every batch to the device too.)
With a GPU under JAX a fourth side runs: the trial with ``--data-on-device``
(``autopneumo.data.device``), each timed fit uploading its split once, as a trial does.

Both models are traced by one untimed epoch first; then single-epoch fits alternate
between the sides (ABBA), so a busy neighbour slows both alike. Medians over rounds.
"""

from __future__ import annotations

import numpy as np
from common import Context, Result, check, fmt, interleaved, median, ratio, spread
from epochs import bare_clone, clear_session, epoch_timer, hypermodel, subset, timed_validation

TARGET = ">= 0.95"


def measure(ctx: Context, family: str, size: int, n_train: int, n_val: int, rounds: int,
            policy: str = "none") -> dict:
    import keras

    clear_session()
    data = subset(ctx, size, n_train, n_val)
    hm, hp = hypermodel(family, policy, data, epochs=1)
    model = hm.build(hp)
    bare = bare_clone(model)
    x_float = keras.ops.convert_to_tensor(data.train_x.astype(np.float32))  # on the GPU if any
    y = data.train_y.astype(np.float32)
    validation = (keras.ops.convert_to_tensor(data.val_x.astype(np.float32)),
                  data.val_y.astype(np.float32))
    ap_timer, bare_timer, bare_val_timer = epoch_timer(), epoch_timer(), epoch_timer()
    device_timer = epoch_timer()
    ap_val: list[float] = []  # the trial side's validation predicts, warm-up included
    with timed_validation() as val_times:

        def autopneumo():
            hm.data_on_device = False
            hm.fit(hp, model, epochs=1, callbacks=[ap_timer])
            ap_val.append(val_times[-1])
            return ap_timer.times[-1]

        def autopneumo_on_device():
            hm.data_on_device = True
            hm.fit(hp, model, epochs=1, callbacks=[device_timer])
            return device_timer.times[-1]

        def bare_fit():
            bare.fit(x_float, y, batch_size=32, epochs=1, verbose=0, callbacks=[bare_timer])
            return bare_timer.times[-1]

        def bare_fit_validated():  # like for like: the bare fit also scores the validation split
            bare.fit(x_float, y, batch_size=32, epochs=1, verbose=0, validation_data=validation,
                     validation_batch_size=256, callbacks=[bare_val_timer])
            return bare_val_timer.times[-1]

        sides = {"autopneumo": autopneumo, "bare": bare_fit, "bare_val": bare_fit_validated}
        if on_device_supported():
            sides["device"] = autopneumo_on_device
        times = interleaved(sides, rounds, warmup=1)
    val = ap_val[1:]
    ap = times["autopneumo"]
    return {
        "device": times.get("device"),
        "family": family, "size": size, "n_train": len(data.train_y), "n_val": len(data.val_y),
        "source": data.source, "params": model.count_params(),
        "autopneumo": ap, "bare": times["bare"], "bare_val": times["bare_val"], "val": val,
        "no_val": [a - v for a, v in zip(ap, val, strict=True)],
        "first_autopneumo": ap_timer.times[0], "first_bare": bare_timer.times[0],
    }


def on_device_supported() -> bool:
    from autopneumo.backend import gpu_names
    from autopneumo.data.device import device_supported

    return device_supported() and bool(gpu_names())


def to_result(m: dict) -> Result:
    n = m["n_train"]
    ap, bare = median(m["autopneumo"]), median(m["bare"])
    no_val = median(m["no_val"])
    value = ratio(bare, ap)  # (n / ap) / (n / bare)
    bare_val = median(m["bare_val"])
    like = ratio(bare_val, ap)
    return [Result(
        "throughput", f"trial throughput, {m['family']} {m['size']} px",
        "images/s of a trial epoch (incl. validation predict) / images/s of bare model.fit",
        {
            "autopneumo trial epoch, s": spread(m["autopneumo"]),
            "bare model.fit epoch, s": spread(m["bare"]),
            "  validation predict in the epoch, s": spread(m["val"]),
            "images/s autopneumo / bare": f"{fmt(n / ap)} / {fmt(n / bare)}",
            "images/s autopneumo without validation": f"{fmt(n / no_val)} "
                                                      f"(ratio {fmt(ratio(bare, no_val), 4)})",
            "first (tracing) epoch autopneumo / bare, s":
                f"{fmt(m['first_autopneumo'])} / {fmt(m['first_bare'])}",
        },
        value, TARGET, check(value, TARGET),
        [f"{m['source']}; {m['params']:,} parameters; validation split "
         f"{m['n_val']} images predicted once per epoch"],
    ), Result(
        "throughput", f"trial throughput vs a validated bare fit, {m['family']} {m['size']} px",
        "images/s of a trial epoch / images/s of bare model.fit(validation_data=...) (like for "
        "like: both score the validation split each epoch)",
        {"bare model.fit + validation_data epoch, s": spread(m["bare_val"])},
        like, TARGET, check(like, TARGET),
    )] + ([] if not m["device"] else [Result(
        "throughput", f"trial throughput, data on device, {m['family']} {m['size']} px",
        "images/s of a trial epoch with --data-on-device / images/s of bare model.fit",
        {"trial epoch, data on device, s": spread(m["device"]),
         "trial epoch, data on host, s": spread(m["autopneumo"])},
        ratio(bare, median(m["device"])), TARGET, check(ratio(bare, median(m["device"])), TARGET),
    )])


# (family, px, training images): about 5 s per epoch on 2 busy cores; validation = 1/4
FULL = [("base_cnn", 64, 1024), ("base_cnn", 128, 512), ("resnet18", 64, 512),
        ("resnet18", 128, 256)]
QUICK = [("base_cnn", 64, 256)]


def run(ctx: Context) -> list[Result]:
    configs, rounds = (QUICK, 3) if ctx.quick else (FULL, 3)
    results = []
    for family, size, n_train in configs:
        ctx.log(f"  {family} {size} px, {n_train} images: 1 + {rounds} epochs per side ...")
        rows = to_result(measure(ctx, family, size, n_train, n_train // 4, rounds))
        for row in rows:  # at once, so a run cut short still shows what it measured
            ctx.log(f"    {row.name}: {row.ratio:.3f}; " + "; ".join(
                f"{k.strip()} {v}" for k, v in row.sides.items()))
        results.extend(rows)
    return results
