"""Ctrl-C is never lost, even when it lands inside garbage collection.

Python runs a signal's handler in the main thread at its next bytecode, whatever that
bytecode belongs to. During ``gc.collect()`` that is often a weakref callback or a
``__del__``, and an exception raised there is "unraisable": Python prints it and carries
on. A search collects garbage after every trial (and Keras' ``clear_session`` does too),
so a Ctrl-C landing in that window used to be swallowed and the search ran on.

``keep_ctrl_c()`` catches such a swallowed ``KeyboardInterrupt`` and delivers the
interrupt again a moment later, from a helper thread, so that it lands in ordinary code
(once the collection is over) and stops the command the usual way.
"""

from __future__ import annotations

import _thread
import contextlib
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
