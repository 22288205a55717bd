"""Bad input after the second review of review 21's CLI fixes: linked subfolders in
predict, augment preview's --out (a FIFO, an empty placeholder), a hyperband or bayesian
oracle's own state entries of the wrong type. tmp_path only."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from autopneumo.errors import RunsError


def test_predict_folder_does_not_silently_drop_a_symlinked_subfolder(tmp_path):
    """#14's fix keeps ``not p.is_dir()``: a subfolder that is a symlink (scans/ward3 ->
    /mnt/pacs/ward3) is not recursed into by Python 3.11's rglob and, being a folder,
    is neither listed nor skipped: its images vanish without a word and --strict passes.
    The README says predict reads the folders given "and their subfolders"."""
    from autopneumo.inference import image_files

    elsewhere = tmp_path / "pacs" / "ward3"
    elsewhere.mkdir(parents=True)
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(elsewhere / "scan1.png")
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(folder / "good.png")
    os.symlink(elsewhere, folder / "ward3")
    files, skipped = image_files([folder])
    # not followed (it could lead anywhere, or loop), but counted as skipped
    assert files == [folder / "good.png"] and skipped == [folder / "ward3"]
    assert image_files([folder / "ward3"])[0] == [folder / "ward3" / "scan1.png"]


@pytest.fixture(scope="module")
def hyperband_project(tiny_kermany, tmp_path_factory):
    from autopneumo.tuning import SearchConfig, search
    from tests.tiny_spaces import small_cnn

    root = tmp_path_factory.mktemp("hb")
    space = root / "small_cnn.yaml"
    space.write_text(small_cnn())
    config = SearchConfig("base_cnn", "flip", data=tiny_kermany, tuner="hyperband",
                          max_trials=2, epochs=2, image_size=32, runs_dir=root / "runs",
                          spaces=[space], seed=1)
    search(config)
    return config


@pytest.mark.parametrize(("key", "value"), [("brackets", 3), ("current_bracket", "x"),
                                            ("brackets", [3]), ("factor", True)])
def test_resume_of_a_hyperband_oracle_entry_of_the_wrong_type_is_one_line(
        hyperband_project, tmp_path, key, value):
    """#5's fix checks only the base Oracle's entries (_ORACLE_STATE); the commit says an
    oracle entry of the wrong type now stops with the one line naming the file. A
    hyperband oracle.json whose own "brackets" is 3 reloads fine and then fails in
    keras-tuner's populate_space: a TypeError traceback (same class of input as
    '{"start_order": 3}', which is now refused)."""
    import shutil

    from autopneumo.tuning import SearchConfig, search

    config = hyperband_project
    copy = tmp_path / "runs"
    shutil.copytree(config.runs_dir, copy)
    oracle = copy / config.project / "oracle.json"
    state = json.loads(oracle.read_text())
    assert key in state
    state[key] = value
    oracle.write_text(json.dumps(state))
    with pytest.raises(RunsError, match=re.escape(str(oracle))):
        search(SearchConfig(**{**config.__dict__, "runs_dir": copy, "max_trials": 4}))



def test_augment_preview_writes_into_an_empty_png_placeholder(tiny_kermany, tmp_path):
    """#1's fix refuses any existing --out whose first bytes are not the PNG signature,
    so a 0-byte placeholder (``mktemp --suffix .png``, Python's
    ``NamedTemporaryFile(suffix=".png")``, a ``touch``) is refused as "an existing file
    that is not a PNG; not replaced", though it holds nothing to protect."""
    from click.testing import CliRunner

    from autopneumo.cli import main

    out = tmp_path / "grid.png"
    out.touch()
    result = CliRunner().invoke(main, ["augment", "preview", "--policy", "flip", "--data",
                                       str(tiny_kermany), "--image-size", "32", "--images",
                                       "1", "--draws", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_augment_preview_does_not_hang_on_a_fifo_named_as_out(tmp_path):
    """#1's _check_png_out opens an existing --out to read its signature: a FIFO there
    (grid.png made by mkfifo, a pipe some viewer reads) blocks that open() until a writer
    comes, forever. Before the fix the grid was written (renamed over it); the #14 fix
    took care never to open a FIFO in predict. It should be refused (not a regular file)
    or replaced, at once (here --data names no folder: exit 2 either way, quickly)."""
    import signal

    from click.testing import CliRunner

    from autopneumo.cli import main

    out = tmp_path / "grid.png"
    os.mkfifo(out)

    class Hung(BaseException):  # not an OSError, which _check_png_out catches
        pass

    def hung(*_):
        raise Hung("augment preview blocked opening the FIFO at --out")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        result = CliRunner().invoke(main, ["augment", "preview", "--policy", "flip", "--data",
                                           str(tmp_path / "no-data"), "--out", str(out)])
    except Hung as exc:
        pytest.fail(str(exc))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exit_code == 2, result.output
