"""Ctrl-C is never lost, even when it lands inside garbage collection.

Python runs a signal's handler in the main thread at its next bytecode, whatever that
bytecode belongs to. During ``gc.collect()`` that is often a weakref callback or a
``__del__``, and an exception raised there is "unraisable": Python prints it and carries
on. A search collects garbage after every trial (and Keras' ``clear_session`` does too),
so a Ctrl-C landing in that window used to be swallowed and the search ran on.

``keep_ctrl_c()`` catches such a swallowed ``KeyboardInterrupt`` and delivers the
interrupt again a moment later, from a helper thread, so that it lands in ordinary code
(once the collection is over) and stops the command the usual way.

A backstop for any other place that swallows it (a library's broad ``except``, or the
re-delivered interrupt landing inside garbage collection or the hook again): while
``keep_ctrl_c()`` is active, SIGINT's handler also notes that a Ctrl-C arrived, and
``raise_if_interrupted()``, called at every epoch's end and trial's start, raises it
again. A Ctrl-C once went unanswered for two minutes in a CI run whose machine was
running three trainings on two cores; where it was lost is not known.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

REDELIVERY_DELAY_S = 0.01  # lets the hook return before the interrupt is raised again
_ARRIVED = threading.Event()  # a Ctrl-C arrived (under keep_ctrl_c) and may have been lost


def _on_sigint(signum, frame) -> None:
    _ARRIVED.set()
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived under ``keep_ctrl_c`` since the last
    check: one that something swallowed is delivered here, at a safe point."""
    if _ARRIVED.is_set():
        _ARRIVED.clear()
        raise KeyboardInterrupt("Ctrl-C")


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
    # the note that a Ctrl-C arrived: only where Python's own handler is in place (not
    # under another program's handler), in the main thread, and once when nested
    own_handler = (threading.current_thread() is threading.main_thread()
                   and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if own_handler:
        _ARRIVED.clear()
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        if own_handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _ARRIVED.clear()
        sys.unraisablehook = previous
