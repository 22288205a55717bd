"""``--data-on-device``'s input (``autopneumo.data.device``) on whatever device the backend
has: the same images, labels and class weights as ``model.fit(x, y, class_weight=...)``,
each image once per epoch, a new order each epoch. (That the batches stay on the GPU
under JAX is checked in ``test_gpu.py``.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from autopneumo.data.dataset import Split
from autopneumo.data.device import DeviceBatches
from autopneumo.hypermodel import class_weights, train


def _split(n: int = 50, size: int = 8, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size, size, 1), dtype=np.uint8)
    y = (rng.random(n) < 0.7).astype("uint8")
    names = np.array([f"img{i}.jpeg" for i in range(n)])
    return Split(x, y, names, names)


def test_each_epoch_gives_every_image_once_with_its_label_and_class_weight():
    data = _split()
    weights = class_weights(data.y)
    batches = DeviceBatches(data.x, data.y, 16, class_weight=weights, seed=3)
    assert len(batches) == 4  # 16 + 16 + 16 + 2
    orders = []
    for _ in range(2):
        seen = []
        for i in range(len(batches)):
            x, y, w = (keras.ops.convert_to_numpy(a) for a in batches[i])
            assert x.dtype == np.uint8 and y.dtype == np.float32 and w.dtype == np.float32
            idx = batches.order[i * 16:(i + 1) * 16]
            np.testing.assert_array_equal(x, data.x[idx])
            np.testing.assert_array_equal(y, data.y[idx])
            np.testing.assert_allclose(w, [weights[int(label)] for label in data.y[idx]])
            seen.extend(idx)
        assert sorted(seen) == list(range(len(data.y)))
        orders.append(list(batches.order))
        batches.on_epoch_end()
    assert orders[0] != orders[1]
    with pytest.raises(IndexError):
        batches[len(batches)]


def test_without_class_weights_every_image_weighs_one():
    data = _split(10)
    _, _, w = DeviceBatches(data.x, data.y, 4)[0]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), 1.0)


def _linear_model(size: int) -> keras.Model:
    inputs = keras.Input((size, size, 1), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="pneumonia")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="binary_crossentropy")
    return model


def test_a_fit_on_device_batches_computes_the_class_weighted_loss_of_a_host_fit():
    """With the learning rate at 0 the epoch's loss is one number however the batches are
    ordered (equal batch sizes): the class-weighted mean. Both paths must report it."""
    keras.utils.set_random_seed(0)
    data = _split(48)
    training = {"batch_size": 16, "epochs": 1, "balance": "class_weights"}
    losses = {}
    for on_device in (False, True):
        model = _linear_model(8)
        model.set_weights([np.full((64, 1), 0.01, np.float32), np.zeros(1, np.float32)])
        history = train(model, data, data, training, recall_target=0.95,
                        early_stopping=False, data_on_device=on_device)
        assert model.data_on_device is on_device
        losses[on_device] = history.history["loss"][0]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    unweighted = _linear_model(8)
    unweighted.set_weights([np.full((64, 1), 0.01, np.float32), np.zeros(1, np.float32)])
    plain = unweighted.evaluate(data.x, data.y.astype(np.float32), verbose=0)
    assert abs(losses[True] - plain) > 1e-4  # the class weights did change the loss
