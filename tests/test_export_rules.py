"""Ensembles and their export after review 21: members must take one input and have scored
the same data; an exported ensemble's members are the runs folder's own and the models
they were scored with. Tiny hand-made Keras models; nothing trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from autopneumo.atomic import atomic_write_json
from autopneumo.data.download import file_digest
from autopneumo.errors import RunsError
from tests.records import edit_record as _set
from tests.records import write_record


def _tiny_model(path: Path, size: int, channels: int = 1, bias: float = 0.0) -> str:
    """A uint8 (size, size, channels) -> sigmoid model saved at ``path``; its sha256."""
    from autopneumo.backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    inputs = keras.Input((size, size, channels), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="pneumonia",
                             bias_initializer=keras.initializers.Constant(bias))(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, out).save(path)
    return file_digest(path)


def _two_members(tmp_path: Path, sizes=(32, 32), channels=(1, 1), hashes=("h1", "h1"),
                 list_hashes=("l1", "l1"), models: bool = True) -> Path:
    runs = tmp_path / "runs"
    for policy, quality, size, ch, h, lh in zip(("none", "flip"), (0.5, 0.3), sizes, channels,
                                                hashes, list_hashes, strict=True):
        path = write_record(runs, "base_cnn", policy, "0", quality, seed=0)
        digest = _tiny_model(path.parent / "model.keras", size, ch) if models else None
        _set(path, data={"image_size": size, "channels": ch, "data_hash": h,
                         "data_list_hash": lh}, model_sha256=digest, trial_dir=str(path.parent))
    return runs


@pytest.mark.parametrize("sizes, channels, what", [((32, 40), (1, 1), "32 px.* 40 px"),
                                                   ((32, 32), (1, 3), "1 channel.* 3 channel")])
def test_an_ensemble_of_members_taking_different_inputs_is_refused(tmp_path, sizes, channels,
                                                                   what):
    """Its record said the first member's size, and the exported bundle was refused by
    predict, which decodes each image once (review 21)."""
    from autopneumo.ensemble import ensemble

    runs = _two_members(tmp_path, sizes, channels, models=False)
    with pytest.raises(RunsError, match=f"different inputs: .*{what}"):
        ensemble(runs, top=2, n_boot=20)
    assert not (runs / "_ensemble").exists()


def test_an_ensemble_of_members_scored_on_different_data_is_refused(tmp_path):
    """Same file names and labels, other contents (a re-encoded copy): the scores of other
    images were averaged as one model's (review 21)."""
    from autopneumo.ensemble import ensemble

    runs = _two_members(tmp_path, hashes=("h1", "h2"), models=False)
    with pytest.raises(RunsError, match="different data .*h1 and h2"):
        ensemble(runs, top=2, n_boot=20)
    # a record from before content hashes (its data_hash was the file list's) still matches
    runs = _two_members(tmp_path / "old", hashes=("l1", "h1"), list_hashes=(None, "l1"),
                        models=False)
    assert ensemble(runs, top=2, n_boot=20)["trial_id"] == "top2"
    runs = _two_members(tmp_path / "unknown", hashes=(None, "h1"), models=False)
    assert ensemble(runs, top=2, n_boot=20)["trial_id"] == "top2"
    # the first names none, the other two differ: still refused
    runs = _two_members(tmp_path / "three", hashes=(None, "h1"), models=False)
    third = write_record(runs, "base_cnn", "geometric", "0", 0.2, seed=0)
    _set(third, data={"image_size": 32, "channels": 1, "data_hash": "h2",
                      "data_list_hash": "l1"}, trial_dir=str(third.parent))
    with pytest.raises(RunsError, match="different data .*h1 and h2"):
        ensemble(runs, top=3, n_boot=20)


def test_export_ensemble_refuses_a_member_model_it_was_not_scored_with(tmp_path):
    """Single-trial export checked the model's digest against its record; the ensemble's
    export copied members unchecked and wrote the copy's digest into the card (review 21)."""
    from autopneumo.ensemble import ensemble
    from autopneumo.inference import export

    runs = _two_members(tmp_path)
    record = ensemble(runs, top=2, n_boot=20)
    assert [m["model_sha256"] for m in record["members"]] == [
        json.loads((Path(m["trial_dir"]) / "record.json").read_text())["model_sha256"]
        for m in record["members"]]
    out = export(runs, tmp_path / "bundle", ensemble="top2")[0]  # as scored: fine
    member = runs / "base_cnn__none" / "trial_0" / "model.keras"
    _tiny_model(member, 32, 1, bias=3.0)  # another model saved over the member's
    with pytest.raises(RunsError, match="holds another model.keras than the one it was scored"):
        export(runs, tmp_path / "bundle", ensemble="top2")
    assert (out / "model_card.json").is_file()  # the earlier export is left whole
    # an ensemble written before members carried digests: the member's record decides
    path = runs / "_ensemble" / "top2" / "record.json"
    old = json.loads(path.read_text())
    for m in old["members"]:
        del m["model_sha256"]
    atomic_write_json(path, old)
    with pytest.raises(RunsError, match="holds another model.keras"):
        export(runs, tmp_path / "bundle", ensemble="top2")


def test_export_takes_an_ensemble_given_as_a_path(tmp_path):
    """The check that refuses ensemble=1 also refused a pathlib path, which export took
    before: the name as a Path, or the ensemble's folder (its record's parent)."""
    from autopneumo.ensemble import ensemble
    from autopneumo.errors import OptionError
    from autopneumo.inference import export

    runs = _two_members(tmp_path)
    record = ensemble(runs, top=2, n_boot=20)
    for i, name in enumerate((Path("top2"), Path(record["_path"]).parent)):
        out = export(runs, tmp_path / f"bundle{i}", ensemble=name)[0]
        card = json.loads((out / "model_card.json").read_text())
        assert card["trial_id"] == "top2" and len(card["members"]) == 2
    with pytest.raises(OptionError, match="^--ensemble must be an ensemble's name, got 1$"):
        export(runs, tmp_path / "bundle2", ensemble=1)


def test_export_takes_an_ensemble_folder_given_relative_to_here(tmp_path, monkeypatch):
    """Review 22: the folder export now takes (its record's parent) is relative where the
    runs folder is ('runs/_ensemble/top2'), and export looked for it under
    runs/_ensemble/runs/_ensemble/top2; so did `export --ensemble runs/_ensemble/top2`."""
    from autopneumo.cli import main
    from autopneumo.ensemble import ensemble
    from autopneumo.inference import export

    _two_members(tmp_path)
    monkeypatch.chdir(tmp_path)
    record = ensemble("runs", top=2, n_boot=20)
    assert record["_path"] == str(Path("runs", "_ensemble", "top2", "record.json"))
    out = export("runs", "bundle", ensemble=Path(record["_path"]).parent)[0]
    card = json.loads((out / "model_card.json").read_text())
    assert card["trial_id"] == "top2" and len(card["members"]) == 2
    result = CliRunner().invoke(main, ["export", "--runs-dir", "runs", "--ensemble",
                                       "runs/_ensemble/top2", "--out", "bundle2"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "bundle2" / "model_card.json").read_text())["trial_id"] == "top2"
    with pytest.raises(RunsError, match="no readable ensemble record in runs/_ensemble/top9"):
        export("runs", "bundle3", ensemble="top9")


def test_predict_on_an_ensemble_card_with_an_unknown_combine_names_the_card(tmp_path):
    """Review 21 #16: an exported ensemble whose card says "combine": "median" made predict
    say "--combine must be one of probability, logit"; predict has no --combine. The
    message now names the card file, before any image is scored."""
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from autopneumo.cli import main
    from autopneumo.ensemble import ensemble
    from autopneumo.inference import export

    runs = _two_members(tmp_path)
    ensemble(runs, top=2, n_boot=20)
    out = export(runs, tmp_path / "bundle", ensemble="top2")[0]
    image = tmp_path / "x.png"
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(image)
    ok = CliRunner().invoke(main, ["predict", "--model", str(out), str(image)])
    assert ok.exit_code == 0, ok.output
    _set(out / "model_card.json", combine="median")
    result = CliRunner().invoke(main, ["predict", "--model", str(out), str(image)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.output == (f"Error: --model {out}: {out / 'model_card.json'}: combine "
                             "'median' is not one of probability, logit\n")


def test_export_ensemble_from_a_copied_runs_folder_takes_the_copys_members(tmp_path):
    """The recorded member folder was used whenever it still existed: exporting from a copy
    (`cp -r runs study1`) took the original's models, searched again since (review 21)."""
    from autopneumo.ensemble import ensemble
    from autopneumo.inference import export

    runs = _two_members(tmp_path)
    ensemble(runs, top=2, n_boot=20)
    copy = tmp_path / "study1"
    shutil.copytree(runs, copy)
    _tiny_model(runs / "base_cnn__none" / "trial_0" / "model.keras", 32, bias=3.0)
    out = export(copy, tmp_path / "bundle", ensemble="top2")[0]
    card = json.loads((out / "model_card.json").read_text())
    assert all(Path(m["source"]).is_relative_to(copy) for m in card["members"])
    # moved away entirely: the recorded place is the fallback, as before
    shutil.rmtree(copy / "base_cnn__flip")
    out = export(copy, tmp_path / "bundle", ensemble="top2")[0]
    sources = [m["source"] for m in json.loads((out / "model_card.json").read_text())["members"]]
    assert Path(sources[0]).is_relative_to(copy) and Path(sources[1]).is_relative_to(runs)


def test_model_cards_name_the_limitations_of_every_source():
    """A PneumoniaMNIST model's card said limitations: null; it is the same paediatric
    data set, downsampled (review 21)."""
    from autopneumo.inference import KERMANY_LIMITS, model_card

    official = {"test": {"NORMAL": 234, "PNEUMONIA": 390, "patients": 427}}
    card = model_card({"data": {"source": "kermany", "counts": official}})
    assert card["limitations"] == KERMANY_LIMITS
    for counts in ({"test": {"NORMAL": 8, "PNEUMONIA": 8}}, None, [], {"test": "x"}):
        card = model_card({"data": {"source": "kermany", "counts": counts}})
        assert "not validated beyond it" in card["limitations"]  # the layout, other data
    medmnist = model_card({"data": {"source": "medmnist"}})["limitations"]
    assert medmnist.startswith(KERMANY_LIMITS) and "downsampled" in medmnist
    assert "not validated beyond it" in model_card({"data": {}})["limitations"]


def test_an_exported_card_says_how_to_load_its_model_and_that_works(tmp_path):
    """The card never said how to load the model, and keras.saving.load_model cannot
    rebuild autopneumo's own layers without their modules (review 21): the card names
    autopneumo.load_model, which a fresh process can use."""
    import subprocess
    import sys

    from autopneumo.ensemble import ensemble
    from autopneumo.hypermodel import build_model
    from autopneumo.inference import export
    from autopneumo.registry import FAMILIES, POLICIES

    runs = _two_members(tmp_path)
    trial = runs / "base_cnn__none" / "trial_0"  # the best: replaced by a real trial model
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("erasing"), (32, 32, 1),
                        {"depth": 2, "width": 0.5}, {}, training={"epochs": 1,
                                                                  "standardize": True})
    model.save(trial / "model.keras")
    _set(trial / "record.json", model_sha256=file_digest(trial / "model.keras"),
         family="base_cnn", policy="erasing")
    out = export(runs, tmp_path / "winner")[0]
    card = json.loads((out / "model_card.json").read_text())
    assert "autopneumo.load_model(path)" in card["load"]["as_keras_model"]
    assert card["load"]["modules"] == ["autopneumo"]
    code = ("import autopneumo, sys; m = autopneumo.load_model(sys.argv[1]); "
            "print([l.__class__.__name__ for l in m.layers])")
    done = subprocess.run([sys.executable, "-c", code, str(out / "model.keras")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PerImageStandardization" in done.stdout and "Augmentation" in done.stdout
    # an ensemble's card: each member described, and how to load them
    ensemble(runs, top=2, n_boot=20)
    out = export(runs, tmp_path / "both", ensemble="top2")[0]
    card = json.loads((out / "model_card.json").read_text())
    assert [(m["family"], m["policy"], m["trial_id"], m["image_size"], m["channels"])
            for m in card["members"]] == [("base_cnn", "erasing", "0", 32, 1),
                                          ("base_cnn", "flip", "0", 32, 1)]
    assert all(m["hyperparameters"] and m["threshold"] is not None for m in card["members"])
    assert "each member folder's model.keras" in card["load"]["as_keras_model"]


@pytest.mark.parametrize("threshold", [float("nan"), "x", None, 1.5])
def test_export_of_a_record_predict_would_refuse_keeps_the_earlier_export(tmp_path, threshold):
    """A record whose threshold is NaN or a string replaced a working export with a card
    that predict refuses ("threshold": null or "x"), exit 0 (review 21). Now the record is
    checked as predict checks it, before anything is staged."""
    from click.testing import CliRunner

    from autopneumo.cli import main
    from autopneumo.ensemble import ensemble
    from autopneumo.inference import export

    runs = _two_members(tmp_path)
    ensemble(runs, top=2, n_boot=20)
    out, bundle = tmp_path / "export", tmp_path / "bundle"
    export(runs, out)
    export(runs, bundle, ensemble="top2")
    cards = {p: (p / "model_card.json").read_bytes() for p in (out, bundle)}
    for path in runs.rglob("record.json"):
        _set(path, threshold=threshold)
    with pytest.raises(RunsError, match=r"trial_0.record\.json: .*threshold.*not exported"):
        export(runs, out)
    with pytest.raises(RunsError, match=r"top2.record\.json: .*threshold.*not exported"):
        export(runs, bundle, ensemble="top2")
    result = CliRunner().invoke(main, ["export", "--runs-dir", str(runs), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "record.json" in result.output
    assert {p: (p / "model_card.json").read_bytes() for p in (out, bundle)} == cards
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "export", "runs"]


def test_a_seed_whose_data_is_not_a_mapping_is_no_traceback(tmp_path):
    """The leaderboard skips such a record; finalize's seed ensemble reads final.json."""
    from autopneumo.ensemble import seed_ensemble

    runs = _two_members(tmp_path, models=False)
    seeds = []
    for policy in ("none", "flip"):
        trial = runs / f"base_cnn__{policy}" / "trial_0"
        (trial / "record.json").rename(trial / "final.json")
        seeds.append(trial)
    _set(seeds[1] / "final.json", data="x")
    record = seed_ensemble(runs, seeds, "s_seeds2", "2 seeds of 0", n_boot=20)
    assert record["data"]["image_size"] == 32  # nothing to compare against


def test_predict_on_a_top_n_export_names_one_of_its_rank_folders(tmp_path):
    """`export --top 3 --out winner/` writes rank folders; `predict --model winner/` said
    only "no model.keras there" (review 22): it now names the folder to give."""
    from click.testing import CliRunner

    from autopneumo.cli import main

    out = tmp_path / "winner"
    for name in ("rank2_base_cnn__flip_trial1", "rank1_base_cnn__flip_trial0"):
        (out / name).mkdir(parents=True)
        (out / name / "model_card.json").write_text("{}")
    (tmp_path / "scan.png").write_bytes(b"")
    result = CliRunner().invoke(main, ["predict", "--model", str(out), str(tmp_path / "scan.png")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (f"no model.keras there (an export of --top 2: give one of its folders, --model "
            f"{out / 'rank1_base_cnn__flip_trial0'})") in " ".join(result.output.split())
