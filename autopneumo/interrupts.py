"""Ctrl-C stops a command cleanly: never lost, and never raised inside TensorFlow.

Python runs a signal's handler in the main thread at its next bytecode, whatever that
bytecode belongs to. During ``gc.collect()`` that is often a weakref callback or a
``__del__``, and an exception raised there is "unraisable": Python prints it and carries
on. A search collects garbage after every trial (and Keras' ``clear_session`` does too),
so a Ctrl-C landing in that window used to be swallowed and the search ran on.

``keep_ctrl_c()`` catches such a swallowed ``KeyboardInterrupt`` and delivers the
interrupt again a moment later, from a helper thread, so that it lands in ordinary code
(once the collection is over) and stops the command the usual way.

Raised at an arbitrary bytecode, the ``KeyboardInterrupt`` can also land in TensorFlow's
Python code while its C++ calls back into it (tracing a step, building a ``tf.data``
pipeline). TensorFlow then printed "SystemError: <built-in function __import__> returned
a result with an exception set" and the search hung instead of exiting. So while
``defer_ctrl_c()`` is active (a trial's training and evaluation) the first Ctrl-C only
sets a flag, and the interrupt is raised at the next safe point: the end of a Keras batch
or epoch (``StopOnCtrlC``), a ``raise_if_interrupted()`` call, or the context's end. A
second Ctrl-C stops at once, wherever it lands.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

REDELIVERY_DELAY_S = 0.01  # lets the hook return before the interrupt is raised again


def _redeliver() -> None:
    _thread.interrupt_main()  # as a second Ctrl-C; a no-op where SIGINT is not handled


@contextlib.contextmanager
def keep_ctrl_c() -> Iterator[None]:
    """While active, a ``KeyboardInterrupt`` swallowed as unraisable is raised again in
    the main thread; every other unraisable exception goes to the previous hook."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            # not from here: an interrupt pending now would be raised inside this hook
            # and swallowed too
            timer = threading.Timer(REDELIVERY_DELAY_S, _redeliver)
            timer.daemon = True
            timer.start()
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


class _Deferral:
    depth = 0  # nesting of defer_ctrl_c() in the main thread
    pending = False  # a Ctrl-C arrived and is not yet raised
    previous = None  # the SIGINT handler to restore


def _defer(signum, frame) -> None:
    raise_if_interrupted()  # the second Ctrl-C: now, wherever it lands
    _Deferral.pending = True


def raise_if_interrupted() -> None:
    """A safe point: raises the Ctrl-C that ``defer_ctrl_c`` held back, if one came."""
    if _Deferral.pending:
        _Deferral.pending = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def defer_ctrl_c() -> Iterator[None]:
    """While active, a first Ctrl-C waits for the next safe point (see the module's
    docstring). Nests; does nothing outside the main thread or where SIGINT does not
    raise ``KeyboardInterrupt`` (ignored, or handled by someone else)."""
    if threading.current_thread() is not threading.main_thread() or (
            _Deferral.depth == 0
            and signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # signals reach the main thread only; the nesting count is the main thread's
        return
    if _Deferral.depth == 0:
        _Deferral.previous = signal.signal(signal.SIGINT, _defer)
        _Deferral.pending = False
    _Deferral.depth += 1
    try:
        yield
    except KeyboardInterrupt:
        _Deferral.pending = False  # this is the interrupt
        raise
    except BaseException as exc:
        if _Deferral.pending:  # another error on the way out must not lose the Ctrl-C
            _Deferral.pending = False
            raise KeyboardInterrupt from exc
        raise
    finally:
        _Deferral.depth -= 1
        if _Deferral.depth == 0:
            signal.signal(signal.SIGINT, _Deferral.previous)
    raise_if_interrupted()  # reached only when the block ended normally


@contextlib.contextmanager
def term_as_ctrl_c() -> Iterator[None]:
    """While active (the CLI's commands), SIGTERM stops a command as Ctrl-C does: held to
    the end of the batch, the trial marked interrupted, the resume hint printed. Slurm,
    ``docker stop`` and systemd send it, and it used to end the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        current = signal.getsignal(signal.SIGINT)
        if callable(current):
            current(signal.SIGINT, frame)  # the deferral's, or Python's default
        else:  # SIGINT ignored (a background job): a SIGTERM still stops
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_on_ctrl_c_callback():
    """A Keras callback whose batch and epoch ends are safe points."""
    import keras

    class StopOnCtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise_if_interrupted()

        on_test_batch_end = on_predict_batch_end = on_train_batch_end

        def on_epoch_end(self, epoch, logs=None):
            raise_if_interrupted()

    return StopOnCtrlC()
