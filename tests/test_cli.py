"""CLI: thin commands, one-line errors with exit code 2, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from autopneumo.cli import main
from tests.records import write_record


def run(*args, env=None):
    result = CliRunner().invoke(main, list(map(str, args)), env=env, catch_exceptions=False)
    return result


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_family_suggests(tiny_kermany):
    assert_one_line_error(run("search", "--family", "resnt18", "--data", tiny_kermany),
                          "unknown --family 'resnt18'", "did you mean 'resnet18'")


def test_unknown_policy(tiny_kermany):
    assert_one_line_error(run("search", "--family", "base_cnn", "--augment", "flipp",
                              "--data", tiny_kermany), "--augment", "did you mean 'flip'")


def test_augment_preview_names_its_own_policy_option(tiny_kermany, tmp_path):
    """Review 21 #16: augment preview --policy nope said "unknown --augment 'nope'", an
    option augment preview does not have."""
    from autopneumo.errors import OptionError
    from autopneumo.previews import preview_policy

    result = run("augment", "preview", "--policy", "nope", "--data", tiny_kermany,
                 "--out", tmp_path / "p.png")
    assert_one_line_error(result, "unknown --policy 'nope'")
    assert "--augment" not in result.output
    with pytest.raises(OptionError, match="^unknown --policy 'flp' \\(did you mean 'flip'"):
        preview_policy("flp", tiny_kermany, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1"])
def test_recall_target_outside_unit_interval(tiny_kermany, value):
    assert_one_line_error(run("search", "--family", "base_cnn", "--data", tiny_kermany,
                              "--recall-target", value), "--recall-target")


@pytest.mark.parametrize("option", ["--max-trials", "--epochs"])
def test_non_positive_budgets(tiny_kermany, option):
    assert_one_line_error(run("search", "--family", "base_cnn", "--data", tiny_kermany,
                              option, "0"), option)


@pytest.mark.parametrize("command, option", [("search", "--time-budget"), ("study", "--budget")])
def test_a_bad_duration_names_its_option(tiny_kermany, tmp_path, command, option):
    args = ["--family", "base_cnn"] if command == "search" else []
    assert_one_line_error(run(command, *args, "--data", tiny_kermany, "--runs-dir",
                              tmp_path / "runs", option, "xyz"), f"{option} must look like")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--time-budget", ""], "--time-budget must look like"),
    (["--devices", "2"], "--devices goes with --strategy mirrored"),
])
def test_options_that_would_be_ignored_are_refused(tiny_kermany, args, fragment):
    assert_one_line_error(run("search", "--family", "base_cnn", "--data", tiny_kermany, *args),
                          fragment)


def test_a_chiefs_worker_timeout_must_be_positive(tiny_kermany):
    assert_one_line_error(run("search", "--chief", "127.0.0.1:1", "--family", "base_cnn",
                              "--data", tiny_kermany, "--worker-timeout", "-1"),
                          "--worker-timeout must be positive")


@pytest.mark.parametrize("option, value", [("--worker-timeout", "nan"),
                                           ("--time-budget", "nan")])
def test_nan_is_not_a_positive_number_of_seconds(tiny_kermany, option, value):
    """Review 21 #17: validate() checked worker_timeout <= 0, False for NaN: a chief given
    NaN would never reissue a silent worker's trial (--recall-target, --val-fraction and
    --threshold refuse NaN). A time budget of NaN (Python) is refused too."""
    from autopneumo.errors import OptionError
    from autopneumo.tuning import SearchConfig

    field = option.lstrip("-").replace("-", "_")
    config = SearchConfig("base_cnn", "none", role="chief", chief="127.0.0.1:8000",
                          **{field: float(value)})
    with pytest.raises(OptionError, match=f"^{option} must be positive, got nan$"):
        config.validate()
    if option == "--worker-timeout":  # the CLI's --time-budget is a duration ("30m")
        assert_one_line_error(run("search", "--chief", "127.0.0.1:1", "--family", "base_cnn",
                                  "--data", tiny_kermany, option, value),
                              f"{option} must be positive, got nan")


def test_ranking_commands_skip_a_record_whose_trial_id_is_a_list(tmp_path):
    """Review 21 #7: one record with "trial_id": [2] was a pandas TypeError traceback in
    every command that ranks; now it is skipped with a warning naming it."""
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.3)
    bad = runs / "base_cnn__none" / "trial_9" / "record.json"
    bad.parent.mkdir()
    bad.write_text('{"trial_id": [2], "status": "completed"}')
    result = run("leaderboard", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert "trial_9" in result.output
    result = run("report", "--runs-dir", runs, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output


def test_a_space_file_whose_grid_overflows_is_one_line(tmp_path):
    """Review 21 #10: a step too small for its range was an OverflowError traceback in
    search --space (before the data loads); now one line naming the file and key."""
    from autopneumo.spaces import builtin_space

    text = builtin_space("training", "training").path.read_text()
    old = next(x for x in text.splitlines() if x.strip().startswith("label_smoothing:"))
    path = tmp_path / "training.yaml"
    path.write_text(text.replace(
        old, "  label_smoothing: {type: float, min: 0.0, max: 0.1, step: 1.0e-320}"))
    assert_one_line_error(run("search", "--family", "base_cnn", "--augment", "none", "--data",
                              tmp_path / "no-data", "--runs-dir", tmp_path / "runs",
                              "--space", path),
                          str(path), "label_smoothing", "step 1e-320 is too small")


def test_image_size_too_small_for_family(tiny_kermany):
    assert_one_line_error(run("search", "--family", "resnet18", "--data", tiny_kermany,
                              "--image-size", "16"), "--image-size 16", "resnet18")


def test_missing_data_path(tmp_path):
    assert_one_line_error(run("search", "--family", "base_cnn", "--data", tmp_path / "nope",
                              "--runs-dir", tmp_path / "runs"), "data folder not found")
    assert not (tmp_path / "runs").exists()


def test_wrong_layout_and_empty_class(tmp_path):
    (tmp_path / "flat").mkdir()
    assert_one_line_error(run("data", "check", tmp_path / "flat"), "Kermany layout")
    for split in ("train", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            (tmp_path / "k" / split / cls).mkdir(parents=True)
    assert_one_line_error(run("data", "check", tmp_path / "k"), "class folder has no images")


def test_invalid_space_file(tiny_kermany, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: family\nname: base_cnn\nhyperparameters:\n"
                   "  width: {type: float, min: 2.0, max: 1.0}\n")
    assert_one_line_error(run("search", "--family", "base_cnn", "--data", tiny_kermany,
                              "--space", bad), str(bad), "hyperparameters.width", "min (2.0) > max",
                          "line 4")


def test_space_for_another_family(tiny_kermany, tmp_path):
    other = tmp_path / "r.yaml"
    other.write_text("kind: family\nname: resnet18\nhyperparameters: {}\n")
    assert_one_line_error(run("search", "--family", "base_cnn", "--data", tiny_kermany,
                              "--space", other), "resnet18")


def test_data_check_reports_counts_and_problems(tiny_kermany, tmp_path):
    import shutil

    copy = tmp_path / "k"
    shutil.copytree(tiny_kermany, copy)
    (copy / "train" / "NORMAL" / "broken.jpeg").write_text("not an image")
    first = sorted((copy / "train" / "PNEUMONIA").iterdir())[0]
    shutil.copy(first, copy / "test" / "PNEUMONIA" / "person999_bacteria_1.jpeg")
    result = run("data", "check", copy)
    assert result.exit_code == 0, result.output
    assert "unreadable files: 1" in result.output and "broken.jpeg" in result.output
    assert "duplicate groups (byte-identical files): 1 (1 across splits)" in result.output
    assert "train" in result.output and "patients" in result.output


def _pneumoniamnist(path: Path) -> bytes:
    import numpy as np

    arrays = {f"{split}_{part}": np.zeros((2, 28, 28) if part == "images" else (2, 1), np.uint8)
              for split in ("train", "val", "test") for part in ("images", "labels")}
    np.savez(path, **arrays)
    return path.read_bytes()


def test_data_download_from_file_url(tmp_path):
    import hashlib

    src = tmp_path / "p.npz"
    payload = _pneumoniamnist(src)
    md5 = hashlib.md5(payload).hexdigest()
    env = {"AUTOPNEUMO_CACHE": str(tmp_path / "cache")}
    ok = run("data", "download", "--url", src.as_uri(), "--md5", md5, env=env)
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "cache" / "downloads" / "pneumoniamnist.npz").read_bytes() == payload
    bad = run("data", "download", "--url", src.as_uri(), "--md5", "0" * 32,
              env={"AUTOPNEUMO_CACHE": str(tmp_path / "cache2")})
    assert_one_line_error(bad, "checksum mismatch")
    missing = run("data", "download", "--url", (tmp_path / "none.npz").as_uri(),
                  env={"AUTOPNEUMO_CACHE": str(tmp_path / "cache3")})
    assert_one_line_error(missing, "cannot download", "DATA=")
    # without --md5 an earlier file is not trusted: another URL is fetched (and can fail)
    again = run("data", "download", "--url", (tmp_path / "none.npz").as_uri(), env=env)
    assert_one_line_error(again, "cannot download")


def test_data_download_of_anything_but_a_medmnist_npz_keeps_the_cached_one(tmp_path):
    """Review 21 #13: with --url and no --md5, whatever was fetched (an HTML page) replaced
    the cached, verified pneumoniamnist.npz, exit 0, and its path was printed as the .npz.
    Now a download that is not a .npz with the MedMNIST keys is refused in one line."""
    import numpy as np

    env = {"AUTOPNEUMO_CACHE": str(tmp_path / "cache")}
    cached = tmp_path / "cache" / "downloads" / "pneumoniamnist.npz"
    cached.parent.mkdir(parents=True)
    before = _pneumoniamnist(cached)
    page = tmp_path / "index.html"
    page.write_text("<html>not found</html>")
    other = tmp_path / "other.npz"
    np.savez(other, train_images=np.zeros((2, 28, 28), np.uint8))
    for src, says in ((page, "not a .npz archive"),
                      (other, "a .npz without the MedMNIST key 'train_labels'")):
        result = run("data", "download", "--url", src.as_uri(), env=env)
        assert_one_line_error(result, src.as_uri(), says, f"{cached} is left as it was")
        assert cached.read_bytes() == before
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary left
    mirror = tmp_path / "mirror.npz"
    payload = _pneumoniamnist(mirror)  # a MedMNIST .npz still replaces it
    assert run("data", "download", "--url", mirror.as_uri(), env=env).exit_code == 0
    assert cached.read_bytes() == payload


def test_leaderboard_and_report_commands(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.3, seed=1)
    write_record(runs, "base_cnn", "flip", "0", 0.1, seed=2)
    result = run("leaderboard", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    first = next(i for i, ln in enumerate(lines) if "base_cnn" in ln)
    assert "none" in lines[first] and "flip" in lines[first + 1]
    out = tmp_path / "rep"
    result = run("report", "--runs-dir", runs, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and (out / "leaderboard.csv").is_file()
    assert_one_line_error(run("leaderboard", "--runs-dir", tmp_path / "nope"), "runs folder")


def test_families_and_policies_list_their_space_files():
    fams = run("families")
    assert fams.exit_code == 0 and "base_cnn" in fams.output and "resnet18" in fams.output
    pols = run("policies")
    assert pols.exit_code == 0
    for name in ("none", "flip", "geometric", "photometric"):
        assert name in pols.output


@pytest.mark.parametrize("module", ["autopneumo.cli", "autopneumo"])  # python -m autopneumo
def test_console_script_error_has_no_traceback(tmp_path, module):
    exe = [sys.executable, "-m", module]
    proc = subprocess.run([*exe, "data", "check", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"Error: data folder not found: {tmp_path / 'missing'}"]


def test_augment_preview_writes_a_grid(tiny_kermany, tmp_path):
    from PIL import Image

    out = tmp_path / "grid.png"
    result = run("augment", "preview", "--policy", "geometric", "--data", tiny_kermany,
                 "--out", out, "--image-size", "32", "--images", "2", "--draws", "3")
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        width, height = im.size
    assert width > height > 100  # 2 rows x (original + 3 draws)
    assert_one_line_error(run("augment", "preview", "--policy", "geometrc", "--data",
                              tiny_kermany, "--out", out), "did you mean 'geometric'")
    for option, value in (("--images", "0"), ("--draws", "1000")):
        assert_one_line_error(run("augment", "preview", "--policy", "flip", "--data",
                                  tiny_kermany, "--out", out, option, value), option)
    assert_one_line_error(run("augment", "preview", "--policy", "flip", "--data", tiny_kermany,
                              "--out", tmp_path), f"--out {tmp_path}: is a folder")
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert_one_line_error(run("augment", "preview", "--policy", "flip", "--data", tiny_kermany,
                              "--out", afile / "grid.png", "--image-size", "32"),
                          f"{afile}: File exists")


def test_augment_preview_does_not_overwrite_a_file_that_is_not_a_png(tiny_kermany, tmp_path):
    """A trial's record.json (or any non-PNG) named as --out was replaced by the grid."""
    record = tmp_path / "record.json"
    record.write_text('{"trial_id": "0", "status": "completed"}')
    fake = tmp_path / "model.png"
    fake.write_text("not a png")
    for out, fragment in ((record, "ending in .png"), (tmp_path / "grid.txt", "ending in .png"),
                          (fake, "not a PNG")):
        before = out.read_bytes() if out.exists() else None
        assert_one_line_error(run("augment", "preview", "--policy", "flip", "--data",
                                  tiny_kermany, "--image-size", "32", "--images", "1",
                                  "--draws", "1", "--out", out), f"--out {out}", fragment)
        assert (out.read_bytes() if out.exists() else None) == before
    out = tmp_path / "grid.PNG"  # an earlier preview is replaced
    for _ in range(2):
        assert run("augment", "preview", "--policy", "flip", "--data", tiny_kermany,
                   "--image-size", "32", "--images", "1", "--draws", "1",
                   "--out", out).exit_code == 0


def test_baseline_classroom_refuses_a_too_small_image_size_before_loading_data(tiny_kermany,
                                                                              tmp_path):
    """search refused --image-size below a family's smallest input before loading data;
    baseline classroom loaded the data, then Keras failed building the CNN (review 21)."""
    from autopneumo.baseline import classroom
    from autopneumo.errors import OptionError

    for data in (tiny_kermany, tmp_path / "no-data"):  # checked before the data loads
        assert_one_line_error(run("baseline", "classroom", "--data", data, "--runs-dir",
                                  tmp_path / "runs", "--image-size", "16", "--epochs", "1"),
                              "--image-size 16 is too small for base_cnn (at least 32), "
                              "resnet18 (at least 32)")
    with pytest.raises(OptionError, match="--image-size 31 is too small"):
        classroom(tmp_path / "no-data", tmp_path / "runs", image_size=31)
    with pytest.raises(OptionError, match="--image-size must be a whole number"):
        classroom(tmp_path / "no-data", tmp_path / "runs", image_size=32.5)
    assert not (tmp_path / "runs").exists()


def test_gpu_only_options_are_ignored_with_a_note_on_a_cpu():
    import tensorflow as tf

    from autopneumo.distributed import mirrored_strategy
    from autopneumo.errors import AutopneumoWarning
    from autopneumo.tuning import SearchConfig, _gpu_options

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this checks the CPU behaviour")
    import keras

    with pytest.warns(AutopneumoWarning, match="--mixed-precision and --jit: no GPU found, ignored"):
        assert _gpu_options(SearchConfig("base_cnn", "none", mixed_precision=True, jit=True)) == (
            False, False, False)  # (mixed precision, XLA, data on device)
    with pytest.warns(AutopneumoWarning, match="--data-on-device: no GPU found, ignored"):
        assert _gpu_options(SearchConfig("base_cnn", "none", data_on_device=True)) == (
            False, False, False)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert mirrored_strategy(2) is None


def test_search_defaults_to_the_photometric_policy(tiny_kermany, tmp_path, monkeypatch):
    """Without --augment, search and worker use photometric (the ablation's best policy)."""
    import autopneumo.tuning

    seen = []
    monkeypatch.setattr(autopneumo.tuning, "search",
                        lambda config, progress=None: seen.append(config) or [])
    result = run("search", "--family", "base_cnn", "--data", tiny_kermany,
                 "--runs-dir", tmp_path / "runs", "--max-trials", 1)
    assert result.exit_code == 0, result.output
    assert [c.policy for c in seen] == ["photometric"]
    explicit = run("search", "--family", "base_cnn", "--augment", "none", "--data", tiny_kermany,
                   "--runs-dir", tmp_path / "runs", "--max-trials", 1)
    assert explicit.exit_code == 0, explicit.output
    assert seen[-1].policy == "none"


def test_the_commands_printed_as_next_steps_are_shell_quoted(tiny_kermany, tmp_path,
                                                             monkeypatch):
    """Review 21 #15: 'next: autopneumo leaderboard --runs-dir /x/my runs' is two arguments
    to a shell; search's and study's next command and finalize's details path are quoted
    now (as the recorded command is, with shlex.join)."""
    import shlex

    import pandas as pd

    import autopneumo.study
    import autopneumo.tuning

    runs = tmp_path / "my runs $x"
    monkeypatch.setattr(autopneumo.tuning, "search", lambda config, progress=None: [])
    result = run("search", "--family", "base_cnn", "--augment", "none", "--data", tiny_kermany,
                 "--runs-dir", runs, "--max-trials", 1)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith(
        f"next: autopneumo leaderboard --runs-dir {shlex.quote(str(runs))}")
    assert shlex.split(result.output.rstrip().split("next: ")[1])[-1] == str(runs)
    monkeypatch.setattr(autopneumo.study, "run_study", lambda *args: {
        "budget": 60.0, "pairs": ["base_cnn__none"], "spent": {"base_cnn__none": 60.0},
        "total_spent": 60.0, "outcome": {}})
    result = run("study", "--families", "base_cnn", "--augment", "none", "--budget", "1m",
                 "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith(
        f"next: autopneumo report --runs-dir {shlex.quote(str(runs))}")
    module = sys.modules["autopneumo.finalize"]  # `autopneumo.finalize` is the function
    monkeypatch.setattr(module, "finalize", lambda *a, **k: pd.DataFrame([]))
    result = run("finalize", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith(
        f"details: {shlex.quote(str(runs / '_finalize' / 'summary.csv'))}")


def test_an_error_is_one_line_without_keras_backend_set(tmp_path):
    """With KERAS_BACKEND unset (the usual case), a command that loads TensorFlow still
    prints only its one-line error: TensorFlow's CUDA-probe chatter stays hidden."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")  # no keras.json: the default backend
    proc = subprocess.run([sys.executable, "-m", "autopneumo.cli", "report", "--runs-dir",
                           str(tmp_path / "missing")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"Error: runs folder not found: {tmp_path / 'missing'}"]


def test_study_warns_when_a_pairs_share_was_too_short_to_compare(tmp_path, monkeypatch):
    import autopneumo.study

    state = {"budget": 5400.0, "pairs": ["base_cnn__flip", "resnet18__flip"],
             "spent": {"base_cnn__flip": 2700.0, "resnet18__flip": 2700.0},
             "total_spent": 5400.0,
             "outcome": {
                 "base_cnn__flip": {"trials": 9, "completed": 9, "tuner": "hyperband",
                                    "cap": 10, "most_epochs": 10},
                 "resnet18__flip": {"trials": 6, "completed": 6, "tuner": "hyperband",
                                    "cap": 10, "most_epochs": 2}}}
    monkeypatch.setattr(autopneumo.study, "run_study", lambda *args: state)
    result = run("study", "--families", "base_cnn,resnet18", "--augment", "flip",
                 "--budget", "90m", "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.output.splitlines() if ln.startswith("warning: ")]
    assert warnings[0] == ("warning: resnet18__flip: no trial got past 2 of 10 epochs "
                           "(hyperband's early rounds) in its 45 min")
    assert "--budget" in warnings[1] and len(warnings) == 2
    assert "90.0 of 90.0 minutes spent; next:" in result.output
    state["total_spent"] = 5400.0 + 150  # the trials running at the deadline ran on
    result = run("study", "--families", "base_cnn,resnet18", "--augment", "flip",
                 "--budget", "90m", "--runs-dir", tmp_path)
    assert ("92.5 of 90.0 minutes spent (2.5 over: a trial running at the deadline "
            "finishes its epoch); next:") in result.output


@pytest.mark.parametrize("command", ["leaderboard", "report", "ensemble", "finalize"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_top_must_be_positive(tmp_path, command, value):
    assert_one_line_error(run(command, "--runs-dir", tmp_path, "--top", value), "--top",
                          "positive")


@pytest.mark.parametrize("command", ["export", "finalize", "ensemble", "report", "leaderboard"])
def test_a_missing_runs_folder_is_named(tmp_path, command):
    extra = ["--out", tmp_path / "out"] if command == "export" else []
    assert_one_line_error(run(command, "--runs-dir", tmp_path / "missing", *extra),
                          f"runs folder not found: {tmp_path / 'missing'}")


def test_predict_reads_a_finalize_seed_and_refuses_bad_models_and_inputs_in_one_line(tmp_path):
    import json

    import keras
    import numpy as np
    from PIL import Image

    folder = tmp_path / "seed0"  # a finalize seed: model.keras beside final.json
    folder.mkdir()
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.save(folder / "model.keras")
    (folder / "final.json").write_text(json.dumps({
        "family": "base_cnn", "policy": "none", "trial_id": "0001", "threshold": 0.25,
        "recall_target": 0.95, "data": {"image_size": 32, "channels": 1}}))
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(images / "a.jpeg")
    ok = run("predict", "--model", folder, images, "--csv")
    assert ok.exit_code == 0, ok.output
    shown = run("predict", "--model", folder, images)
    assert "threshold 0.2500 (chosen on validation)" in shown.output
    given = run("predict", "--model", folder, images, "--threshold", "0.3")
    assert "threshold 0.3000 (given with --threshold)" in given.output
    # every input unreadable: the table, then one error line, exit 2
    (images / "a.jpeg").write_bytes(b"not an image")
    bad = run("predict", "--model", folder, images)
    assert bad.exit_code == 2 and "UnidentifiedImageError" in bad.output
    assert bad.output.strip().splitlines()[-1] == "Error: none of the 1 images could be read"
    # a corrupt model, a JPEG given as the model, a truncated card
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(images / "a.jpeg")
    (folder / "model.keras").write_bytes(b"garbage")
    assert_one_line_error(run("predict", "--model", folder, images),
                          f"{folder / 'model.keras'}: not a Keras model file")
    assert_one_line_error(run("predict", "--model", images / "a.jpeg", "--threshold", "0.5",
                              images), "not a .keras model file")
    (folder / "final.json").write_text("{ truncated")
    assert_one_line_error(run("predict", "--model", folder, images),
                          f"{folder / 'final.json'} is unreadable")


def test_an_error_before_the_search_begins_prints_only_its_line(tmp_path):
    result = run("search", "--family", "base_cnn", "--data", tmp_path / "missing")
    assert result.exit_code == 2
    assert result.output == f"Error: data folder not found: {tmp_path / 'missing'}\n"


@pytest.mark.parametrize("command", [["leaderboard"], ["report"], ["ensemble", "--top", "2"],
                                     ["finalize"], ["export", "--out", "x"]])
def test_a_runs_dir_that_is_a_file_is_named_as_such(tmp_path, command):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert_one_line_error(run(*command, "--runs-dir", afile),
                          f"--runs-dir {afile}: is a file, not a runs folder")
    assert_one_line_error(run(*command, "--runs-dir", tmp_path / "none"),
                          f"runs folder not found: {tmp_path / 'none'}")


def test_finalize_prints_a_spread_only_where_there_are_seeds_to_spread(tmp_path, monkeypatch):
    """One seed has no standard deviation: "precision 0.800", not "0.800 ± nan"."""
    import pandas as pd

    rows = [dict(rank=1, project="base_cnn__flip", trial_id="3", seeds=1, reused=0,
                 precision_mean=0.8, precision_std=float("nan"), recall_mean=0.95,
                 recall_std=float("nan"), auc_mean=0.9, auc_std=float("nan")),
            dict(rank=2, project="resnet18__flip", trial_id="7", seeds=3, reused=1,
                 precision_mean=0.75, precision_std=0.02, recall_mean=0.96,
                 recall_std=0.01, auc_mean=0.91, auc_std=0.005)]
    module = sys.modules["autopneumo.finalize"]  # `autopneumo.finalize` is the function
    monkeypatch.setattr(module, "finalize", lambda *a, **k: pd.DataFrame(rows))
    out = CliRunner().invoke(main, ["finalize", "--runs-dir", str(tmp_path)],
                             catch_exceptions=False).output
    assert ("#1 base_cnn__flip trial 3: precision 0.800, recall 0.950, AUC 0.900 (1 seed)"
            in out)
    assert ("#2 resnet18__flip trial 7: precision 0.750 ± 0.020, recall 0.960 ± 0.010, "
            "AUC 0.910 ± 0.005 (3 seeds, 1 from an earlier run)") in out
    assert "nan" not in out


def test_search_defaults_to_the_recall_target_of_the_mission(monkeypatch, tmp_path):
    """Recall >= 0.95 unless --recall-target says otherwise (a mutant default survived)."""
    import autopneumo.cli

    seen = []
    monkeypatch.setattr(autopneumo.cli, "_run_search", seen.append)
    run("search", "--family", "base_cnn", "--data", tmp_path)
    run("search", "--family", "base_cnn", "--data", tmp_path, "--recall-target", "0.9")
    assert [config.recall_target for config in seen] == [0.95, 0.9]


def _tiny_model(folder, layers, card=None, input_shape=(32, 32, 1)):
    import json

    import keras

    folder.mkdir(parents=True)
    keras.Sequential([keras.Input(input_shape), *layers]).save(folder / "model.keras")
    if card is not None:
        (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def _sigmoid_model(folder):
    """A 32 px grey model of one sigmoid score, with a card at threshold 0.5."""
    import keras

    return _tiny_model(folder, [keras.layers.Flatten(),
                                keras.layers.Dense(1, activation="sigmoid")],
                       {"threshold": 0.5, "image_size": 32, "channels": 1})


def test_predict_refuses_models_and_cards_it_cannot_use_in_one_line(tmp_path):
    """The deploy review's cases: a softmax pair (its 2N scores were dealt to N files), a
    logit output (a "probability" of 125), a card that does not match its model (a
    TensorFlow traceback), a threshold outside [0, 1], a card that is not an object."""
    import json

    import keras
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40), 60 * i, np.uint8)).save(images / f"{i}.png")
    card = {"threshold": 0.5, "image_size": 32, "channels": 1}
    flat = keras.layers.Flatten()
    pair = _tiny_model(tmp_path / "pair", [flat, keras.layers.Dense(2, activation="softmax")],
                       card)
    assert_one_line_error(run("predict", "--model", pair, images),
                          "its output has shape (None, 2); predict needs one score per image")
    logits = _tiny_model(tmp_path / "logits", [keras.layers.Flatten(), keras.layers.Dense(
        1, kernel_initializer="ones", bias_initializer="ones")], card)
    assert_one_line_error(run("predict", "--model", logits, images),
                          "it outputs scores outside [0, 1]")
    sigmoid = [keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")]
    other = _tiny_model(tmp_path / "other", sigmoid, {**card, "image_size": 64})
    assert_one_line_error(run("predict", "--model", other, images),
                          "model_card.json says 64 px x 1 channel(s)",
                          "takes 32 px x 1: they do not belong together")
    good = _tiny_model(tmp_path / "good", [keras.layers.Flatten(),
                                           keras.layers.Dense(1, activation="sigmoid")], card)
    for bad, message in (({**card, "threshold": 1.7}, "threshold 1.7 is outside [0, 1]"),
                         ({**card, "threshold": "abc"}, "is not a number"),
                         ([card], "is not a JSON object")):
        (good / "model_card.json").write_text(json.dumps(bad))
        assert_one_line_error(run("predict", "--model", good, images), message)
    (good / "model_card.json").write_text(json.dumps(card))
    assert run("predict", "--model", good, images).exit_code == 0


def test_predict_on_a_damaged_trial_folder_is_one_line(tmp_path):
    """A trial record whose "data" is a string was an AttributeError (model_card), and a
    non-numeric validation score with --recall-target a ValueError (review 21)."""
    import json

    import numpy as np
    from PIL import Image

    image = tmp_path / "x.png"
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(image)
    trial = _sigmoid_model(tmp_path / "trial")
    (trial / "model_card.json").unlink()
    record = {"trial_id": "0", "threshold": 0.5, "recall_target": 0.9,
              "data": {"image_size": 32, "channels": 1}}
    for key in ("data", "val"):
        (trial / "record.json").write_text(json.dumps({**record, key: "x"}))
        assert_one_line_error(run("predict", "--model", trial, image),
                              f"{trial / 'record.json'}: its \"{key}\" is not a mapping")
    (trial / "record.json").write_text(json.dumps(record))
    rows = "split,file,label,probability\nval,a.jpeg,0,0.2\nval,b.jpeg,1,abc\n"
    (trial / "predictions.csv").write_text(rows)
    assert_one_line_error(run("predict", "--model", trial, "--recall-target", "0.9", image),
                          f"{trial / 'predictions.csv'}: 1 validation row(s) without a 0/1")
    (trial / "validation_scores.csv").write_text(
        "file,label,probability\na.jpeg,0,0.2\nb.jpeg,2,0.7\nc.jpeg,1,inf\n")
    assert_one_line_error(run("predict", "--model", trial, "--recall-target", "0.9", image),
                          f"{trial / 'validation_scores.csv'}: 2 validation row(s)")
    (trial / "validation_scores.csv").write_text(
        "file,label,probability\na.jpeg,0,0.2\nb.jpeg,1,0.7\n")
    assert run("predict", "--model", trial, "--recall-target", "0.9", image).exit_code == 0
    assert run("predict", "--model", trial, image).exit_code == 0


def test_predict_keeps_long_names_whole_and_says_what_it_skipped_or_failed(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    import autopneumo.inference

    model = _sigmoid_model(tmp_path / "m")
    images = tmp_path / "site_A" / "2026-11-27"
    images.mkdir(parents=True)
    stem = "patient_000123_chest_AP_portable_series"
    for i in (1, 2):
        Image.fromarray(np.full((40, 40), 90 * i, np.uint8)).save(images / f"{stem}{i}.jpeg")
    (images / "notes.txt").write_text("not an image")
    (images / "scan.gif").write_bytes(b"GIF89a")
    Image.fromarray(np.full((80, 80), 50, np.uint8)).save(images / "scanner.tif")  # read
    shown = run("predict", "--model", model, tmp_path / "site_A", env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    files = "".join(line.split("│")[1].strip() for line in shown.output.splitlines()
                    if line.startswith("│"))  # the file column, its folds joined
    assert f"{stem}1.jpeg" in files, shown.output
    assert "…" not in shown.output
    assert ("2 file(s) in the given folders (and their subfolders) skipped, neither images "
            "by their suffix nor DICOM by their content (.gif, .txt)") in shown.output
    assert "scanner.tif" in files  # a .tif is read
    (images / f"{stem}2.jpeg").write_bytes(b"broken")
    as_csv = run("predict", "--model", model, images, "--csv")
    assert as_csv.exit_code == 0
    assert "1 of 3 images could not be read (the error column says why)" in as_csv.output
    assert as_csv.stdout.splitlines()[1].endswith(",0.5")  # the threshold that made the label
    # the Python API takes one path as well as a list
    frame = autopneumo.inference.predict(model, str(images / f"{stem}1.jpeg"))
    assert len(frame) == 1 and frame["probability"].dtype == float
    assert json.loads((model / "model_card.json").read_text())["threshold"] == 0.5


def test_predict_lists_a_broken_link_in_a_folder_and_never_opens_a_fifo(tmp_path):
    """image_files kept only regular files: a dangling link gone.png was neither scored,
    nor an error row, nor skipped, so --strict passed with an image missing (review 21).
    A FIFO is never opened (reading one waits for a writer)."""
    import io
    import os

    import numpy as np
    import pandas as pd
    from PIL import Image

    from autopneumo.inference import image_files

    model = _sigmoid_model(tmp_path / "m")
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(folder / "good.png")
    os.symlink(folder / "moved-away.png", folder / "gone.png")
    os.symlink("loop.png", folder / "loop.png")
    os.symlink(folder / "moved-away", folder / "IM0001")  # no suffix: skipped
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(folder / "pipe")
    files, skipped = image_files([folder])
    assert [f.name for f in files] == ["gone.png", "good.png", "loop.png", "pipe.png"]
    assert [f.name for f in skipped] == ["IM0001", "pipe"]
    out = run("predict", "--model", model, folder, "--csv", "--strict")
    assert out.exit_code == 1, out.output
    frame = pd.read_csv(io.StringIO(out.stdout)).set_index("file")
    assert frame.loc[str(folder / "gone.png"), "error"] == (
        f"FileNotFoundError: a broken link (to {folder / 'moved-away.png'})")
    assert frame.loc[str(folder / "pipe.png"), "error"].startswith(
        "FileNotFoundError: not a regular file")
    assert frame["error"].isna().sum() == 1  # good.png is scored
    assert "3 of 4 images could not be read" in out.output


def test_predict_csv_names_each_file_so_it_joins_back_and_scores_it_once(tmp_path, monkeypatch):
    """A relative name starting like a formula gets './' (the CSV escaped it to
    "'-minus.png", which names no file); a file given twice is scored once."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    model = _sigmoid_model(tmp_path / "m")
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("-minus.png", "=sum.png", "plain.png"):
        Image.fromarray(np.full((40, 40), 100, np.uint8)).save(folder / name)
    monkeypatch.chdir(folder)
    out = run("predict", "--model", model, ".", "plain.png", "--csv")
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert sorted(frame.file) == ["./-minus.png", "./=sum.png", "plain.png"]
    assert all((folder / f).is_file() for f in frame.file)  # every cell names its file
    assert frame.file.str.endswith("plain.png").sum() == 1


def test_predict_scores_but_flags_images_a_radiograph_model_should_not_be_trusted_on(tmp_path):
    """The deploy review's 1x1 grey square was called pneumonia at 0.99996 with nothing
    said: tiny, strip-shaped and blank images are scored and flagged."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    model = _sigmoid_model(tmp_path / "m")
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (200, 180), dtype=np.uint8)).save(folder / "chest.png")
    Image.fromarray(np.full((1, 1), 128, np.uint8)).save(folder / "dot.png")
    Image.fromarray(rng.integers(0, 256, (100, 500), dtype=np.uint8)).save(folder / "strip.png")
    Image.fromarray(np.full((200, 200), 7, np.uint8)).save(folder / "blank.png")
    out = run("predict", "--model", model, folder, "--csv")
    assert out.exit_code == 0, out.output
    assert "3 of 4 images scored with a warning" in out.output
    frame = pd.read_csv(io.StringIO(out.stdout)).set_index("file")  # stderr apart
    warnings = {Path(f).name: w for f, w in frame["warning"].items()}
    assert pd.isna(warnings["chest.png"])
    assert warnings["dot.png"] == "only 1x1 px; nearly blank"
    assert warnings["strip.png"] == "aspect ratio 5.0, not a chest radiograph's"
    assert warnings["blank.png"] == "nearly blank"
    assert frame["probability"].notna().all()  # scored all the same
    shown = run("predict", "--model", model, folder / "dot.png", env={"COLUMNS": "200"})
    assert "warning: only 1x1 px; nearly blank" in shown.output
    # --strict: every row written, then exit 1 for a pipeline; clean input still exits 0
    strict = run("predict", "--model", model, folder, "--csv", "--strict")
    assert strict.exit_code == 1 and len(strict.stdout.splitlines()) == 1 + 4
    assert "Error" not in strict.output
    assert run("predict", "--model", model, folder / "chest.png", "--strict").exit_code == 0
    for name in ("dot.png", "strip.png", "blank.png"):
        (folder / name).unlink()
    (folder / "notes.txt").write_text("skipped")
    assert run("predict", "--model", model, folder).exit_code == 0
    assert run("predict", "--model", model, folder, "--strict").exit_code == 1
    (folder / "notes.txt").unlink()
    (folder / "broken.png").write_bytes(b"not a png")
    assert run("predict", "--model", model, folder, "--strict").exit_code == 1
    (folder / "broken.png").unlink()
    assert run("predict", "--model", model, folder, "--strict").exit_code == 0


def test_a_predictor_loads_its_model_once_and_scores_files_and_decoded_images_alike(
        tmp_path, monkeypatch):
    import keras
    import numpy as np
    from PIL import Image

    import autopneumo
    import autopneumo.hypermodel
    from autopneumo.data.images import decode_image
    from autopneumo.errors import OptionError

    model = _tiny_model(tmp_path / "m", [keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                         keras.layers.Dense(1, activation="sigmoid")],
                        {"threshold": 0.5, "image_size": 32, "channels": 1})
    rng = np.random.default_rng(0)
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (90, 80), dtype=np.uint8)).save(files[-1])
    loads = []
    real = autopneumo.hypermodel.load_trained_model
    monkeypatch.setattr(autopneumo.hypermodel, "load_trained_model",
                        lambda path, data=None: loads.append(path) or real(path, data))
    scorer = autopneumo.Predictor(model)
    first, second = scorer.predict(files[:2]), scorer.predict(files[2])
    assert len(loads) == 1 and (scorer.image_size, scorer.channels) == (32, 1)
    assert scorer.card.blobs == ()  # the model file's bytes are not kept once loaded
    once = autopneumo.predict(model, files)  # the function: the same frame
    np.testing.assert_allclose(once.probability, [*first.probability, *second.probability],
                               atol=1e-6)  # batches of 2 and 1 against 3: float arithmetic
    assert once.attrs == {**first.attrs, "skipped": []}
    decoded = np.stack([decode_image(f, 32, 1) for f in files])
    np.testing.assert_allclose(scorer.scores(decoded), once.probability, atol=1e-6)
    assert scorer.scores(decoded[:0]).shape == (0,)
    for bad in (decoded.astype(np.float32), decoded[:, :16], decoded[0]):
        with pytest.raises(OptionError, match=r"takes uint8 images of shape \(N, 32, 32, 1\)"):
            scorer.scores(bad)


def test_the_predict_table_keeps_every_file_name_beside_long_notes_at_80_columns():
    """The README review's B1: one row with an error or a long warning squeezed the file
    column to nothing at 80 columns (any piped output), leaving scores without names; and
    B5: a score just under the threshold printed equal to it beside the lower label."""
    import pandas as pd
    from rich.console import Console

    from autopneumo.terminal import print_predictions

    names = ["scans/site_A/patient_000123_chest_AP.png", "scans/site_A/patient_000124.png",
             "scans/strip.png", "scans/broken.png"]
    frame = pd.DataFrame({
        "file": names, "probability": [0.465885, 0.9, 0.2, float("nan")],
        "label": ["NORMAL", "PNEUMONIA", "NORMAL", None],
        "error": [None, None, None, "UnidentifiedImageError: cannot identify image file "
                                      "'scans/broken.png' " + "x" * 60],
        "warning": [None, None, "only 200x50 px; aspect ratio 4.0, not a chest radiograph's",
                    None]})
    frame.attrs["threshold"] = 0.465898
    for width in (60, 80, 100):
        console = Console(width=width, record=True)
        print_predictions(frame, console)
        text = console.export_text()
        cells = [line.split("│") for line in text.splitlines() if line.startswith("│")]
        files = "".join(c[1].strip() for c in cells)  # the file column, its folds joined
        notes = "".join(c[4].strip() for c in cells if len(c) > 4)
        for name in names:
            assert name in files, (width, name, text)
        assert "0.46588 " in text and "0.4659 " not in text.split("┡", 1)[1]
        assert "aspectratio4.0" in notes.replace(" ", "") or width < 80
        assert "UnidentifiedImageError" in notes.replace(" ", "") or width < 80


def test_a_flat_16bit_image_is_flagged_nearly_blank_before_its_stretch(tmp_path):
    """The README review's B3: one stored level of noise (1000 and 1001) in a 16-bit PNG
    is stretched to full-contrast 0/255 noise, and the decoded image no longer looked
    blank; the same image in 8 bits was flagged. A 16-bit radiograph is not."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    model = _sigmoid_model(tmp_path / "m")
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2, (128, 128))
    Image.fromarray((1000 + noise).astype(np.uint16)).save(folder / "flat16.png")
    Image.fromarray((200 + noise).astype(np.uint8)).save(folder / "flat8.png")
    ramp = np.add.outer(np.arange(128), np.arange(128)) * 12 + rng.integers(0, 40, (128, 128))
    Image.fromarray(ramp.astype(np.uint16)).save(folder / "xray16.png")
    out = run("predict", "--model", model, folder, "--csv")
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(io.StringIO(out.stdout))
    warnings = {Path(f).name: w for f, w in zip(frame["file"], frame["warning"], strict=True)}
    assert warnings["flat16.png"] == warnings["flat8.png"] == "nearly blank"
    assert pd.isna(warnings["xray16.png"])


def test_a_search_says_which_files_in_the_data_folder_it_does_not_read():
    """The README review's U4: a .tif in a training folder was dropped without a word (only
    `data check` listed it), while predict reads .tif files."""
    import warnings
    from types import SimpleNamespace

    from autopneumo.errors import AutopneumoNote
    from autopneumo.tuning import _warn_about_data

    with pytest.warns(AutopneumoNote) as said:
        _warn_about_data(SimpleNamespace(manifest={
            "source": "kermany", "ignored": ["train/NORMAL/a.tif", "train/NORMAL/notes.txt",
                                             "test/PNEUMONIA/b.tif"]}))
    assert [str(w.message) for w in said] == [
        "3 file(s) in the data folder are not read, neither images by their suffix nor DICOM "
        "by their content (.tif, .txt); training reads .jpeg/.jpg/.png files and DICOM files "
        "whatever their name (`autopneumo data check` lists them)"]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _warn_about_data(SimpleNamespace(manifest={"source": "kermany", "ignored": []}))
    assert said == []


def test_data_check_names_the_files_it_does_not_read(tmp_path):
    """The diff review's 3: "data check lists them" was a count under an old suffix list."""
    from tests.conftest import make_kermany

    root = make_kermany(tmp_path / "k", {"train": 4, "test": 2})
    (root / "train" / "NORMAL" / "scan.tif").write_bytes(b"II*\x00")
    (root / "test" / "PNEUMONIA" / "notes.txt").write_text("x")
    out = run("data", "check", root, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "not read (neither .jpeg/.jpg/.png/.dcm/.dicom nor DICOM by content): 2" \
        in out.output
    assert "train/NORMAL/scan.tif" in out.output and "test/PNEUMONIA/notes.txt" in out.output


def test_a_model_card_with_odd_provenance_or_members_is_not_a_traceback(tmp_path):
    """The diff review: a card whose provenance is not an object crashed the new sha256
    check; such a card has no digest to check (as cards written before it)."""
    import json

    import numpy as np
    from PIL import Image

    model = _sigmoid_model(tmp_path / "m")
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(tmp_path / "x.png")
    card = json.loads((model / "model_card.json").read_text())
    for provenance in ("abc", ["x"], None):
        (model / "model_card.json").write_text(json.dumps({**card, "provenance": provenance}))
        out = run("predict", "--model", model, tmp_path / "x.png")
        assert out.exit_code == 0 and "Traceback" not in out.output, out.output


def test_spaces_checks_every_file_without_data_and_names_each_problem(tmp_path):
    """The extensibility review's S5: a space file's errors showed only when a search of
    that family or policy started."""
    import shutil

    from autopneumo.paths import spaces_dir

    ok = run("spaces")
    assert ok.exit_code == 0 and "every search-space file is valid" in ok.output
    folder = tmp_path / "spaces"
    shutil.copytree(spaces_dir(), folder)
    (folder / "families" / "resnet18.yaml").write_text(
        "kind: family\nname: resnet18\nhyperparameters:\n  widht: {type: fixed, value: 1.0}\n")
    (folder / "augment" / "geometric.yaml").write_text(
        "kind: augment\nname: geometric\nhyperparameters:\n"
        "  rotation: {type: float, min: 0.3, max: 0.1}\n")
    bad = run("spaces", env={"AUTOPNEUMO_SPACES": str(folder)})
    assert bad.exit_code == 2
    lines = [line for line in bad.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 2, bad.output
    assert "resnet18.yaml: hyperparameters.widht: unknown hyperparameter" in lines[0]
    assert "geometric.yaml: hyperparameters.rotation: min (0.3) > max (0.1)" in lines[1]


@pytest.mark.slow
def test_spaces_build_catches_a_builder_that_fails_at_the_defaults(tmp_path, monkeypatch):
    """The extensibility review's leftover: a builder failing at a space's first values was
    found only by a search, after the data loaded. `spaces --build` builds each family and
    policy at its defaults, as keras-tuner does when it makes the tuner. (The shipped
    builders state their ranges since session 22, which refuse both values below before
    any build: here they state none, as a plugin's builder may.)"""
    import shutil

    import autopneumo.spaces
    from autopneumo.paths import spaces_dir

    monkeypatch.setattr(autopneumo.spaces, "literal_choices", lambda builder: {})
    from tests.tiny_spaces import small_cnn

    folder = tmp_path / "spaces"
    shutil.copytree(spaces_dir(), folder)
    (folder / "families" / "base_cnn.yaml").write_text(
        small_cnn().replace('value: "32"', 'value: "32-x"'))
    geometric = folder / "augment" / "geometric.yaml"
    valid = geometric.read_text()
    geometric.write_text(valid.replace("zoom: {type: float, min: 0.0, max: 0.2, step: 0.05, "
                                       "default: 0.1}", "zoom: {type: fixed, value: 2.0}"))
    env = {"AUTOPNEUMO_SPACES": str(folder)}
    assert run("spaces", env=env).exit_code == 0  # the files alone are valid
    bad = run("spaces", "--build", env=env)
    assert bad.exit_code == 2, bad.output
    lines = [line for line in bad.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 2, bad.output  # each once: the policies with a family that builds
    assert lines[0].startswith("Error: family base_cnn with policy combined cannot be built")
    assert lines[0].endswith("ValueError: invalid literal for int() with base 10: 'x' (check "
                             "the space files' values against the builders' arguments)")
    assert lines[1].startswith("Error: family densenet121 with policy geometric cannot be built")
    assert "'augment.zoom': 2.0" in lines[1]
    (folder / "families" / "base_cnn.yaml").write_text(small_cnn())
    geometric.write_text(valid)
    good = run("spaces", "--build", env=env)
    assert good.exit_code == 0 and "(each built at its defaults)" in good.output, good.output


def test_library_warnings_are_one_line_each_on_the_command_line(capsys):
    """The API review's leftover: the library printed its warnings to stderr, which a Python
    caller could neither filter nor record. They are AutopneumoWarnings now; the CLI still
    shows each as one `warning:` / `note:` line, every time it is issued, and leaves other
    warnings to Python."""
    import warnings

    from autopneumo.cli import _warnings_as_lines
    from autopneumo.errors import AutopneumoNote, warn

    with pytest.warns(FutureWarning, match="someone else's") as others, _warnings_as_lines():
        for _ in range(2):
            warn("skipped 1 unreadable image(s): a.jpeg")
        warn("trial_3 was begun but never recorded", AutopneumoNote)
        warnings.warn("someone else's", FutureWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == [
        "warning: skipped 1 unreadable image(s): a.jpeg"] * 2 + [
        "note: trial_3 was begun but never recorded"]
    assert [w.category for w in others] == [FutureWarning]  # left to Python


def test_a_python_caller_can_filter_autopneumo_warnings():
    import warnings
    from types import SimpleNamespace

    import autopneumo
    from autopneumo.tuning import _warn_about_data

    dataset = SimpleNamespace(manifest={"source": "kermany", "image_size": 64,
                                        "test_images_also_in_train_or_val": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error", autopneumo.AutopneumoWarning)
        with pytest.raises(autopneumo.AutopneumoWarning, match="2 test image"):
            _warn_about_data(dataset)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=autopneumo.AutopneumoWarning)
        _warn_about_data(dataset)
    assert said == []


def test_the_command_line_shows_a_plugin_that_did_not_load_as_one_warning_line(tmp_path):
    """End to end, in a fresh process whose PYTHONWARNINGS would hide every warning."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "AUTOPNEUMO_PLUGINS": "not_installed_anywhere_xyz",
           "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "autopneumo", "families"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if "not_installed_anywhere_xyz" in line]
    assert said == ["warning: not_installed_anywhere_xyz not loaded (ModuleNotFoundError: No "
                    "module named 'not_installed_anywhere_xyz')"]
    assert "base_cnn" in done.stdout


def test_undefined_metrics_print_as_the_leaderboard_shows_them(tmp_path, monkeypatch):
    """The user review 22: baseline classroom printed "precision nan" for a model that called
    no test image positive, where the leaderboard shows "-"; finalize and its seed ensemble
    the same."""
    import pandas as pd

    nan = float("nan")
    row = dict(rank=1, project="base_cnn__flip", trial_id="3", seeds=2, reused=0,
               precision_mean=nan, precision_std=nan, recall_mean=0.0, recall_std=0.0,
               auc_mean=0.5, auc_std=0.01, ensemble="rank1_x_seeds2", ensemble_precision=nan,
               ensemble_recall=0.0, ensemble_auc=0.5)
    module = sys.modules["autopneumo.finalize"]
    monkeypatch.setattr(module, "finalize", lambda *a, **k: pd.DataFrame([row]))
    out = CliRunner().invoke(main, ["finalize", "--runs-dir", str(tmp_path)],
                             catch_exceptions=False).output
    assert "#1 base_cnn__flip trial 3: precision -, recall 0.000 ± 0.000, AUC 0.500" in out
    assert "ensemble of the 2 seeds: precision -, recall 0.000, AUC 0.500" in out

    import autopneumo.baseline

    test = {"accuracy": 0.375, "precision": nan, "recall": 0.0, "loss": 0.7}
    monkeypatch.setattr(autopneumo.baseline, "classroom",
                        lambda *a, **k: [{"trial_id": "cnn", "test": test}])
    out = CliRunner().invoke(main, ["baseline", "classroom", "--data", str(tmp_path),
                                    "--runs-dir", str(tmp_path)], catch_exceptions=False)
    assert "cnn: test accuracy 0.375 precision - recall 0.000 loss 0.700" in out.output
    assert "nan" not in out.output
