"""One search per project folder: a lock file naming its owner (host, pid namespace, pid and
the process's start time).

A lock is stale, and taken over, only where this process can tell that its owner is gone:
the same host and pid namespace, and no process with that pid started at that time (killed
with -9, a crash; a pid reused since does not keep it alive). A lock from another host or
container (a runs folder on a shared file system) is never taken over: the error names the
owner and the file to delete once nothing runs there. The lock is created with its content
in one step, and a takeover moves the stale file away and checks that it moved the one it
judged, so two processes cannot both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RunsError

LOCK_FILE = "autopneumo.lock"


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # past a C int: no such process
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name may hold spaces


def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def owner() -> dict[str, Any]:
    """What this process writes into a lock it takes."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid_namespace": _namespace(), "pid": pid,
            "started": _start_time(pid)}


def _read(path: Path) -> tuple[bytes, dict[str, Any] | None]:
    """The lock's bytes and its owner (None: unreadable, not UTF-8 or not an owner, which
    no search writes; a bare pid from older versions is an owner on this host)."""
    try:
        data = path.read_bytes()
    except OSError:
        return b"", None
    try:
        holder = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        holder = None
    if _is_pid(holder):
        holder = {"pid": holder}
    if not isinstance(holder, dict) or not _is_pid(holder.get("pid")):
        return data, None
    return data, holder


def _is_pid(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _gone(holder: dict[str, Any] | None, me: dict[str, Any]) -> bool:
    """Is the lock's owner certainly not running? Only answerable on its own host."""
    if holder is None:
        return True  # garbage: no search writes that
    if holder.get("host", me["host"]) != me["host"]:
        return False
    if holder.get("pid_namespace", me["pid_namespace"]) != me["pid_namespace"]:
        return False
    pid = holder["pid"]
    if pid == me["pid"] or not process_alive(pid):  # our own pid: left by this process, not held
        return True
    started = holder.get("started")
    return started is not None and _start_time(pid) not in (None, started)  # pid reused


def held(path: Path) -> bool:
    """Is the lock file ``path`` held by a process that may be running: present, and not
    left by one known to be gone (knowable only on its own host)? A worker asks this of its
    chief's project."""
    if not path.is_file():
        return False
    _, holder = _read(path)
    return holder is not None and not _gone(holder, owner())


def _describe(holder: dict[str, Any]) -> str:
    where = f" on host {holder['host']}" if holder.get("host") else ""
    return f"pid {holder['pid']}{where}"


@contextlib.contextmanager
def project_lock(project_dir: Path, file: str = LOCK_FILE, what: str = "search"
                 ) -> Iterator[Path]:
    """``file`` in ``project_dir`` held while a ``what`` (a search, a study, a finalize)
    runs there: a second one refuses in one line naming the holder."""
    project_dir.mkdir(parents=True, exist_ok=True)
    path = project_dir / file
    me = owner()
    mine = json.dumps(me)
    for _ in range(5):
        if _create(path, mine):
            break
        text, holder = _read(path)
        if not _gone(holder, me):
            raise RunsError(
                f"{project_dir}: another {what} ({_describe(holder)}) holds {path}; wait for "
                "it or stop it (if nothing runs there any more, delete that file)")
        _take_over(path, text)
    else:  # pragma: no cover - lost the race every time
        raise RunsError(f"{project_dir}: cannot take the project lock {path}")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_bytes() == mine.encode("utf-8"):
                path.unlink()


def _create(path: Path, content: str) -> bool:
    """Create ``path`` holding ``content`` in one step (a hard link of a written file):
    nobody ever sees it empty. False where it exists."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(content)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create, then write
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, judged: bytes) -> None:
    """Move the stale lock away; if what moved is not the file judged stale (another
    process took the lock in between), put it back."""
    moved = path.with_name(f".{path.name}.{os.getpid()}.stale")
    try:
        os.rename(path, moved)
    except FileNotFoundError:
        return  # someone else moved it: try again
    try:
        if moved.read_bytes() != judged:
            with contextlib.suppress(FileExistsError):
                os.link(moved, path)
    finally:
        moved.unlink(missing_ok=True)
