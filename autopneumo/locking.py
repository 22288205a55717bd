"""One search per project folder: a lock file holding the owner's pid.

A lock left by a process that no longer runs (killed with -9, a crashed machine) is
detected and taken over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import RunsError

LOCK_FILE = "autopneumo.lock"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def project_lock(project_dir: Path) -> Iterator[Path]:
    project_dir.mkdir(parents=True, exist_ok=True)
    path = project_dir / LOCK_FILE
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder != os.getpid() and _alive(holder):
                raise RunsError(
                    f"{project_dir}: another search (pid {holder}) is running on this project; "
                    "wait for it or stop it"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    else:  # pragma: no cover - lost the race three times
        raise RunsError(f"{project_dir}: cannot take the project lock {path}")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()
