"""A daemon thread that calls ``tick()`` every ``interval`` seconds while its ``with``
block runs: a worker's heartbeat, the chief's watchdog, a study's time accounting."""

from __future__ import annotations

import threading


class Periodic:
    """Subclasses define ``tick()``; the first call comes one ``interval`` after
    ``__enter__``, the last before ``__exit__`` returns (it waits for a running one)."""

    def __init__(self, interval: float, name: str):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def tick(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
