"""``ensemble``: average the probabilities of the top K trials (by validation), optionally
with test-time augmentation (horizontal flip), and record the result as one more row.

``combine`` is how the members' scores are averaged: ``probability`` (the mean
probability) or ``logit`` (the mean log-odds, turned back into a probability: the
normalised geometric mean of the members' odds). Models trained from scratch with class
weights often output probabilities squashed against 0 or 1, on different scales from one
member to the next; a probability mean then follows whichever member is least sure,
while the mean log-odds weighs every member's ranking alike.

Members are the K best completed search trials by the leaderboard's validation ranking
(reference runs and other ensembles are never members); test metrics play no part in the
choice. Every member must have scored the same validation and test images. The decision
threshold is chosen on the ensemble's validation scores with the rule every trial uses
(``validation_summary`` at the recall target), then the test split is scored once, with
bootstrap intervals, exactly as ``Evaluator.evaluate`` does for a trial.

The result goes to ``<runs>/_ensemble/top{K}[_tta]/``: a ``record.json`` with the trial
record's schema (``family: ensemble``, ``kind: ensemble``, the member list) and a
``predictions.csv``, so ``leaderboard`` and ``report`` show it as its own, marked row.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_write_json
from .backend import predict_batches
from .errors import OptionError, RunsError
from .evaluation import (
    MODEL_FILE,
    PREDICTIONS_FILE,
    RECORD_FILE,
    SCHEMA_VERSION,
    _write_predictions,
    patients_in,
    read_predictions,
)
from .finalize import FINAL_FILE
from .leaderboard import leaderboard
from .objective import (
    binary_metrics,
    bootstrap_intervals,
    check_bootstrap,
    resampled_over,
    validation_summary,
)
from .paths import DEFAULT_RUNS_DIR, require_runs_dir

ENSEMBLE_DIR = "_ensemble"
KIND = "ensemble"
SPLITS = ("val", "test")
COMBINE = {"probability": "mean probability",
           "logit": "mean log-odds (geometric mean of the odds)"}
# log-odds of probabilities saved from float32 sigmoids, clipped symmetrically where
# float32 stops telling them apart near 1: 1 - 2**-24 is its last value below 1 (a
# sigmoid gives exactly 1.0 from a logit of about +17), so log-odds run within +-16.6.
# float32 would resolve far smaller scores near 0 (down to 1.4e-45), but a wider clip
# there only (the twentieth session tried it) pulled every image towards NORMAL where a
# member was saturated both ways: members at logits +30 and -30 averaged to 0.001, not
# 0.5. The price: scores below 6e-8 tie within a member.
_LOW = 2.0 ** -24
_HIGH = 1.0 - 2.0 ** -24


def ensemble_name(top: int, tta: bool = False, combine: str = "probability") -> str:
    return f"top{top}" + ("_tta" if tta else "") + _suffix(combine)


def _suffix(combine: str) -> str:
    return "" if combine == "probability" else f"_{combine}"


def check_combine(combine: str) -> None:
    if combine not in COMBINE:
        raise OptionError(f"--combine must be one of {', '.join(COMBINE)}, got {combine!r}")


def combine_scores(scores: list[np.ndarray], combine: str = "probability") -> np.ndarray:
    """The members' probabilities (one array each, same images) averaged by ``combine``."""
    check_combine(combine)
    stacked = np.asarray(scores, dtype=np.float64)
    if combine == "probability":
        return stacked.mean(axis=0)
    p = np.clip(stacked, _LOW, _HIGH)
    log_odds = np.mean(np.log(p) - np.log1p(-p), axis=0)  # within +-16.6
    return 1.0 / (1.0 + np.exp(-log_odds))


def ensemble(runs_dir: str | Path = DEFAULT_RUNS_DIR, top: int = 3, tta: bool = False,
             n_boot: int = 1000, command: str = "",
             combine: str = "probability", data: str | Path | None = None) -> dict[str, Any]:
    """Build, evaluate and save the ensemble of the ``top`` best trials; returns its record
    (``record["_path"]`` is the ``record.json`` written). ``data``: with ``tta``, the data
    folder if it moved since the search (the same files, checked by the data hash)."""
    from .spaces import positive_int

    check_combine(combine)
    if not positive_int(top):  # 2.0 or "2" from Python: not a TypeError in pandas
        raise OptionError(f"--top must be a positive integer, got {top!r}")
    check_bootstrap(n_boot)
    if data is not None and not tta:
        raise OptionError("--data is for --tta (re-scoring the images); without it the saved "
                          "predictions are averaged")
    if top == 1 and not tta:
        raise OptionError("--top 1 without --tta is the best trial itself; "
                          "use --top 2 or more, or add --tta")
    runs_dir = require_runs_dir(runs_dir)
    from .locking import project_lock

    name = ensemble_name(top, tta, combine)
    # one writer per ensemble name: two at once (other members, a better trial came in
    # between) wrote one's predictions under the other's record; the lock lies in the runs
    # folder, so a refused ensemble writes nothing under _ensemble
    with project_lock(runs_dir, f".ensemble_{name}.lock", "ensemble"):
        return _ensemble(runs_dir, name, top, tta, n_boot, command, combine, data)


def _ensemble(runs_dir: Path, name: str, top: int, tta: bool, n_boot: int, command: str,
              combine: str, data: str | Path | None) -> dict[str, Any]:
    start = time.perf_counter()
    members = select_members(runs_dir, top)
    records = [_read_record(Path(m["trial_dir"])) for m in members]
    target = _common_target(records, "the top trials were searched at",
                            ", ".join(m["trial_dir"] for m in members))
    _common_input(records, [m["trial_dir"] for m in members])
    for member, record in zip(members, records, strict=True):
        member["model_sha256"] = record.get("model_sha256")  # export checks the copies
    saved = [_read_member_predictions(Path(m["trial_dir"])) for m in members]
    files, labels, patients = _common_split(members, saved)
    if tta:
        datasets: dict[tuple, Any] = {}
        scores = [_tta_scores(Path(m["trial_dir"]), r, files, datasets, data)
                  for m, r in zip(members, records, strict=True)]
    else:
        scores = _saved_scores(saved, files)
    info = {"top": top, "combine": COMBINE[combine],
            "tta": "horizontal flip (mean of original and flipped)" if tta else None,
            "selected_by": "validation objective (leaderboard rank), never test metrics"}
    return _save(runs_dir, name, members, records, files, labels,
                 scores, target, info, _environment(records[0], tta), n_boot, command, start,
                 combine=combine, patients=patients)


def seed_ensemble(runs_dir: str | Path, seed_dirs: list[Path], name: str, label: str,
                  n_boot: int = 1000, command: str = "",
                  combine: str = "probability") -> dict[str, Any]:
    """Average the probabilities of one configuration's retrainings (``finalize``'s seeds)
    and record the result as an ensemble row, ``<runs>/_ensemble/<name>/``, whose policy
    column reads ``label`` (e.g. ``3 seeds of 0016``).

    The configuration was chosen on validation and every seed was trained on the same
    data, so the row is as honest as any trial's: its threshold is chosen on the mean
    validation scores, and the test split is scored once."""
    check_combine(combine)
    start = time.perf_counter()
    runs_dir = Path(runs_dir)
    if len(seed_dirs) < 2:
        raise OptionError("an ensemble of seeds needs at least 2 seeds")
    records = [_read_record(Path(d), FINAL_FILE) for d in seed_dirs]
    target = _common_target(records, f"the retrainings of {name} used",
                            ", ".join(map(str, seed_dirs)))
    _common_input(records, [str(d) for d in seed_dirs])
    members = [{"seed": r.get("seed"), "trial_dir": str(d), "finalize_of": r.get("finalize_of"),
                "val_objective": (r.get("val") or {}).get("objective"),
                "threshold": r.get("threshold"), "model_sha256": r.get("model_sha256")}
               for d, r in zip(seed_dirs, records, strict=True)]
    saved = [_read_member_predictions(Path(d)) for d in seed_dirs]
    files, labels, patients = _common_split(members, saved)
    scores = _saved_scores(saved, files)
    info = {"seeds": [m["seed"] for m in members], "of": records[0].get("finalize_of"),
            "combine": COMBINE[combine], "tta": None,
            "selected_by": "the configuration's validation rank; every seed's retraining"}
    return _save(runs_dir, name + _suffix(combine), members, records, files, labels, scores,
                 target, info, records[0].get("environment"), n_boot, command, start,
                 label if combine == "probability" else f"{label}, {combine} mean", combine,
                 patients=patients)


def _save(runs_dir: Path, name: str, members: list[dict[str, Any]],
          records: list[dict[str, Any]], files: dict[str, np.ndarray],
          labels: dict[str, np.ndarray], scores: list[dict[str, np.ndarray]], target: float,
          info: dict[str, Any], environment: Any, n_boot: int, command: str,
          start: float, label: str | None = None,
          combine: str = "probability", *,
          patients: dict[str, np.ndarray]) -> dict[str, Any]:
    """Threshold on the combined validation scores, score the test split once, write the
    record and predictions under ``<runs>/_ensemble/<name>/``."""
    p_val = combine_scores([s["val"] for s in scores], combine)
    p_test = combine_scores([s["test"] for s in scores], combine)

    val = validation_summary(labels["val"], p_val, target)
    threshold = val["threshold"]
    test = binary_metrics(labels["test"], p_test, threshold, target)
    test_ci = bootstrap_intervals(labels["test"], p_test, threshold, n_boot=n_boot,
                                  groups=patients["test"], target=target)

    out = runs_dir / ENSEMBLE_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    split = SimpleNamespace(**{s: SimpleNamespace(files=files[s], y=labels[s], patients=patients[s])
                               for s in SPLITS})
    _write_predictions(out / PREDICTIONS_FILE, split, p_val, p_test)
    from .data.download import file_digest
    best = records[0]
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "project": ENSEMBLE_DIR,
        "family": KIND,
        "policy": label or name,
        "tuner": KIND,
        "trial_id": name,
        "status": "completed",
        "message": None,
        "hyperparameters": {},
        "recall_target": target,
        "members": members,
        "ensemble": info,
        "data": best.get("data"),
        "environment": environment,
        "command": command,
        "trial_dir": str(out),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "val": val,
        "threshold": threshold,
        "test": test,
        "test_ci": {k: list(v) for k, v in test_ci.items()},
        "test_ci_resampled": resampled_over(patients["test"]),
        "history": {},
        "epochs_run": None,
        "best_epoch": None,
        "params": _total_params(records),
        "files": {"predictions": PREDICTIONS_FILE},
        # these scores' (export checks its copy: an ensemble rebuilt as it read the folder)
        "predictions_sha256": file_digest(out / PREDICTIONS_FILE),
        "seconds": {"evaluation": time.perf_counter() - start},
    }
    path = atomic_write_json(out / RECORD_FILE, record)
    record["_path"] = str(path)
    return record


def select_members(runs_dir: Path, top: int) -> list[dict[str, Any]]:
    """The ``top`` best completed search trials by validation (no reference run, no ensemble)."""
    frame = leaderboard(runs_dir)
    if frame.empty:
        raise RunsError(f"{runs_dir}: no completed trial to ensemble")
    done = frame[(frame["status"] == "completed") & frame["val_objective"].notna()
                 & ~frame["reference"].astype(bool) & ~frame["ensemble"].astype(bool)]
    if len(done) < top:
        raise RunsError(f"{runs_dir}: --top {top} needs {top} completed trials, "
                        f"found {len(done)}")
    # rank among the search trials: an ensemble row already written must not shift it
    return [{"rank": rank, "project": row["project"], "family": row["family"],
             "policy": row["policy"], "trial_id": str(row["trial_id"]),
             "trial_dir": str(row["trial_dir"]), "val_objective": float(row["val_objective"]),
             "threshold": float(row["threshold"])}
            for rank, (_, row) in enumerate(done.head(top).iterrows(), start=1)]


def _common_input(records: list[dict[str, Any]], where: list[str]) -> None:
    """Members must take one input (image size, channels: an export runs them on one
    decode of each image) and have scored the same data (content hashes; a record from
    before those had only its file list's). A RunsError naming them otherwise."""
    def data_of(record):
        return record.get("data") if isinstance(record.get("data"), dict) else {}

    datas = [data_of(r) for r in records]
    for j in range(1, len(records)):  # every pair: a member may name what the first lacks
        for i in range(j):
            first, data = datas[i], datas[j]
            for key, what in (("image_size", "px"), ("channels", "channel(s)")):
                if None not in (first.get(key), data.get(key)) and first[key] != data[key]:
                    raise RunsError(f"the members take different inputs: {where[i]} "
                                    f"{first[key]} {what}, {where[j]} {data[key]} {what}; "
                                    "an ensemble's models run on one decode of each image")
            if not _same_data(first, data):
                raise RunsError(f"the members were scored on different data (data hashes "
                                f"{first.get('data_hash')} and {data.get('data_hash')}): "
                                f"{where[i]}, {where[j]}")


def _same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Content hashes where both records have them; else whichever hashes they share (an
    old record's data_hash was its file list's). Unknown (none recorded) passes."""
    if not a.get("data_hash") or not b.get("data_hash"):
        return True
    if a.get("data_list_hash") and b.get("data_list_hash"):
        return a["data_hash"] == b["data_hash"]
    return bool({a["data_hash"], a.get("data_list_hash")} - {None}
                & {b["data_hash"], b.get("data_list_hash")} - {None})


def _common_target(records: list[dict[str, Any]], what: str, where: str) -> float:
    """The members' one recall target; a RunsError naming them if they differ."""
    targets = {float(r.get("recall_target", 0.95)) for r in records}
    if len(targets) > 1:
        raise RunsError(f"{what} different recall targets "
                        f"({', '.join(map(str, sorted(targets)))}): {where}")
    return targets.pop()


def _saved_scores(saved: list[dict[str, pd.DataFrame]], files: dict[str, np.ndarray],
                  ) -> list[dict[str, np.ndarray]]:
    """Each member's saved probabilities, in ``files`` order."""
    return [{s: p[s].loc[files[s], "probability"].to_numpy(dtype=np.float64) for s in SPLITS}
            for p in saved]


def _read_record(trial_dir: Path, filename: str = RECORD_FILE) -> dict[str, Any]:
    try:
        record = json.loads((trial_dir / filename).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RunsError(f"{trial_dir}: cannot read {filename} ({exc})") from exc
    if not isinstance(record, dict):
        raise RunsError(f"{trial_dir}: {filename} is not a record")
    target = record.get("recall_target", 0.95)
    try:
        number = float(target)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not 0.0 < number < 1.0:
        raise RunsError(f"{trial_dir}: {filename}: recall_target {target!r} is not a number "
                        "in (0, 1)")
    return record


def _read_member_predictions(trial_dir: Path) -> dict[str, pd.DataFrame]:
    try:
        parts = read_predictions(trial_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise RunsError(f"{trial_dir}: cannot read {PREDICTIONS_FILE} ({exc})") from exc
    out = {}
    for split in SPLITS:
        part = parts.get(split)
        if part is None or len(part["label"]) == 0:
            raise RunsError(f"{trial_dir}: {PREDICTIONS_FILE} has no {split} predictions")
        # a damaged cell ("0.5x") becomes NaN and is refused below, not a ValueError
        labels = pd.to_numeric(pd.Series(part["label"]), errors="coerce").to_numpy(np.float64)
        scores = pd.to_numeric(pd.Series(part["probability"]),
                               errors="coerce").to_numpy(np.float64)
        if not (np.isin(labels, (0, 1)).all() and np.isfinite(scores).all()):
            raise RunsError(f"{trial_dir}: {PREDICTIONS_FILE} has {split} rows without a 0/1 "
                            "label or a finite probability (truncated?)")
        frame = pd.DataFrame({"label": labels.astype(int), "probability": scores,
                              "patient": patients_in(part)},
                             index=pd.Index(np.asarray(part["file"]).astype(str), name="file"))
        if frame.index.has_duplicates:
            raise RunsError(f"{trial_dir}: {PREDICTIONS_FILE} lists a {split} file twice")
        out[split] = frame
    return out


def _common_split(members: list[dict[str, Any]], saved: list[dict[str, pd.DataFrame]],
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                             dict[str, np.ndarray]]:
    """The first member's validation and test files, labels and patients; every member must have
    scored exactly these (a different split or data set is refused, naming the trials)."""
    first = saved[0]
    differ = []
    for member, pred in zip(members[1:], saved[1:], strict=True):
        for split in SPLITS:
            a, b = first[split], pred[split]
            if len(a) != len(b) or not a.index.isin(b.index).all() or not (
                    b.loc[a.index, "label"].to_numpy() == a["label"].to_numpy()).all():
                differ.append(member["trial_dir"])
                break
    if differ:
        raise RunsError("the top trials were not evaluated on the same validation and test "
                        f"files (different splits or data): {', '.join(differ)} differ from "
                        f"{members[0]['trial_dir']}")
    files = {s: first[s].index.to_numpy() for s in SPLITS}
    labels = {s: first[s]["label"].to_numpy() for s in SPLITS}
    patients = {s: first[s]["patient"].to_numpy() for s in SPLITS}
    return files, labels, patients


def _dataset_for(record: dict[str, Any], datasets: dict[tuple, Any],
                 data: str | Path | None = None) -> Any:
    """The data set a record was evaluated on, loaded with its settings (once per setting),
    from its recorded folder or ``data`` (a moved copy of the same files)."""
    from .data import load_dataset
    from .data.dataset import recorded_dataset

    recorded = record.get("data") or {}
    if not recorded.get("path") and data is None:
        raise RunsError(f"{record.get('trial_dir')}: the record names no data folder, so "
                        "--tta cannot re-score its images (pass --data)")
    key = (str(data if data is not None else recorded["path"]), recorded.get("image_size"),
           recorded.get("channels"), recorded.get("val_fraction"), recorded.get("split_seed"),
           recorded.get("data_hash"))
    if key not in datasets:
        datasets.clear()  # one data set in memory at a time
        datasets[key] = recorded_dataset(load_dataset, record, Path(record["trial_dir"]), data)
    return datasets[key]


def flip_predict(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Mean of the model's probabilities on ``x`` and on ``x`` flipped left-right."""
    x = np.asarray(x)
    plain = predict_batches(model, x, batch_size).ravel()
    flipped = predict_batches(model, np.ascontiguousarray(x[:, :, ::-1, :]), batch_size).ravel()
    return (plain.astype(np.float64) + flipped.astype(np.float64)) / 2.0


def _tta_scores(trial_dir: Path, record: dict[str, Any], files: dict[str, np.ndarray],
                datasets: dict[tuple, Any], data: str | Path | None = None
                ) -> dict[str, np.ndarray]:
    """One member's flip-averaged validation and test probabilities, in ``files`` order."""
    from .hypermodel import load_trained_model

    model_path = trial_dir / str((record.get("files") or {}).get("model") or MODEL_FILE)
    if not model_path.is_file():
        raise RunsError(f"{trial_dir}: no {model_path.name}, so --tta cannot re-score it")
    dataset = _dataset_for({**record, "trial_dir": str(trial_dir)}, datasets, data)
    model = load_trained_model(model_path)
    out = {}
    for split in SPLITS:
        part = getattr(dataset, split)
        scores = pd.Series(flip_predict(model, part.x), index=np.asarray(part.files).astype(str))
        missing = ~np.isin(files[split], scores.index)
        if missing.any():
            raise RunsError(f"{trial_dir}: the data at {data or record['data']['path']} no longer holds "
                            f"{int(missing.sum())} of its {split} images "
                            f"(e.g. {files[split][missing][0]})")
        out[split] = scores.loc[files[split]].to_numpy()
    del model
    return out


def _environment(best: dict[str, Any], tta: bool) -> Any:
    if tta:  # the models ran here
        from .provenance import environment

        return environment()
    return best.get("environment")  # only saved probabilities were averaged


def _total_params(records: list[dict[str, Any]]) -> int | None:
    params = [r.get("params") for r in records]
    return int(sum(params)) if all(isinstance(p, int) for p in params) else None
