"""TensorFlow start-up: thread pools sized to the cores this process may use; the custom
gradient registry that is released between trials."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autopneumo.backend import custom_gradient_names, usable_cores


def test_usable_cores_is_capped_by_a_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("100000 100000\n")  # one CPU's worth
    assert usable_cores(quota) == 1
    quota.write_text("150000 100000\n")  # 1.5 CPUs: two threads, never more than allowed
    assert usable_cores(quota) == min(2, affinity)
    quota.write_text("max 100000\n")
    assert usable_cores(quota) == affinity
    assert usable_cores(tmp_path / "absent") == affinity
    quota.write_text("garbage")
    assert usable_cores(quota) == affinity


@pytest.mark.parametrize("env, expected", [("1", "1 1"), ("3", "3 2"), (None, None)])
def test_thread_pools_follow_the_cores_or_the_environment(env, expected):
    code = ("from autopneumo.backend import import_tensorflow_quietly, usable_cores\n"
            "import_tensorflow_quietly()\n"
            "import tensorflow as tf\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.config.threading.get_inter_op_parallelism_threads(), usable_cores())\n")
    environ = {k: v for k, v in os.environ.items() if k != "AUTOPNEUMO_THREADS"}
    if env is not None:
        environ["AUTOPNEUMO_THREADS"] = env
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    intra, inter, cores = (int(x) for x in out[-3:])
    if expected is None:
        assert (intra, inter) == (cores, min(2, cores))
    else:
        assert f"{intra} {inter}" == expected


@pytest.mark.slow
def test_training_outside_a_search_leaves_no_custom_gradient_behind(tiny_kermany, tmp_path):
    """finalize and baseline train through the same ``train()`` as the search: each fit
    drops the gradient registrations its tracing added (they kept ~50 graphs per model)."""
    from autopneumo.data import load_dataset
    from autopneumo.evaluation import Evaluator
    from autopneumo.trials import train_and_evaluate
    from autopneumo.tuning import SearchConfig, resolve_spaces

    dataset = load_dataset(tiny_kermany, 32, 1, 0.2, 0)
    spaces = resolve_spaces(SearchConfig("base_cnn", "none"))["spaces"]
    values = {f"{s.prefix}.{k}": v for s in spaces.values() for k, v in s.defaults().items()}
    values |= {"model.width": 0.25, "model.depth": 2, "train.epochs": 1}
    evaluator = Evaluator(dataset, {"project": "p", "family": "base_cnn", "policy": "none",
                                    "tuner": "finalize"}, 0.95, n_boot=10)
    train_and_evaluate("base_cnn", "none", values, dataset, evaluator, tmp_path / "warm", "w",
                       0.95, seed=0)  # the first model may register process-wide things
    before = custom_gradient_names()
    for seed in (1, 2):
        train_and_evaluate("base_cnn", "none", values, dataset, evaluator, tmp_path / f"s{seed}",
                           f"s{seed}", 0.95, seed=seed)
    assert custom_gradient_names() == before


def test_predict_batches_equals_keras_predict_in_chunks_and_when_empty():
    """The validation objective, evaluation, TTA and the report score with
    ``predict_batches``: it must give Keras' ``predict`` numbers, whatever the chunking."""
    import keras
    import numpy as np

    from autopneumo.backend import predict_batches
    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    keras.utils.set_random_seed(0)
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("flip"), (24, 24, 1),
                        {"width": 0.25, "depth": 2, "dense_units": "8"})
    x = np.random.default_rng(1).integers(0, 256, (23, 24, 24, 1), dtype=np.uint8)
    expected = model.predict(x, batch_size=256, verbose=0)
    for batch_size in (5, 23, 256):  # a remainder chunk, one exact chunk, one short chunk
        got = predict_batches(model, x, batch_size)
        assert got.shape == expected.shape == (23, 1)
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert predict_batches(model, x[:0]).shape == (0, 1)


@pytest.mark.parametrize("config, expected", [
    (None, "tensorflow"),                       # no keras.json: Keras' default
    ('{"backend": "jax"}', "jax"),
    ('{"floatx": "float32"}', "tensorflow"),    # no backend key
    ("not json", "tensorflow"),
])
def test_keras_backend_reads_the_config_without_importing_keras(tmp_path, config, expected):
    """Where KERAS_BACKEND is unset, the backend comes from keras.json in KERAS_HOME, as
    Keras reads it, and Keras (hence TensorFlow) is not imported to find out."""
    home = tmp_path / "keras-home"
    home.mkdir()
    if config is not None:
        (home / "keras.json").write_text(config)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(home)
    code = ("import sys; from autopneumo.backend import keras_backend; "
            "print(keras_backend(), 'keras' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    assert out == [expected, "False", "False"]
    if expected == "jax":
        return  # Keras on JAX needs jax installed; the file is read the same way
    # Keras itself agrees (the same folder, the same file)
    code = "import keras; print(keras.backend.backend())"
    agree = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300, check=True).stdout.split()
    assert agree == [expected]


class _Cycle:
    """Garbage only a collection frees: it refers to itself; says when it is freed."""

    def __init__(self, freed: list):
        self.me, self.freed = self, freed

    def __del__(self):
        self.freed.append(True)


def test_frozen_heap_freezes_what_exists_yet_frees_what_comes_later():
    import gc

    from autopneumo.backend import frozen_heap

    before, inside = [], []
    _Cycle(before)  # garbage from before the block: collected, not frozen
    with frozen_heap():
        assert before == [True]
        assert gc.get_freeze_count() > 0
        _Cycle(inside)
        gc.collect()
        assert inside == [True]  # a trial's garbage still goes
    assert gc.get_freeze_count() == 0


def test_frozen_heap_leaves_a_heap_someone_else_froze_as_it_was():
    import gc

    from autopneumo.backend import frozen_heap

    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == count
    finally:
        gc.unfreeze()
