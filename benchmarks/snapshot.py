"""The best epoch's snapshot: copies made on the variables' own device
(``keras.ops.copy`` per variable) against ``get_weights()`` and numpy copies of the
optimizer variables, side by side, ABBA, medians; under JAX also one jitted program
copying them all. ``ValidationObjective`` (``autopneumo.hypermodel._snapshot``) keeps
the device copies under TensorFlow and the numpy copies under JAX, from these numbers.

A trial snapshots its weights and optimizer state after every epoch that improves the
validation objective; the throughput benchmark's one-epoch fits improve every time. On a
CPU both are memory copies; on a GPU the host copy transfers and waits once per
variable (about 100 weights and 200 optimizer variables for resnet18), while the
device copy only queues work.

usage: python benchmarks/snapshot.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import interleaved, machine, median, print_machine, ratio, spread  # noqa: E402

CONFIGS = [("base_cnn", 64), ("base_cnn", 128), ("resnet18", 64), ("resnet18", 128)]


def model_for(family: str, size: int):
    import keras

    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    model = build_model(FAMILIES.get(family), POLICIES.get("none"), (size, size, 1))
    model.optimizer.build(model.trainable_variables)
    keras.ops.convert_to_numpy(model.weights[0])
    return model


def synced(values) -> None:
    """Wait for the copies: their whole cost, not only the queueing."""
    import keras

    for v in values[-1:]:
        keras.ops.convert_to_numpy(keras.ops.sum(v))


def timed(fn):
    def run():
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1000
    return run


def measure(model, repeats: int, jitted=None) -> tuple[dict[str, list[float]], float]:
    """Milliseconds per snapshot of each kind (and the jitted copy's first, compiling call)."""
    import keras

    optimizer = model.optimizer.variables
    variables = list(model.weights) + list(optimizer)

    def host():
        model.get_weights()
        [keras.ops.convert_to_numpy(v) for v in optimizer]

    def on_device():
        return [keras.ops.copy(v.value) for v in variables]

    def device_finished():
        synced(on_device())

    sides = {"host": timed(host), "device": timed(on_device), "finished": timed(device_finished)}
    first = float("nan")
    if jitted is not None:
        def jit_copy():
            synced(jitted([v.value for v in variables]))
        first = timed(jit_copy)()
        sides["jit"] = timed(jit_copy)
    return interleaved(sides, repeats, warmup=2), first


def main(argv: list[str] | None = None) -> int:
    import keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print_machine(machine())

    jitted = None
    if keras.backend.backend() == "jax":  # one compiled program copying every array
        import jax
        import jax.numpy as jnp

        jitted = jax.jit(lambda xs: [jnp.copy(x) for x in xs])
    print("| model | variables (weights + optimizer) | host copy, ms | device copy, queued, ms "
          "| device copy, finished, ms | host / device (finished) | one jitted copy, finished, "
          "ms (first call) |")
    print("|---|---|---|---|---|---|---|")
    for family, size in CONFIGS:
        model = model_for(family, size)
        t, first = measure(model, args.repeats, jitted)
        jit_cell = f"{spread(t['jit'])} ({first:.0f})" if "jit" in t else "-"
        print(f"| {family} {size} px | {len(model.weights)} + {len(model.optimizer.variables)} "
              f"| {spread(t['host'])} | {spread(t['device'])} | {spread(t['finished'])} "
              f"| {ratio(median(t['host']), median(t['finished'])):.2f} | {jit_cell} |", flush=True)
        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
