"""Use the winner: export a model with its model card, predict on new images."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .atomic import HOST_TAG, atomic_write_json, left_by_dead_writers
from .backend import predict_batches
from .data.download import file_digest
from .data.images import IMAGE_SUFFIXES, is_dicom
from .errors import DataError, OptionError, RunsError
from .evaluation import MODEL_FILE, PREDICTIONS_FILE, RECORD_FILE
from .finalize import FINAL_FILE
from .leaderboard import best_search_trials
from .paths import require_runs_dir

CARD_FILE = "model_card.json"
VALIDATION_FILE = "validation_scores.csv"  # an export's validation scores: another operating point


@dataclass(frozen=True)
class ModelCard:
    """What a model needs to be used: input format and the validation-chosen threshold."""

    model_path: Path
    threshold: float
    image_size: int
    channels: int
    info: dict[str, Any]
    members: tuple[Path, ...] = ()  # an exported ensemble: its members' model files
    combine: str = "probability"
    tta: bool = False
    # the model files' bytes as read and checked against the card (members in order):
    # what is loaded, even if an export replaces the folder meanwhile
    blobs: tuple[bytes, ...] = field(default=(), repr=False, compare=False)


INTENDED_USE = ("Research: comparing and studying models. Not a medical device, and not "
                "validated for clinical decisions; a score is evidence for a reader, never a "
                "diagnosis.")
KERMANY_LIMITS = ("Trained, validated and tested on one data set (Kermany et al. 2018: "
                  "paediatric chest X-rays, ages 1 to 5, one centre in Guangzhou, official "
                  "train/test split). Not validated on adults, other sites, scanners, or "
                  "portable or inverted images.")
# what predict reads from a folder: the data set's formats and the other still images
# Pillow decodes that scanners and viewers export (DICOM: by suffix in folders; a file
# named on its own is read as DICOM by its content, whatever its name)
PREDICT_SUFFIXES = (*IMAGE_SUFFIXES, ".tif", ".tiff", ".bmp", ".webp")
_RANK_FOLDER = re.compile(r"^rank\d+_")
_MEMBER_FOLDER = re.compile(r"^member\d+$")  # an exported ensemble's members


MEDMNIST_LIMITS = (KERMANY_LIMITS + " PneumoniaMNIST is that data set downsampled (28 to "
                   "224 px); the model saw those small images resized to image_size, and "
                   "full-resolution radiographs, downsampled here, differ from what it saw.")
OTHER_LIMITS = ("Trained, validated and tested on one data set (see data): not validated "
                "beyond it, on other populations, sites or scanners.")


# the official Kermany test split (Kaggle's and Mendeley's copies alike, at any size)
KERMANY_TEST_COUNTS = {"NORMAL": 234, "PNEUMONIA": 390}


def _limitations(data: dict[str, Any]) -> str:
    """The data set's limitations. A ``kermany`` source is the folder layout, which any
    data set arranged that way has (a hospital's export too): the Kermany set's
    limitations where the test split is the official one, the general note otherwise."""
    source = data.get("source")
    if source == "kermany":
        counts = data.get("counts")
        test = counts.get("test") if isinstance(counts, dict) else None
        official = isinstance(test, dict) and all(
            test.get(name) == n for name, n in KERMANY_TEST_COUNTS.items())
        return KERMANY_LIMITS if official else OTHER_LIMITS
    return MEDMNIST_LIMITS if source == "medmnist" else OTHER_LIMITS


def _modules(record: dict[str, Any]) -> set[str]:
    """The plugin modules a record's family and policy come from (none for autopneumo's)."""
    from .registry import FAMILIES, POLICIES

    modules = set()
    for registry, name in ((FAMILIES, record.get("family")), (POLICIES, record.get("policy"))):
        if isinstance(name, str) and name in registry:
            module = registry.get(name).builder.__module__
            if not module.startswith("autopneumo."):
                modules.add(module)
    return modules


def _how_to_load(plugins: set[str], ensemble: bool = False) -> dict[str, Any]:
    """How to run the exported model: it holds autopneumo's own Keras layers (and a
    plugin's, where its family or policy came from one), which Keras can only rebuild once
    the modules that register them are imported."""
    what = ("each member folder's model.keras, the scores combined as `combine` says"
            if ensemble else "model.keras")
    plugin = (f" (import {', '.join(sorted(plugins))} first: the plugin's layers)"
              if plugins else "")
    return {
        "with_autopneumo": "autopneumo.Predictor(folder).predict(files), or `autopneumo "
                           "predict --model folder FILES`: threshold, checks and decoding "
                           "as this card says",
        "as_keras_model": (f"autopneumo.load_model(path){plugin} for {what}: it imports "
                           "the modules that register the model's own layers, which plain "
                           "keras.saving.load_model cannot rebuild; the input is uint8 "
                           "image_size x image_size x channels, decoded as `input` says"),
        "modules": ["autopneumo", *sorted(plugins)],
    }


def model_card(record: dict[str, Any], trial_dir: Path | None = None,
               runs_dir: Path | None = None, model_sha256: str | None = None) -> dict[str, Any]:
    """What a deployer needs to use and judge a model, from its record; with
    ``trial_dir`` (an export) also its validation metrics at the threshold, calibration,
    the retrained seeds' spread (``runs_dir/_finalize``) and where it came from:
    ``model_sha256``, the exported copy's digest where the caller took it, else the trial's
    model file's."""
    data = record.get("data") or {}
    val = record.get("val") or {}
    reference = bool(record.get("reference", False))
    card: dict[str, Any] = {
        "family": record.get("family"),
        "policy": record.get("policy"),
        "project": record.get("project"),
        "trial_id": record.get("trial_id"),
        "hyperparameters": record.get("hyperparameters"),
        "threshold": record.get("threshold"),
        "threshold_chosen_on": ("fixed at 0.5 (a reference run: the classroom recipe)"
                                if reference else "validation split"),
        "recall_target": record.get("recall_target"),
        "image_size": data.get("image_size"),
        "channels": data.get("channels"),
        "input": ("an image file (JPEG, PNG, DICOM, ...), decoded to uint8 0-255 and resized "
                  "to image_size x image_size (bilinear, no aspect ratio kept); EXIF "
                  "orientation applied; colour to grey by ITU-R 601 luma where channels is 1; "
                  "alpha over black; 16-bit and float images stretched from their darkest to "
                  "their brightest pixel; DICOM as a viewer shows it: rescale, then the "
                  "file's window or VOI LUT mapped to 0-255 (without one, stretched), "
                  "padding black, MONOCHROME1 inverted"),
        "output": ("score for PNEUMONIA in [0, 1] (the sigmoid output); PNEUMONIA where "
                   "score >= threshold. Not a calibrated probability: see calibration"),
        "validation": {k: val[k] for k in ("objective", "auc", "prec_at_recall", "loss")
                       if k in val},
        "validation_at_0.5": {k: val[k] for k in ("precision", "recall", "accuracy")
                              if k in val},
        "test": record.get("test"),
        "test_prec_at_recall_is": ("the best test precision at test recall >= "
                                   "recall_target: its threshold is picked on test (a point of "
                                   "the test precision-recall curve, as auc summarises it), so "
                                   "it is not what this card's threshold gives; precision and "
                                   "recall are"),
        "test_ci95": record.get("test_ci"),
        "test_ci_resampled": record.get("test_ci_resampled") or "images",
        "data_hash": data.get("data_hash"),
        "data_counts": data.get("counts"),
        "data": {k: data.get(k) for k in ("source", "split_seed", "val_fraction", "split_hash")},
        "environment": record.get("environment"),
        "reference": reference,
        "intended_use": INTENDED_USE,
        "limitations": _limitations(data),
        "load": _how_to_load(_modules(record)),
    }
    if trial_dir is not None:
        card |= _scored(record, trial_dir)
        card["retrained_seeds"] = _retrained(record, runs_dir)
        card["provenance"] = {
            "autopneumo": __version__,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "trial_dir": str(trial_dir),
            "model_sha256": model_sha256 or (file_digest(trial_dir / MODEL_FILE)
                                             if (trial_dir / MODEL_FILE).is_file() else None),
        }
    return card


def _scored(record: dict[str, Any], trial_dir: Path) -> dict[str, Any]:
    """Validation metrics at the card's threshold and calibration on validation and
    test, from the trial's saved predictions (nothing where they are unreadable)."""
    from .evaluation import read_predictions
    from .objective import binary_metrics, calibration

    try:
        splits = read_predictions(trial_dir)
        threshold, target = float(record["threshold"]), float(record["recall_target"])
    except (OSError, ValueError, KeyError, TypeError):
        return {"validation_at_threshold": None, "calibration": None}
    out: dict[str, Any] = {"validation_at_threshold": None, "calibration": {}}
    for split in ("val", "test"):
        if split not in splits:
            continue
        y, p = splits[split]["label"], splits[split]["probability"]
        if split == "val":
            out["validation_at_threshold"] = binary_metrics(y, p, threshold, target)
        c = calibration(y, p)
        out["calibration"]["validation" if split == "val" else "test"] = {
            "brier": c.brier, "ece": c.ece, "mean_score": c.mean_probability,
            "pneumonia_share": c.observed}
    return out


def _retrained(record: dict[str, Any], runs_dir: Path | None) -> dict[str, Any] | None:
    """``finalize``'s mean and standard deviation for this trial, where it ran: the less
    optimistic estimate (the trial was picked partly for its seed's luck)."""
    if runs_dir is None:
        return None
    try:
        summary = pd.read_csv(Path(runs_dir) / "_finalize" / "summary.csv", dtype={"trial_id": str})
    except (OSError, ValueError):
        return None
    rows = summary[(summary["project"].astype(str) == str(record.get("project")))
                   & (summary["trial_id"].astype(str) == str(record.get("trial_id")))]
    if rows.empty:
        return None
    row = rows.iloc[0]
    keep = [c for c in row.index if c.endswith(("_mean", "_std")) or c == "seeds"]
    return {c: (None if pd.isna(row[c]) else float(row[c])) for c in keep}


def export(runs_dir: str | Path, out: str | Path, top: int = 1,
           ensemble: str | Path | None = None) -> list[Path]:
    """Copy the top-``top`` completed models (by validation) with a model card each, or
    with ``ensemble`` (a name under ``runs_dir/_ensemble``, or that folder's path) that
    ensemble's members, its combination rule and threshold, which ``predict`` then applies.

    ``out`` must be new, empty or an earlier export, which is replaced as a whole (never
    left beside the new one, where ``predict --model out`` could pick an old model). The
    new export is written next to ``out`` first and moved in when complete."""
    from .spaces import positive_int

    if not positive_int(top):  # 1.0 or "1" from Python: not a TypeError in pandas
        raise OptionError(f"--top must be a positive integer, got {top!r}")
    if ensemble is not None and not isinstance(ensemble, str | os.PathLike):  # 1: a TypeError
        raise OptionError(f"--ensemble must be an ensemble's name, got {ensemble!r}")
    if isinstance(ensemble, os.PathLike):  # its folder (Path(record["_path"]).parent)
        ensemble = os.fspath(ensemble)
    if ensemble is not None and top != 1:
        raise OptionError(f"--top {top} with --ensemble {ensemble}: an ensemble row is exported "
                          "whole (its members are its own); drop --top")
    runs_dir = require_runs_dir(runs_dir)
    if ensemble is not None:
        return [_export_ensemble(runs_dir, Path(out), ensemble)]
    done = best_search_trials(runs_dir, top, "export", "exported")
    out = Path(out)
    records = []
    for _, row in done.iterrows():
        if not (Path(row["trial_dir"]) / MODEL_FILE).is_file():
            raise RunsError(f"{row['trial_dir']}: no {MODEL_FILE} to export")
        path = Path(row["trial_dir"]) / RECORD_FILE
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, RecursionError) as exc:
            raise RunsError(f"{path}: unreadable ({type(exc).__name__}); not exported") from None
        _check_exportable(records[-1], path)
    width = len(str(len(done)))  # rank01..rank12: the folders list in rank order
    names = ["." if top == 1 else f"rank{rank:0{width}d}_{row['project']}_trial{row['trial_id']}"
             for rank, (_, row) in enumerate(done.iterrows(), start=1)]

    def write(staging: Path) -> None:
        for rank, (name, record, (_, row)) in enumerate(
                zip(names, records, done.iterrows(), strict=True), start=1):
            trial_dir = Path(row["trial_dir"])
            target = staging / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(trial_dir / MODEL_FILE, target / MODEL_FILE)
            copied = file_digest(target / MODEL_FILE)
            if record.get("model_sha256") not in (None, copied):
                raise RunsError(f"{trial_dir}: its {MODEL_FILE} is not the model its "
                                f"{RECORD_FILE} describes (sha256 differs; re-evaluated "
                                "while exporting?); export again")
            card = model_card(record, trial_dir, runs_dir, model_sha256=copied) | {
                "rank_by_validation": rank}
            if _copy_validation_scores(trial_dir, target):
                card["validation_scores"] = VALIDATION_FILE  # predict --recall-target
            atomic_write_json(target / CARD_FILE, card, strict=True)

    _replace_export(out, write)
    return [out / name if name != "." else out for name in names]


def _replace_export(out: Path, write: Any) -> None:
    """``write(staging)`` builds the export beside ``out``; then it replaces an earlier
    export in ``out`` (``_earlier_export`` refuses anything else) by two renames: the old
    folder aside, the new one in. A kill at any point leaves ``out`` whole (old or new) or
    absent, never a rank folder without its card; what a killed export left beside it is
    removed by the next one."""
    earlier = _earlier_export(out)
    if out.is_symlink():  # replace the folder it points to; the link stays
        out = Path(os.path.realpath(out))
    _remove_dead_exports(out)
    staging = out.parent / f".{out.name}.export-{HOST_TAG}-{os.getpid()}"
    aside = out.parent / f".{out.name}.old-{HOST_TAG}-{os.getpid()}"
    for folder in (staging, aside):
        shutil.rmtree(folder, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write(staging)
        try:
            if out.exists():
                out.rename(aside)
            staging.rename(out)
        except OSError:  # out is a mount point, or the file system cannot: in place
            if aside.exists() and not out.exists():
                aside.rename(out)
            out.mkdir(parents=True, exist_ok=True)
            for old in earlier:  # a rank folder's card last: a half-removed one is known
                _remove_export_entry(old)
            for entry in staging.iterdir():
                entry.replace(out / entry.name)
    finally:
        for folder in (staging, aside):
            shutil.rmtree(folder, ignore_errors=True)


def _remove_export_entry(path: Path) -> None:
    if not path.is_dir():
        path.unlink()
        return
    for entry in sorted(path.iterdir(), key=lambda p: p.name == CARD_FILE):
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    path.rmdir()


def _remove_dead_exports(out: Path) -> None:
    """The staging and set-aside folders of exports to ``out`` that were killed (their
    process is gone): a full model copy each."""
    for kind in ("export", "old"):
        for folder in left_by_dead_writers(out.parent, f".{out.name}.{kind}-"):
            shutil.rmtree(folder, ignore_errors=True)


def _export_ensemble(runs_dir: Path, out: Path, name: str) -> Path:
    """An ensemble row (``autopneumo ensemble``, or finalize's seeds) as a deployable
    folder: each member's model in ``member<i>/``, the card with the combination rule,
    TTA and the ensemble's own validation-chosen threshold."""
    from .ensemble import COMBINE

    folder, given = runs_dir / "_ensemble" / name, Path(name)
    if len(given.parts) > 1 and not folder.is_dir() and given.is_dir():
        folder = given  # its folder from here, as record["_path"] names it: not under RUNS
    try:
        record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        members = [_member_dir(m["trial_dir"], record, runs_dir) for m in record["members"]]
        combine = {text: key for key, text in COMBINE.items()}[record["ensemble"]["combine"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunsError(f"--ensemble {name}: no readable ensemble record in {folder} "
                        f"({type(exc).__name__}: {exc}); `autopneumo leaderboard` lists the "
                        "ensembles by name") from exc
    _check_exportable(record, folder / RECORD_FILE)
    for member in members:
        if not (member / MODEL_FILE).is_file():
            raise RunsError(f"--ensemble {name}: its member {member} has no {MODEL_FILE}")

    def write(staging: Path) -> None:
        listed = []
        for i, (member, entry) in enumerate(zip(members, record["members"], strict=True),
                                            start=1):
            (staging / f"member{i}").mkdir()
            shutil.copyfile(member / MODEL_FILE, staging / f"member{i}" / MODEL_FILE)
            copied = file_digest(staging / f"member{i}" / MODEL_FILE)
            own = _member_record(member)
            recorded = entry.get("model_sha256") or own.get("model_sha256")
            if recorded not in (None, copied):
                raise RunsError(f"--ensemble {name}: its member {member} holds another "
                                f"{MODEL_FILE} than the one it was scored with (sha256 "
                                "differs: re-evaluated or searched again since?); rebuild "
                                "the ensemble")
            data = own.get("data") if isinstance(own.get("data"), dict) else {}
            listed.append({"folder": f"member{i}", "source": str(member),
                           "model_sha256": copied,
                           **{k: own.get(k) for k in ("family", "policy", "project",
                                                      "trial_id", "seed", "hyperparameters",
                                                      "threshold")},
                           "image_size": data.get("image_size"),
                           "channels": data.get("channels")})
        card = model_card(record, folder, runs_dir) | {
            "kind": "ensemble", "members": listed, "combine": combine,
            "tta": bool((record.get("ensemble") or {}).get("tta"))}
        card["load"] = _how_to_load(set().union(*(_modules(m) for m in listed)),
                                    ensemble=True)
        if _copy_validation_scores(folder, staging, record.get("predictions_sha256")):
            card["validation_scores"] = VALIDATION_FILE
        atomic_write_json(staging / CARD_FILE, card, strict=True)

    _replace_export(out, write)
    return out


def _check_exportable(record: Any, path: Path) -> None:
    """Refuse (before anything is staged, so an earlier export at --out stays) a record
    whose card ``predict`` would refuse: no threshold in [0, 1], an image_size or channels
    that is not a number, or a ``data`` or ``val`` that is not a mapping."""
    problem = _record_shape(record)
    if problem is None and record.get("threshold") is None:
        problem = "has no threshold"
    if problem is None:
        try:
            _card_numbers(record["threshold"], record.get("data") or {})
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        raise RunsError(f"{path}: {problem}, which predict refuses; not exported (restore or "
                        "re-evaluate the record)")


def _member_dir(recorded: str, record: dict[str, Any], runs_dir: Path) -> Path:
    """A member's folder: its place under ``runs_dir`` (the folder the ensemble row was
    read from, however it was spelled, copied or moved), else where the ensemble recorded
    it. A copy's members are the copy's, not the original folder's."""
    path = Path(recorded)
    then = Path(str(record.get("trial_dir", ""))).parent.parent  # <runs>/_ensemble/<name>
    try:
        here = runs_dir / path.relative_to(then)
    except ValueError:
        return path
    return here if here.is_dir() or not path.is_dir() else path


def _member_record(member: Path) -> dict[str, Any]:
    """A member's own record (its record.json, or finalize's final.json; empty where
    neither reads): what the card says of it, and its model digest for an ensemble
    written before members carried it."""
    for name in (RECORD_FILE, FINAL_FILE):
        try:
            record = json.loads((member / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            return record
    return {}


def _scores_mismatch(trial_dir: Path, sha256: str) -> str:
    """Why an ensemble's predictions are not its record's, and what to do: a record since
    replaced was built again as export read it; the same record still there was left by an
    ensemble stopped between its two files, which another export refuses the same way
    (unless one is being built there now: its lock is held)."""
    from .locking import LOCK_FILE, held

    runs = trial_dir.parent.parent  # <runs>/_ensemble/<name>
    building = (held(runs / f".ensemble_{trial_dir.name}.lock")
                or held(runs / "_finalize" / LOCK_FILE))
    try:
        now = json.loads((trial_dir / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        now = None
    if not building and isinstance(now, dict) and now.get("predictions_sha256") == sha256:
        return ("(an ensemble stopped between writing them?); build the ensemble again: "
                "`autopneumo ensemble`, or `autopneumo finalize` for its seeds")
    return "(the ensemble was built again meanwhile?); run export again"


def _copy_validation_scores(trial_dir: Path, target: Path, sha256: str | None = None) -> bool:
    """The validation rows of the trial's predictions (file, label, score), so that
    ``predict --recall-target`` can choose another operating point on validation.
    ``sha256``: an ensemble record's digest of its predictions; read from a copy checked
    against it (an ensemble of that name rebuilt meanwhile has other members' scores)."""
    from .evaluation import read_predictions

    source = trial_dir
    try:
        if sha256 is not None:
            source = target / ".scores"
            source.mkdir()
            shutil.copyfile(trial_dir / PREDICTIONS_FILE, source / PREDICTIONS_FILE)
            if file_digest(source / PREDICTIONS_FILE) != sha256:
                why = _scores_mismatch(trial_dir, sha256)
                raise RunsError(f"{trial_dir / PREDICTIONS_FILE}: not the scores its "
                                f"{RECORD_FILE} was computed from {why}")
        val = read_predictions(source).get("val")
    except (OSError, ValueError, KeyError):
        return False
    finally:
        if source != trial_dir:
            shutil.rmtree(source, ignore_errors=True)
    if val is None or not len(val["label"]):
        return False
    pd.DataFrame(val)[["file", "label", "probability"]].to_csv(target / VALIDATION_FILE,
                                                               index=False)
    return True


def validation_threshold(folder: Path, recall_target: float) -> float:
    """The threshold that gives the best validation precision at recall >=
    ``recall_target`` on the saved validation scores of a trial, finalize seed or export."""
    from .evaluation import read_predictions
    from .objective import precision_at_recall

    path = folder / VALIDATION_FILE
    try:
        frame = pd.read_csv(path)  # an export's
    except (OSError, ValueError):
        path = folder / PREDICTIONS_FILE
        try:  # a trial's or finalize seed's predictions
            frame = pd.DataFrame(read_predictions(folder).get("val") or {})
        except (OSError, ValueError, KeyError):
            frame = None
    if frame is None or not {"label", "probability"} <= set(frame.columns) or not len(frame):
        raise OptionError(f"--recall-target: no validation scores beside the model in {folder} "
                          f"({VALIDATION_FILE} or {PREDICTIONS_FILE}); pass --threshold")
    labels = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=np.float64)
    scores = pd.to_numeric(frame["probability"], errors="coerce").to_numpy(dtype=np.float64)
    bad = int((~np.isin(labels, (0.0, 1.0)) | ~np.isfinite(scores)).sum())
    if bad:
        raise OptionError(f"--recall-target: {path}: {bad} validation row(s) without a 0/1 "
                          "label or a finite probability (damaged?); pass --threshold")
    point = precision_at_recall(labels, scores, recall_target)
    if point.threshold != point.threshold:  # NaN: no pneumonia image on validation
        raise OptionError(f"--recall-target: the validation scores in {folder} hold no "
                          "pneumonia image")
    return float(point.threshold)


def _earlier_export(out: Path) -> list[Path]:
    """The files of an earlier export in ``out`` (to be replaced); refuses an ``out`` that
    holds anything else (a trial's folder, someone's files)."""
    if out.exists() and not out.is_dir():
        raise RunsError(f"--out {out}: is a file, not a folder")
    entries = sorted(out.iterdir()) if out.is_dir() else []
    if (out / MODEL_FILE).exists() and not (out / CARD_FILE).exists():
        raise RunsError(f"--out {out}: holds a {MODEL_FILE} that is not an earlier "
                        "export (a trial's folder?); choose another --out")
    earlier = [p for p in entries if p.name in (MODEL_FILE, CARD_FILE, VALIDATION_FILE)
               or (p.is_dir() and _RANK_FOLDER.match(p.name) and (p / CARD_FILE).is_file())
               or (p.is_dir() and _MEMBER_FOLDER.match(p.name)
                   and (out / CARD_FILE).is_file() and (p / MODEL_FILE).is_file())]
    others = [p for p in entries if p not in earlier]
    if others:
        raise RunsError(f"--out {out}: holds {others[0].name}, which is not part of an earlier "
                        "export; choose an empty or new --out")
    return earlier


SWAP_WAIT = 10.0  # seconds a model folder being replaced by an export is waited for


def resolve_model(source: str | Path, threshold: float | None = None,
                  recall_target: float | None = None) -> ModelCard:
    """A trial folder, an exported folder, or a ``.keras`` file (with a card or record
    beside). The threshold: ``threshold`` if given, else the one ``recall_target`` gives
    on the saved validation scores, else the card's or record's (chosen on validation).

    An export replacing the folder while it is read (two renames: the old folder aside,
    the new one in) is waited for and the folder read again: the card, its threshold and
    the model files always come from one export, and the files' bytes as checked are
    what ``Predictor`` loads."""
    from .spaces import is_number

    for option, value in (("--threshold", threshold), ("--recall-target", recall_target)):
        if value is not None and not is_number(value):  # "0.5" from Python: not a TypeError
            raise OptionError(f"{option} must be a number, got {value!r}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise OptionError(f"--threshold must be in [0, 1], got {threshold}")
    if recall_target is not None and not 0.0 < recall_target <= 1.0:
        raise OptionError(f"--recall-target must be in (0, 1], got {recall_target}")
    if threshold is not None and recall_target is not None:
        raise OptionError("--threshold and --recall-target: give one")
    deadline = time.monotonic() + SWAP_WAIT
    while True:
        before = _card_state(source)
        try:
            card = _resolve_model(source, threshold, recall_target)
        except OptionError as exc:
            # a trial or seed folder re-evaluated now saves its model, then its record
            rewriting = (isinstance(exc, _ModelMismatch) and before is not None
                         and before[0] != CARD_FILE and exc.recent)
            if time.monotonic() > deadline or not (rewriting or
                                                   _being_replaced(source, before)):
                raise
        else:
            if _card_state(source) == before:
                return card
            if time.monotonic() > deadline:
                raise OptionError(f"--model {source}: replaced again and again while it was "
                                  "read; run again once the export is done")
        time.sleep(0.05)


def _model_folder(source: Path) -> Path:
    """The folder of a --model: itself, or a .keras file's (an export may be "model.v2")."""
    return source.parent if source.suffix == ".keras" and not source.is_dir() else source


def _card_state(source: str | Path) -> tuple[str, bytes] | None:
    """The card, record or finalize record beside a model, as bytes (None: none readable)."""
    folder = _model_folder(Path(source))
    for name in (CARD_FILE, RECORD_FILE, FINAL_FILE):
        try:
            return name, (folder / name).read_bytes()
        except OSError:
            continue
    return None


def _being_replaced(source: str | Path, before: tuple[str, bytes] | None) -> bool:
    """Did the card change since ``before``, or does a running export stage or set aside a
    folder of this name now (``_replace_export``'s ``.NAME.export-*`` and ``.NAME.old-*``,
    named after the folder a symlinked --out points to; a killed export's are not)?"""
    if _card_state(source) != before:
        return True
    folder = _model_folder(Path(os.path.realpath(source)))
    try:
        names = os.listdir(folder.parent)
    except OSError:
        return False
    prefixes = (f".{folder.name}.export-", f".{folder.name}.old-")
    dead = {p.name for prefix in prefixes for p in left_by_dead_writers(folder.parent, prefix)}
    return any(n.startswith(prefixes) and n not in dead for n in names)


def _card_numbers(threshold: Any, info: dict[str, Any]) -> tuple[float, int, int]:
    """The threshold, image_size and channels a model is used with (``info``: a card, or a
    record's ``data``), checked: numbers, the threshold in [0, 1]; a ValueError says what
    is wrong. ``predict`` checks them before it scores, ``export`` before it stages."""
    try:
        chosen = float(threshold)
        size, channels = int(info.get("image_size") or 0), int(info.get("channels") or 0)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"threshold, image_size or channels is not a number ({exc})") from None
    if not 0.0 <= chosen <= 1.0:
        raise ValueError(f"threshold {chosen} is outside [0, 1]")
    return chosen, size, channels


def _record_shape(record: Any) -> str | None:
    """Why a trial, finalize or ensemble record cannot make a model card (None: it can)."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    for key in ("data", "val"):
        if record.get(key) and not isinstance(record[key], dict):
            return f'its "{key}" is not a mapping'
    return None


def _resolve_model(source: str | Path, threshold: float | None,
                   recall_target: float | None) -> ModelCard:
    source = Path(source)
    if not source.exists():
        raise OptionError(f"--model {source}: not found")
    folder = source if source.is_dir() else source.parent
    info: dict[str, Any] = {}
    for name in (CARD_FILE, RECORD_FILE, FINAL_FILE):  # export, trial, finalize seed
        path = folder / name
        if path.is_file():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise OptionError(f"--model {source}: {path} is unreadable ({exc})") from exc
            if not isinstance(raw, dict):
                raise OptionError(f"--model {source}: {path} is not a JSON object")
            problem = _record_shape(raw) if name != CARD_FILE else None
            if problem:  # model_card reads its data and val as mappings
                raise OptionError(f"--model {source}: {path}: {problem}")
            info = model_card(raw) if name != CARD_FILE else raw
            if name != CARD_FILE:  # the model's digest as its evaluation saved it
                info["model_sha256"] = raw.get("model_sha256")
            info["_from"] = str(path)
            break
    members: tuple[Path, ...] = ()
    if info.get("kind") == "ensemble" and source.is_dir():  # an exported ensemble
        try:
            members = tuple(folder / str(m["folder"]) / MODEL_FILE for m in info["members"])
        except (KeyError, TypeError) as exc:
            raise OptionError(f"--model {source}: {info['_from']} lists no members") from exc
        missing = [str(m) for m in members if not m.is_file()]
        if not members or missing:
            raise OptionError(f"--model {source}: the ensemble's member model "
                              f"{missing[0] if missing else '(none)'} is missing")
        model_path = folder
    else:
        model_path = source if source.is_file() else folder / MODEL_FILE
        if not model_path.is_file():
            ranks = sorted(p for p in folder.iterdir() if p.is_dir()
                           and _RANK_FOLDER.match(p.name) and (p / CARD_FILE).is_file()
                           ) if folder.is_dir() else []
            hint = (f" (an export of --top {len(ranks)}: give one of its folders, "
                    f"--model {ranks[0]})" if ranks
                    else " (an ensemble row is exported with `autopneumo export --ensemble "
                    "NAME`; a finalize rank folder holds one model per seed folder)"
                    if folder.name.startswith(("top", "rank")) or folder.parent.name.startswith("_")
                    else "")
            raise OptionError(f"--model {source}: no {MODEL_FILE} there{hint}")
        if model_path.suffix != ".keras":
            raise OptionError(f"--model {source}: not a .keras model file or a folder "
                              "holding one")
    blobs = _checked_model_bytes(source, info, model_path, members)
    if recall_target is not None:
        threshold = validation_threshold(folder, recall_target)
    chosen = threshold if threshold is not None else info.get("threshold")
    if chosen is None:
        raise OptionError(f"--model {source}: no model card, trial record or finalize record "
                          "with a threshold beside it; pass --threshold")
    where = info.get("_from", "--threshold")
    try:
        chosen, size, channels = _card_numbers(chosen, info)
    except ValueError as exc:
        raise OptionError(f"--model {source}: {where}: {exc}") from None
    from .ensemble import COMBINE

    combine = str(info.get("combine") or "probability")
    if members and combine not in COMBINE:  # the card's rule: predict has no --combine
        raise OptionError(f"--model {source}: {where}: combine {combine!r} is not one of "
                          f"{', '.join(COMBINE)}")
    return ModelCard(model_path, chosen, size, channels, info, members, combine,
                     bool(info.get("tta")), blobs)


class _ModelMismatch(OptionError):
    """A model file that is not the one its card or record describes; ``recent`` where it
    was written within ``SWAP_WAIT`` (a re-evaluation saves the model, then the record)."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        try:
            self.recent = time.time() - path.stat().st_mtime < SWAP_WAIT
        except OSError:
            self.recent = False


def _checked_model_bytes(source: Path, info: dict[str, Any], model_path: Path,
                         members: tuple[Path, ...]) -> tuple[bytes, ...]:
    """The model files' bytes, each checked against the sha256 the card recorded: a model
    swapped into an exported folder would be scored against another model's threshold and
    numbers. Cards written before the digest was recorded are not checked."""
    def digest(entry: Any) -> Any:
        return entry.get("model_sha256") if isinstance(entry, dict) else None

    if members:
        entries = list(info.get("members") or [])
        recorded = [(m, digest(entries[i]) if i < len(entries) else None)
                    for i, m in enumerate(members)]
    else:  # a record's digest is of its model.keras, not of another .keras beside it
        recorded = [(model_path, digest(info.get("provenance")) or (
            info.get("model_sha256") if model_path.name == MODEL_FILE else None))]
    blobs = []
    for path, expected in recorded:
        try:
            blob = path.read_bytes()
        except FileNotFoundError as exc:
            raise OptionError(f"--model {source}: {path} is missing") from exc
        if isinstance(expected, str) and hashlib.sha256(blob).hexdigest() != expected:
            card = "model_sha256" not in info
            raise _ModelMismatch(
                f"--model {source}: {path} is not the model {info.get('_from', 'its card')} "
                "describes (its sha256 differs from the recorded one): the "
                f"{'card' if card else 'record'}'s threshold and numbers belong to another "
                f"model; {'export it again' if card else 'was the model file replaced?'}", path)
        blobs.append(blob)
    return tuple(blobs)


def image_files(inputs: str | Path | list[str | Path]) -> tuple[list[Path], list[Path]]:
    """The image files among ``inputs`` (files, and the images inside folders), and the
    files inside those folders skipped, neither an image by their suffix nor DICOM by
    their content (PACS exports name files IM000001 or by UID, ``1.2.840...504``; their
    DICOMDIR index holds no image). What is neither a file nor a folder there (a broken
    link, a FIFO) is never opened: one named as an image is kept (an error row), any other
    is skipped. A linked subfolder is not followed (it could lead out of the folder, or
    round in a loop) and is counted as skipped: give it as a folder of its own."""
    files: list[Path] = []
    skipped: list[Path] = []
    for item in map(Path, [inputs] if isinstance(inputs, str | Path) else inputs):
        if item.is_dir():
            found = sorted(item.rglob("*"))
            skipped.extend(p for p in found if p.is_symlink() and p.is_dir())
            for p in (p for p in found if not p.is_dir()):
                named = p.suffix.lower() in PREDICT_SUFFIXES
                readable = named or (p.is_file() and p.name.upper() != "DICOMDIR"
                                     and is_dicom(p))
                (files if readable else skipped).append(p)
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such image or folder")
    unique: dict[Path, Path] = {}  # a file given twice (by name and in its folder): once
    for f in files:
        unique.setdefault(Path(os.path.realpath(f)), f)  # resolve() raises on a link loop
    files = list(unique.values())
    if not files:
        raise DataError(f"no images ({', '.join(PREDICT_SUFFIXES)}) found in the given paths")
    return files, skipped


SMALLEST_SIDE = 64  # px: the smallest image size a search space offers
WIDEST_ASPECT = 2.0  # chest radiographs are about square (5:4 to 4:5 and so)
BLANK_STD = 2.0  # grey levels (or stored levels of a 16-bit image): less, no structure


def input_warnings(image: np.ndarray, info: dict) -> str | None:
    """Why a score for this image deserves little trust although it decoded: far smaller
    than the model's input (upscaled), not chest-radiograph shaped, or nearly blank (in
    the decoded image, or in a 16-bit or DICOM image's stored values before the stretch).
    The model still scores it (a one-class model would call a grey square confidently).
    ``info``: what ``decode_image`` said of the file."""
    found = []
    width, height = info.get("width") or 0, info.get("height") or 0
    if width and height and min(width, height) < SMALLEST_SIDE:
        found.append(f"only {width}x{height} px")
    if width and height and max(width, height) / min(width, height) > WIDEST_ASPECT:
        found.append(f"aspect ratio {max(width, height) / min(width, height):.1f}, not a chest "
                     "radiograph's")
    stored = info.get("stored_std")
    if float(np.std(image)) < BLANK_STD or (stored is not None and stored < BLANK_STD):
        found.append("nearly blank")
    return "; ".join(found) or None


def _file_cell(path: Path) -> str:
    """The file as given, except that a relative path starting like a spreadsheet formula
    (``-scan.png``, ``=x.png``) gets ``./``: still the same file, and the CSV need not
    escape it (an escaped ``'-scan.png`` names no file, so a join back to the files fails)."""
    text = str(path)
    return f"./{text}" if not path.is_absolute() and text[:1] in "=+-@" else text


def check_model(net: Any, card: ModelCard, source: str | Path) -> tuple[int, int]:
    """The model's (image size, channels), after checking it is a model ``predict`` can
    use: one output per image, a fixed square grey or RGB input, and the card's input
    format where the card names one."""
    output = net.output_shape
    if not (isinstance(output, tuple) and len(output) == 2 and output[1] == 1):
        raise OptionError(f"--model {source}: its output has shape {output}; predict needs one "
                          "score per image (shape (None, 1), a sigmoid)")
    shape = net.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and isinstance(shape[1], int)
            and shape[1] == shape[2] and shape[3] in (1, 3)):
        raise OptionError(f"--model {source}: its input has shape {shape}; predict needs a "
                          "fixed square image of 1 or 3 channels")
    size, channels = int(shape[1]), int(shape[3])
    if (card.image_size and card.image_size != size) or (card.channels and card.channels != channels):
        raise OptionError(f"--model {source}: {card.info.get('_from')} says {card.image_size} px "
                          f"x {card.channels} channel(s), {card.model_path} takes {size} px x "
                          f"{channels}: they do not belong together")
    return size, channels


def _scores(nets: list[Any], card: ModelCard, x: np.ndarray, batch_size: int,
            source: str | Path) -> np.ndarray:
    """One model's scores, or an exported ensemble's: each member's (flip-averaged where
    the ensemble used TTA), combined by the ensemble's rule. Every model's own scores
    must lie in [0, 1] (combining would clip a logit model's outputs silently)."""
    from .ensemble import combine_scores, flip_predict

    each = [flip_predict(net, x, batch_size) if card.tta
            else predict_batches(net, x, batch_size).ravel() for net in nets]
    for scores in each:
        _check_scores(scores, source)
    return combine_scores(each, card.combine) if card.members else each[0]


def _check_scores(scores: np.ndarray, model: str | Path) -> None:
    outside = scores[~((scores >= 0) & (scores <= 1))]
    if len(outside):
        raise OptionError(f"--model {model}: it outputs scores outside [0, 1] (e.g. "
                          f"{float(outside[0]):g}); predict needs a sigmoid output")


def _check_batch_size(batch_size: Any) -> None:
    """0 failed at the first scoring (range's step), 1.5 was taken as 1."""
    from .spaces import positive_int

    if not positive_int(batch_size):
        raise OptionError(f"batch_size must be a positive integer, got {batch_size!r}")


class Predictor:
    """A model (a trial's, a finalize seed's, an export, or an exported ensemble's members)
    loaded once, to score image files or decoded images many times: what ``predict``
    does per call, for a service or a notebook that scores as images arrive.

    >>> scorer = Predictor("winner/")
    >>> scorer.predict(["a.png", "b.dcm"])      # the frame ``predict`` returns
    >>> scorer.scores(images)                   # (N, size, size, channels) uint8 -> (N,)
    """

    def __init__(self, model: str | Path, threshold: float | None = None,
                 recall_target: float | None = None, batch_size: int = 64,
                 card: ModelCard | None = None):
        from .hypermodel import load_trained_model

        _check_batch_size(batch_size)
        self.source = model
        self.card = card or resolve_model(model, threshold, recall_target)
        self.batch_size = int(batch_size)
        self.threshold_source = (
            "given with --threshold" if threshold is not None
            else f"chosen on validation for recall >= {recall_target:g}"
            if recall_target is not None
            else "fixed at 0.5: a reference run" if self.card.info.get("reference")
            else "chosen on validation")
        self.threshold_given = threshold is not None
        paths = self.card.members or (self.card.model_path,)
        self.nets = [load_trained_model(path, blob) for path, blob in
                     zip(paths, self.card.blobs or (None,) * len(paths), strict=True)]
        self.card = replace(self.card, blobs=())  # loaded: not kept for the scorer's life
        shapes = {check_model(net, self.card, model) for net in self.nets}
        if len(shapes) > 1:
            raise OptionError(f"--model {model}: the ensemble's members take different "
                              f"inputs ({sorted(shapes)})")
        self.image_size, self.channels = shapes.pop()

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def scores(self, images: np.ndarray) -> np.ndarray:
        """Scores of decoded images: uint8 ``(N, image_size, image_size, channels)``, as
        ``autopneumo.data.images.decode_image`` gives them (0-255; the model normalises)."""
        images = np.asarray(images)
        want = (self.image_size, self.image_size, self.channels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want:
            raise OptionError(f"--model {self.source}: takes uint8 images of shape "
                              f"(N, {', '.join(map(str, want))}), got {images.dtype} "
                              f"{images.shape}")
        if not len(images):
            return np.zeros(0)
        return _scores(self.nets, self.card, images, self.batch_size, self.source)

    def predict(self, inputs: str | Path | list[str | Path]) -> pd.DataFrame:
        """``predict``'s frame for these files and folders."""
        return self._predict(*image_files(inputs))

    def _predict(self, files: list[Path], skipped: list[Path]) -> pd.DataFrame:
        from .data.images import decode_image

        rows, arrays = [], []
        for path in files:
            try:
                if not path.is_file():  # image_files keeps these as error rows, unopened
                    raise FileNotFoundError(
                        f"a broken link (to {os.readlink(path)})" if path.is_symlink()
                        else "not a regular file (a FIFO, socket or device?)")
                info: dict = {}  # each file is read once: its size and spread come along
                arrays.append(decode_image(path, self.image_size, self.channels, info))
                rows.append({"file": _file_cell(path), "error": None,
                             "warning": input_warnings(arrays[-1], info)})
            except Exception as exc:  # noqa: BLE001 - reported per file
                rows.append({"file": _file_cell(path), "error": f"{type(exc).__name__}: {exc}",
                             "warning": None})
        scores = self.scores(np.stack(arrays)) if arrays else np.zeros(0)
        probabilities = iter(scores)
        for row in rows:
            if row["error"] is None:
                p = float(next(probabilities))
                row.update(probability=p,
                           label="PNEUMONIA" if p >= self.threshold else "NORMAL")
            else:
                row.update(probability=np.nan, label=None)
        frame = pd.DataFrame(rows, columns=["file", "probability", "label", "error", "warning"])
        frame["probability"] = frame["probability"].astype(float)
        frame["threshold"] = self.threshold  # in the CSV too: which threshold made the labels
        frame.attrs["threshold"] = self.threshold
        frame.attrs["threshold_given"] = self.threshold_given
        frame.attrs["threshold_source"] = self.threshold_source
        frame.attrs["skipped"] = [str(p) for p in skipped]
        return frame


def predict(model: str | Path, inputs: str | Path | list[str | Path],
            threshold: float | None = None, batch_size: int = 64,
            recall_target: float | None = None) -> pd.DataFrame:
    """Score for pneumonia and the label at the validation-chosen threshold, per image
    (the ``probability`` column: the sigmoid output, not a calibrated probability).

    Unreadable images get an empty probability and their error, not an exception; an
    image that decoded but deserves little trust (tiny, not radiograph-shaped, nearly
    blank) is scored and gets a ``warning``.
    ``frame.attrs``: ``threshold``, ``threshold_given``, ``threshold_source``, ``skipped``
    (files in the given folders that are not images). To score many times with one
    model loaded once: ``Predictor``.
    """
    _check_batch_size(batch_size)
    card = resolve_model(model, threshold, recall_target)
    files, skipped = image_files(inputs)  # before the model's load: a bad path fails fast
    scorer = Predictor(model, threshold, recall_target, batch_size, card)
    del card  # its model bytes, loaded: not held while the images are scored
    return scorer._predict(files, skipped)
