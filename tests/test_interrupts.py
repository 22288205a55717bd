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


# --- defer_ctrl_c: the first Ctrl-C waits for a safe point ---------------------------------

def test_a_deferred_ctrl_c_is_raised_at_the_safe_point_not_where_it_lands(python_sigint_handler):
    from autopneumo.interrupts import defer_ctrl_c, raise_if_interrupted

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with defer_ctrl_c():
            signal.raise_signal(signal.SIGINT)  # its handler runs here: no exception
            reached.append("after the signal")
            raise_if_interrupted()
            reached.append("after the safe point")
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_the_end_of_the_block_is_a_safe_point_and_nesting_keeps_the_handler(
        python_sigint_handler):
    from autopneumo.interrupts import defer_ctrl_c

    with pytest.raises(KeyboardInterrupt):
        with defer_ctrl_c():
            with defer_ctrl_c():
                pass
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with defer_ctrl_c():  # nothing pending is left over
        pass


def test_a_second_ctrl_c_stops_at_once(python_sigint_handler):
    from autopneumo.interrupts import defer_ctrl_c

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with defer_ctrl_c():
            signal.raise_signal(signal.SIGINT)
            reached.append(1)
            signal.raise_signal(signal.SIGINT)
            reached.append(2)
    assert reached == [1]


def test_another_error_on_the_way_out_does_not_lose_the_ctrl_c(python_sigint_handler):
    from autopneumo.interrupts import defer_ctrl_c

    with pytest.raises(KeyboardInterrupt) as info:
        with defer_ctrl_c():
            signal.raise_signal(signal.SIGINT)
            raise ValueError("a failed trial")  # keras-tuner would catch this and go on
    assert isinstance(info.value.__cause__, ValueError)


def test_an_ignored_sigint_stays_ignored():
    from autopneumo.interrupts import defer_ctrl_c

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with defer_ctrl_c():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_ctrl_c_during_training_stops_the_fit_at_the_end_of_that_batch(python_sigint_handler):
    """The search's ``train``: the Ctrl-C sent while batch 1 runs ends the fit when that
    batch has finished; without the deferral it is raised at once, inside the batch."""
    import keras
    import numpy as np

    from autopneumo.data.dataset import Split
    from autopneumo.hypermodel import train

    ended = []

    class SignalDuringBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:
                signal.raise_signal(signal.SIGINT)

        def on_train_batch_end(self, batch, logs=None):
            ended.append(batch)

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 8, 8, 1), dtype=np.uint8)
    y = np.array([0, 1] * 16)
    split = Split(x, y, np.array([f"p{i}.jpeg" for i in range(32)]), np.arange(32).astype(str))
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        train(model, split, split, {"batch_size": 8, "epochs": 3, "patience": 3}, 0.95,
              callbacks=[SignalDuringBatch()])
    assert ended == [0, 1]  # batch 1 finished; batch 2 never started
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_while_the_predict_step_is_traced_is_raised_between_batches(
        python_sigint_handler):
    """The signal goes off while TensorFlow traces the predict step (a layer's ``call``
    runs then): the first batch still completes, and the interrupt comes before the next."""
    import keras
    import numpy as np

    from autopneumo.backend import predict_batches

    class SignalWhenTraced(keras.layers.Layer):
        armed = False  # not while the model is built

        def call(self, x):
            if self.armed:
                signal.raise_signal(signal.SIGINT)
            return x

    model = keras.Sequential([keras.Input((4,)), SignalWhenTraced(), keras.layers.Dense(1)])
    SignalWhenTraced.armed = True
    completed = []
    predict_on_batch = model.predict_on_batch

    def counting(x):
        out = predict_on_batch(x)
        completed.append(len(x))
        return out

    model.predict_on_batch = counting
    with pytest.raises(KeyboardInterrupt):
        predict_batches(model, np.zeros((10, 4), np.float32), batch_size=4)
    assert completed == [4]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_another_thread_neither_takes_nor_changes_the_main_threads_deferral(
        python_sigint_handler):
    import threading

    from autopneumo.interrupts import _Deferral, defer_ctrl_c

    seen = []

    def worker():
        with defer_ctrl_c():
            seen.append(_Deferral.depth)

    with defer_ctrl_c():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert _Deferral.depth == 1
    assert seen == [1] and _Deferral.depth == 0
