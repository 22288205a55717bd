"""`make demo` picks its data the way the README says: DATA / AUTOPNEUMO_DATA, else the
shared Kermany folder where it exists, else a download. The autopneumo command is replaced
by a script that records its arguments, so nothing trains."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _demo(tmp_path: Path, **variables: str) -> list[str]:
    """Runs `make demo` with a fake autopneumo; returns the calls it received, one a line."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "autopneumo"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'if [ "$1 $2" = "data download" ]; then echo /downloaded/pneumoniamnist.npz; fi\n'
    )
    fake.chmod(0o755)
    stamp = tmp_path / "installed"
    stamp.touch()
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOPNEUMO_DATA", "DATA", "MAKEFLAGS")}
    args = [f"{k}={v}" for k, v in {"AP": str(fake), "STAMP": str(stamp), **variables}.items()]
    subprocess.run(["make", "-s", "-C", str(REPO), "demo", *args], env=env, check=True,
                   capture_output=True, text=True, timeout=60)
    return log.read_text().splitlines()


def _data_of(calls: list[str]) -> set[str]:
    searches = [c.split() for c in calls if c.startswith("search ")]
    assert len(searches) == 2
    return {words[words.index("--data") + 1] for words in searches}


def test_demo_uses_the_shared_folder_when_no_data_is_given(tmp_path):
    shared = tmp_path / "chest_xray"
    shared.mkdir()
    calls = _demo(tmp_path, SHARED_DATA=str(shared))
    assert not any(c.startswith("data download") for c in calls)
    assert _data_of(calls) == {str(shared)}
    assert calls[-1].startswith("report ")


def test_demo_downloads_when_the_shared_folder_is_absent(tmp_path):
    calls = _demo(tmp_path, SHARED_DATA=str(tmp_path / "missing"))
    assert calls[0] == "data download"
    assert _data_of(calls) == {"/downloaded/pneumoniamnist.npz"}


def test_demo_data_wins_over_the_shared_folder(tmp_path):
    shared = tmp_path / "chest_xray"
    shared.mkdir()
    calls = _demo(tmp_path, SHARED_DATA=str(shared), DATA="/given/folder")
    assert _data_of(calls) == {"/given/folder"}
