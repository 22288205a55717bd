"""A Ctrl-C that lands inside garbage collection is delivered again, not swallowed."""

from __future__ import annotations

import gc
import signal
import sys
import time

import pytest

from autopneumo.interrupts import keep_ctrl_c


class RaisesWhenCollected:
    """In a reference cycle, so only ``gc.collect()`` finalises it; its ``__del__``
    raises what the SIGINT handler raises when the signal lands there."""

    def __init__(self, exc: type[BaseException]):
        self.exc = exc
        self.cycle = self

    def __del__(self):
        raise self.exc("raised during garbage collection")


@pytest.fixture
def python_sigint_handler():
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def collect_then_idle(seconds: float = 2.0) -> None:
    RaisesWhenCollected(KeyboardInterrupt)
    gc.collect()  # Python swallows the KeyboardInterrupt here ("Exception ignored in")
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # ordinary code: a re-delivered interrupt lands here
        time.sleep(0.01)


def test_a_keyboard_interrupt_swallowed_by_gc_is_raised_again(python_sigint_handler):
    with pytest.raises(KeyboardInterrupt):
        with keep_ctrl_c():
            collect_then_idle()


def test_without_it_python_swallows_the_interrupt(python_sigint_handler):
    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        collect_then_idle(0.2)  # returns: the interrupt is gone
    finally:
        sys.unraisablehook = old
    assert [u.exc_type for u in seen] == [KeyboardInterrupt]


def test_other_unraisable_errors_go_to_the_previous_hook_and_the_hook_is_restored():
    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        with keep_ctrl_c():
            assert sys.unraisablehook is not seen.append
            RaisesWhenCollected(ValueError)
            gc.collect()
        assert sys.unraisablehook == seen.append
    finally:
        sys.unraisablehook = old
    assert [u.exc_type for u in seen] == [ValueError]


def swallow_a_ctrl_c() -> None:
    """A Ctrl-C that lands inside code that catches everything (a library's broad
    ``except``): the interrupt is gone, as far as the rest of the program can see."""
    try:
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside the try
    except KeyboardInterrupt:
        pass


def test_a_ctrl_c_swallowed_anywhere_is_raised_at_the_next_check(python_sigint_handler):
    from autopneumo.interrupts import raise_if_interrupted

    with keep_ctrl_c():
        raise_if_interrupted()  # nothing arrived: no-op
        swallow_a_ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
        raise_if_interrupted()  # raised once, not again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    swallow_a_ctrl_c()  # outside keep_ctrl_c nothing is noted
    raise_if_interrupted()


def test_a_fit_stops_at_the_end_of_the_epoch_in_which_a_ctrl_c_was_swallowed(
        python_sigint_handler):
    import keras
    import numpy as np

    from autopneumo.data.dataset import Split
    from autopneumo.hypermodel import train

    class SwallowsInEpoch1(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                swallow_a_ctrl_c()

    inputs = keras.Input((4, 4, 1), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    y = np.arange(16) % 2
    data = Split(rng.integers(0, 256, (16, 4, 4, 1), dtype=np.uint8), y.astype("uint8"),
                 np.array([f"{i}.jpeg" for i in range(16)]), np.array([f"{i}" for i in range(16)]))
    epochs_seen = []

    class Seen(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)

    with keep_ctrl_c():
        with pytest.raises(KeyboardInterrupt):
            train(model, data, data, {"batch_size": 8, "epochs": 5}, recall_target=0.95,
                  early_stopping=False, callbacks=[SwallowsInEpoch1(), Seen()])
    assert epochs_seen == [0, 1]  # stopped at the end of epoch 1, the one it was lost in
