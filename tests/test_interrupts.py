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
