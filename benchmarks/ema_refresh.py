"""What train.ema's BatchNorm refresh costs: the time of ``refresh_batchnorm`` (512
training images, as after each averaged epoch) against one training epoch of the same
model on 4,096 images (about the Kermany training split's size), side by side in one run.

    python benchmarks/ema_refresh.py [--repeats 5]

Prints the medians and their ratio for base_cnn + photometric at 64 and 128 px, with the
refresh in batches of 64 and of 128 (the default)."""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from autopneumo.backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    from autopneumo.hypermodel import build_model, refresh_batchnorm
    from autopneumo.registry import FAMILIES, POLICIES

    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} cores")
    rng = np.random.default_rng(0)
    for size in (64, 128):
        model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("photometric"),
                            (size, size, 1), {}, {},
                            training={"epochs": 10, "standardize": True, "ema": True})
        x = rng.integers(0, 255, (4096, size, size, 1)).astype("uint8")
        y = rng.integers(0, 2, 4096).astype("float32")
        model.fit(x[:256], y[:256], batch_size=32, epochs=1, verbose=0)  # traced
        epochs = []
        for _ in range(max(2, args.repeats // 2)):
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            epochs.append(time.perf_counter() - start)
        epoch = statistics.median(epochs)
        for batch in (64, 128):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                refresh_batchnorm(model, x[:512], batch)
                times.append(time.perf_counter() - start)
            refresh = statistics.median(times)
            print(f"{size} px, refresh in batches of {batch}: {refresh:.2f} s, epoch "
                  f"{epoch:.2f} s, ratio {refresh / epoch:.3f}")


if __name__ == "__main__":
    main()
