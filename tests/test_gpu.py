"""The GPU flags: ``--mixed-precision`` (float16 compute, float32 output) and ``--jit``
(XLA). The GPU tests run only where the Keras backend sees a GPU (any backend:
``KERAS_BACKEND=jax`` runs them on a machine whose JAX has CUDA); on a CPU the flags
must change nothing, which the CPU tests check."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from autopneumo.backend import gpu_names
from autopneumo.data.dataset import Split
from autopneumo.hypermodel import build_model, train
from autopneumo.registry import FAMILIES, POLICIES
from autopneumo.tuning import SearchConfig, search
from tests.conftest import xray_like
from tests.test_search import SMALL_CNN

HAS_GPU = bool(gpu_names())
gpu_only = pytest.mark.skipif(not HAS_GPU, reason="needs a GPU the Keras backend sees")
cpu_only = pytest.mark.skipif(HAS_GPU, reason="checks the CPU fallback")


@pytest.fixture
def float32_afterwards():
    yield
    keras.config.set_dtype_policy("float32")


def _split(n: int, size: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype("uint8")
    x = np.stack([xray_like(int(label), size, rng) for label in y])[..., None]
    names = np.array([f"img{i}.jpeg" for i in range(n)])
    return Split(x, y, names, names)


def _model(family: str, size: int, jit: bool = False):
    return build_model(FAMILIES.get(family), POLICIES.get("flip"), (size, size, 1),
                       {"width": 0.25} if family == "base_cnn" else None,
                       jit_compile=True if jit else "auto")


@gpu_only
@pytest.mark.slow
@pytest.mark.parametrize("family", ["base_cnn", "resnet18"])
def test_mixed_precision_computes_in_float16_and_outputs_float32(family, float32_afterwards):
    keras.config.set_dtype_policy("mixed_float16")
    model = _model(family, 64, jit=True)
    convs = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.Conv2D | keras.layers.SeparableConv2D)]
    assert convs and all(layer.compute_dtype == "float16" for layer in convs)
    assert all(v.dtype == "float32" for v in model.trainable_variables)  # master weights
    assert model.get_layer("pneumonia").compute_dtype == "float32"
    assert model.jit_compile is True

    data = _split(64, 64)
    x = data.x
    history = train(model, data, data.take(np.arange(32)), {"batch_size": 16, "epochs": 2},
                    recall_target=0.95)
    assert all(np.isfinite(history.history["loss"]))
    mixed = model.predict(x, verbose=0)
    assert mixed.dtype == np.float32

    # the same weights in float32 give nearly the same probabilities
    keras.config.set_dtype_policy("float32")
    reference = _model(family, 64)
    reference.set_weights(model.get_weights())
    full = reference.predict(x, verbose=0)
    assert np.max(np.abs(mixed - full)) < 0.05


def _tiny_search(tiny_kermany, tmp_path, **flags):
    space = tmp_path / "small_cnn.yaml"
    space.write_text(SMALL_CNN)
    config = SearchConfig("base_cnn", "flip", data=tiny_kermany, tuner="random", max_trials=1,
                          epochs=1, image_size=32, runs_dir=tmp_path / "runs", spaces=[space],
                          seed=1, **flags)
    return search(config)


@gpu_only
@pytest.mark.slow
def test_search_with_the_gpu_flags_records_them_and_restores_the_policy(tiny_kermany, tmp_path,
                                                                      float32_afterwards):
    (record,) = _tiny_search(tiny_kermany, tmp_path, mixed_precision=True, jit=True,
                             data_on_device=True)
    assert record["status"] == "completed", record.get("message")
    assert record["compute"] == {"dtype_policy": "mixed_float16", "jit_compile": True,
                                 "data_on_device": keras.backend.backend() == "jax"}, record["compute"]
    assert record["environment"]["gpus"]
    assert keras.config.dtype_policy().name == "float32"


@gpu_only
@pytest.mark.slow
def test_resuming_a_mixed_precision_search_without_it_is_refused(tiny_kermany, tmp_path,
                                                                 float32_afterwards):
    """On a GPU --mixed-precision takes effect, so it is pinned like a hyperparameter: a
    resume without it would mix float16 and float32 trials in one project."""
    from autopneumo.errors import RunsError

    (record,) = _tiny_search(tiny_kermany, tmp_path, mixed_precision=True)
    assert record["compute"]["dtype_policy"] == "mixed_float16"
    with pytest.raises(RunsError, match=r"--mixed-precision \(float16 on a GPU: on when started"):
        _tiny_search(tiny_kermany, tmp_path)
    assert keras.config.dtype_policy().name == "float32"


@gpu_only
def test_device_batches_stay_on_the_gpu_under_jax():
    """--data-on-device: the images are uploaded once, as uint8, and each batch is cut
    out of them on the GPU (under TensorFlow it would come back through tf.data)."""
    if keras.backend.backend() != "jax":
        pytest.skip("batches stay on the device only under KERAS_BACKEND=jax")
    from keras.src.trainers.data_adapters import get_data_adapter

    from autopneumo.data.device import DeviceBatches

    data = _split(40, 16)
    batches = DeviceBatches(data.x, data.y, 16, class_weight={0: 2.0, 1: 0.5})
    assert batches.x.dtype == "uint8"
    assert all(d.platform == "gpu" for d in batches.x.devices())
    x, y, w = next(iter(get_data_adapter(batches, shuffle=False).get_jax_iterator()))
    assert all(d.platform == "gpu" for a in (x, y, w) for d in a.devices())
    idx = batches.order[:16]
    np.testing.assert_array_equal(np.asarray(x), data.x[idx])
    np.testing.assert_array_equal(np.asarray(w), np.where(data.y[idx] == 1, 0.5, 2.0))


@cpu_only
@pytest.mark.slow
def test_gpu_flags_on_a_cpu_are_ignored_with_a_message(tiny_kermany, tmp_path):
    from autopneumo.errors import AutopneumoWarning

    with pytest.warns(AutopneumoWarning, match=re.escape(
            "--mixed-precision, --jit and --data-on-device: no GPU found, ignored")):
        (record,) = _tiny_search(tiny_kermany, tmp_path, mixed_precision=True, jit=True,
                                 data_on_device=True)
    assert record["status"] == "completed"
    assert record["compute"]["dtype_policy"] == "float32"
    assert record["compute"]["data_on_device"] is False
    assert record["environment"]["device"] == "CPU"
    assert keras.config.dtype_policy().name == "float32"


def test_search_restores_the_dtype_policy_even_when_it_fails(tmp_path, float32_afterwards):
    keras.config.set_dtype_policy("mixed_bfloat16")  # a caller's own choice survives a search
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the policy is the point
        search(SearchConfig("base_cnn", "flip", data=tmp_path / "missing"))
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
