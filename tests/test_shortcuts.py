"""``data shortcuts``: borders or image size that give the label away are flagged; data
where only the lungs carry the label is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from autopneumo.cli import main
from autopneumo.errors import DataError
from autopneumo.shortcuts import SHORTCUT_AUC, check_shortcuts
from tests.conftest import xray_like


def make_data(root: Path, border: bool = False, size: bool = False, lungs: bool = True,
              per_class: int = 50, seed: int = 0, blur: str = "") -> Path:
    """Kermany layout at <= 32 px. ``border``: every PNEUMONIA image has a bright 2 px frame
    (inside the check's 8 % frame); ``size``: PNEUMONIA images are 32 px, NORMAL 28 px;
    otherwise sizes are random for both classes. ``lungs``: PNEUMONIA images have the lung
    blob of ``xray_like``; without, the content is the same for both classes. ``blur``:
    "pneumonia" blurs every PNEUMONIA image, "test normal" the test split's NORMAL images."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        n = 4 if split == "val" else per_class
        for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if size:
                    side = 32 if label else 28
                else:
                    side = int(rng.integers(26, 33))
                img = xray_like(label if lungs else 0, side, rng)
                if border and label:
                    img[:2], img[-2:], img[:, :2], img[:, -2:] = 255, 255, 255, 255
                pil = Image.fromarray(img, "L")
                if (blur == "pneumonia" and label) or (blur == "test normal" and split == "test"
                                                        and not label):
                    pil = pil.filter(ImageFilter.GaussianBlur(1.0))
                pil.save(folder / f"{split}_{cls}_{i}.jpeg", quality=90)
    return root


def rows(frame):
    return frame.set_index("group")


def test_a_border_that_encodes_the_label_is_flagged(tmp_path):
    frame = check_shortcuts(make_data(tmp_path / "data", border=True, lungs=False), n_boot=200)
    assert list(frame["group"]) == ["bytes", "dimensions", "borders", "sharpness",
                                    "centre (control)"]
    r = rows(frame)
    assert r.loc["borders", "test_auc"] >= 0.95, frame.to_string()
    # only the frame differs between the classes (a little bleeds into the centre at 64 px)
    assert r.loc["centre (control)", "test_auc"] < r.loc["borders", "test_auc"] - 0.1
    assert r.loc["borders", "shortcut"] and r.loc["borders", "verdict"].startswith("shortcut risk")
    assert not r.loc["dimensions", "shortcut"]  # sizes are random here
    assert not r.loc["centre (control)", "shortcut"]  # a control is never a shortcut
    assert (r["n_train"] == 108).all() and (r["n_test"] == 100).all()  # train + val, test
    assert (r["test_auc_lo"] <= r["test_auc"] + 1e-12).all()


def test_image_dimensions_that_encode_the_label_are_flagged(tmp_path):
    r = rows(check_shortcuts(make_data(tmp_path / "data", size=True, per_class=20), n_boot=100))
    assert r.loc["dimensions", "test_auc"] == pytest.approx(1.0)
    assert r.loc["dimensions", "shortcut"]
    assert not r.loc["borders", "shortcut"]


def test_data_without_shortcuts_is_not_flagged(tmp_path):
    frame = check_shortcuts(make_data(tmp_path / "data"), n_boot=200)
    r = rows(frame)
    for group in ("borders", "dimensions", "sharpness"):
        assert r.loc[group, "test_auc"] < SHORTCUT_AUC, frame.to_string()
        assert not r.loc[group, "shortcut"]
        assert not r.loc[group, "verdict"].startswith("shortcut risk")
    # the check can see a signal: the lung blob makes the centre's intensity informative
    assert r.loc["centre (control)", "test_auc"] >= 0.75
    assert r.loc["centre (control)", "verdict"].startswith("control")


def test_sharpness_that_encodes_the_label_is_flagged(tmp_path):
    """Blurred PNEUMONIA images, same content otherwise: sharpness gives the label away."""
    frame = check_shortcuts(make_data(tmp_path / "data", lungs=False, blur="pneumonia"),
                            n_boot=100)
    r = rows(frame)
    assert r.loc["sharpness", "test_auc"] >= 0.95, frame.to_string()
    assert r.loc["sharpness", "shortcut"]
    assert r.loc["sharpness", "verdict"].startswith("shortcut risk: sharpness")
    assert not r.loc["dimensions", "shortcut"]  # (the frame's std sees the blur too)
    # every split was made the same way: nothing shifts between train and test
    assert (frame["shift_auc"] < 0.7).all(), frame.to_string()


def test_a_shift_between_train_and_test_is_measured(tmp_path):
    """Only the test split's NORMAL images are blurred: sharpness does not predict the
    label in train, but it tells those test images from the training ones."""
    frame = check_shortcuts(make_data(tmp_path / "data", blur="test normal"), n_boot=50)
    r = rows(frame)
    # NORMAL: fully separable; PNEUMONIA: no shift; the mean of the two
    assert r.loc["sharpness", "shift_auc"] >= 0.7, frame.to_string()
    assert r.loc["dimensions", "shift_auc"] < 0.65, frame.to_string()
    assert ((frame["shift_auc"] >= 0.0) & (frame["shift_auc"] <= 1.0)).all()


def test_constant_size_is_said_to_be_no_shortcut(tmp_path):
    root = make_data(tmp_path / "data", per_class=12)
    for path in root.rglob("*.jpeg"):
        with Image.open(path) as im:
            resized = im.resize((30, 30))
        resized.save(path, quality=90)
    r = rows(check_shortcuts(root, n_boot=50))
    assert r.loc["dimensions", "test_auc"] == pytest.approx(0.5)
    assert "same for every image" in r.loc["dimensions", "verdict"]
    assert r.loc["dimensions", "shift_auc"] == 0.5  # constant features cannot shift


def test_cli_prints_the_table_and_exits_0(tmp_path):
    root = make_data(tmp_path / "data", border=True, per_class=12)
    result = CliRunner().invoke(main, ["data", "shortcuts", "--data", str(root)])
    assert result.exit_code == 0, result.output
    for text in ("bytes", "dimensions", "borders", "sharpness", "centre (control)",
                 "shortcut risk", "shift"):
        assert text in result.output
    broken = sorted((root / "train").rglob("*.jpeg"))[0]
    broken.write_bytes(b"not an image")  # skipped, and said so
    result = CliRunner().invoke(main, ["data", "shortcuts", "--data", str(root)])
    assert result.exit_code == 0, result.output
    rel = broken.relative_to(root).as_posix()
    assert f"warning: skipped 1 unreadable image(s): {rel}" in result.output


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(DataError, match="needs a Kermany folder .*; a .npz file has neither"):
        npz = tmp_path / "x.npz"
        np.savez(npz, a=np.zeros(1))
        check_shortcuts(npz)
    text = tmp_path / "afile.txt"
    text.write_text("x")
    with pytest.raises(DataError, match=r"needs a Kermany folder .*\); this is a file$"):
        check_shortcuts(text)
    result = CliRunner().invoke(main, ["data", "shortcuts", "--data", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: data folder not found")
    assert len(result.output.strip().splitlines()) == 1


def test_sharpness_probe_blurs_sharpens_and_scores_a_model(tmp_path, capsys):
    """benchmarks/sharpness_probe.py: blur lowers the images' detail, sharpening raises it,
    the original is left alone, and the probe prints one row per model and variant."""
    import importlib.util

    keras = pytest.importorskip("keras")
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sharpness_probe.py"
    spec = importlib.util.spec_from_file_location("sharpness_probe", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)

    x = np.random.default_rng(0).integers(0, 256, (3, 24, 24, 1), dtype=np.uint8)

    def detail(images):
        return np.abs(np.diff(images.astype(float), axis=2)).mean()

    np.testing.assert_array_equal(probe.variant(x, 0.0, 0.0), x)
    assert probe.variant(x, 1.2, 0.0).dtype == np.uint8
    assert detail(probe.variant(x, 1.2, 0.0)) < detail(probe.variant(x, 0.7, 0.0)) < detail(x)
    assert detail(probe.variant(x, 0.0, 1.0)) > detail(x)

    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    root = make_data(tmp_path / "data", per_class=6)
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("none"), (32, 32, 1),
                        {"depth": 2, "width": 0.5}, {})
    model.save(tmp_path / "m.keras")
    keras.backend.clear_session()
    assert probe.main(["--data", str(root), str(tmp_path / "m.keras")]) == 0
    out = capsys.readouterr().out
    for name, _, _ in probe.VARIANTS:
        assert out.count(name) == 1, out
    assert "normal_mean_p" in out and "test_auc" in out
