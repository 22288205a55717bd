"""``leaderboard``: every trial record of every project as one ranked DataFrame.

Ranked by the validation objective only; test metrics are shown, never used to rank.
Records that cannot be read are skipped and listed in ``DataFrame.attrs["skipped"]``.
Ensembles (``autopneumo ensemble``, records with ``kind: ensemble``) are rows too, marked
``ensemble``; ``search_trials`` leaves them out where a row must be one trained model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .evaluation import RECORD_FILE
from .objective import recorded_metric
from .paths import DEFAULT_RUNS_DIR, files_named

TEST_METRICS = ("prec_at_recall", "precision", "recall", "accuracy", "auc", "specificity",
                "npv", "f1", "loss")
CI_METRICS = ("prec_at_recall", "precision", "recall", "accuracy", "auc", "specificity", "npv",
              "f1", "loss")  # records before the fifteenth session have no loss, prec_at_recall
# (nor, before the sixteenth, npv: its point estimate is derived from the counts)


def load_record(path: str | Path) -> dict[str, Any]:
    """One trial record; OSError or ValueError where it is unreadable or not a record (its
    ``trial_id`` must be a string or an integer: rows are sorted and grouped by it)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError("not an autopneumo trial record (nested too deeply)") from None
    if not isinstance(record, dict) or "trial_id" not in record:
        raise ValueError("not an autopneumo trial record")
    trial_id = record["trial_id"]
    if not isinstance(trial_id, str | int) or isinstance(trial_id, bool):
        raise ValueError(f"not an autopneumo trial record (trial_id {trial_id!r:.40} is not "
                         "a string or an integer)")
    return record


def read_records(runs_dir: str | Path, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """All readable ``record.json`` files below ``runs_dir`` (any depth), sorted by path."""
    out = []
    for path in files_named(runs_dir, RECORD_FILE):
        try:
            record = load_record(path)
        except FileNotFoundError:  # removed since the walk listed it: not a damaged record
            continue
        except (OSError, ValueError) as exc:
            if skipped is not None:
                skipped.append(f"{path}: {exc}")
            continue
        record["_path"] = str(path)
        out.append(record)
    return out


def leaderboard(runs_dir: str | Path = DEFAULT_RUNS_DIR, top: int | None = None) -> pd.DataFrame:
    """One row per trial, ranked by the validation objective (failed trials last); the
    ``top`` rows where given. ``RunsError`` where ``runs_dir`` is missing or a file (a
    mistyped path is not "no trials yet")."""
    from .errors import OptionError
    from .paths import require_runs_dir
    from .spaces import positive_int

    require_runs_dir(runs_dir)
    if top is not None and not positive_int(top):
        raise OptionError(f"--top must be a positive integer, got {top!r}")
    skipped: list[str] = []
    records = read_records(runs_dir, skipped)
    aliases = data_hash_aliases(records)
    rows = []
    for r in records:
        try:
            rows.append(_row(r, aliases))
        except (AttributeError, TypeError, ValueError, KeyError) as exc:  # valid JSON, wrong shape
            skipped.append(f"{r['_path']}: not a trial record ({type(exc).__name__}: {exc})")
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["rank", "family", "policy", "trial_id", "status",
                                      "val_objective"])
    else:
        # ties (an ensemble scores as its best member on validation) go to search trials
        frame["_derived"] = frame["ensemble"] | frame["reference"]
        # by number: keras-tuner pads ids to its --max-trials' width, so a project resumed
        # with more trials holds "1" and "02"
        frame["_number"] = pd.to_numeric(frame["trial_id"], errors="coerce")
        frame = frame.sort_values(
            ["val_objective", "val_auc", "_derived", "project", "_number", "trial_id"],
            ascending=[False, False, True, True, True, True], na_position="last",
            kind="mergesort",
        ).drop(columns=["_derived", "_number"]).reset_index(drop=True)
        frame.insert(0, "rank", range(1, len(frame) + 1))
    mixed = mixed_settings(frame)
    if top is not None:
        frame = frame.head(top)
    frame.attrs["skipped"] = skipped
    frame.attrs["mixed"] = mixed
    frame.attrs["runs_dir"] = str(runs_dir)
    return frame


def flag(row: Any, col: str) -> bool:
    """A row's boolean column (``reference``, ``ensemble``, ``pretrained``), numpy's bools
    included; missing (None, NaN: an unfinished row) is False."""
    value = row.get(col, False)
    return False if value is None or (isinstance(value, float) and math.isnan(value)) \
        else bool(value)


def mixed_settings(frame: pd.DataFrame) -> list[str]:
    """Warnings where rows ranked together cannot be compared: completed rows with
    different recall targets, or search trials validated on different splits (other data,
    ``--seed`` or ``--val-fraction``). Each objective is exact on its own split only."""
    if frame.empty or "status" not in frame:
        return []
    done = frame[frame["status"] == "completed"]
    out = []
    targets = done["recall_target"].dropna().value_counts().sort_index()
    if len(targets) > 1:
        listed = ", ".join(f"{t:g} ({n} rows)" for t, n in targets.items())
        out.append(f"rows ranked together used different recall targets: {listed}; "
                   "their validation objectives are not comparable")
    if "test_ci_resampled" in done:
        units = done["test_ci_resampled"].dropna().value_counts().sort_index()
        if len(units) > 1:
            listed = ", ".join(f"{u} ({n} rows)" for u, n in units.items())
            out.append(f"rows' test intervals resample different units: {listed}; an "
                       "interval over images is narrower than one over patients (the "
                       "test_ci_resampled column says which)")
    reference = done["reference"].astype(bool)
    trials = done[~reference & ~done["ensemble"].astype(bool)]
    splits = trials["validation_split"].dropna().value_counts().sort_index()
    if len(splits) > 1:
        listed = "; ".join(f"{v} ({n} trials)" for v, n in splits.items())
        out.append(f"trials ranked together were validated on different splits: {listed}; "
                   "compare within one (same data, --seed and --val-fraction)")
    if "split_hash" in trials:  # records since the sixteenth session name their images
        drawn = trials.dropna(subset=["validation_split", "split_hash"]).groupby(
            "validation_split")["split_hash"].nunique()
        for split in drawn[drawn > 1].index:
            out.append(f"trials with the same {split} were validated on different images "
                       "(their split hashes differ: another scikit-learn draws the split "
                       "another way); compare within one")
    if reference.any() and not reference.all():
        out.append(f"{int(reference.sum())} reference run(s) (marked as such) are ranked among the "
                   "search trials by a validation objective from their own image-level split, "
                   "which shares patients with their training images: not comparable, and "
                   "optimistic")
    return out


def best_search_trials(runs_dir: Path, top: int, verb: str, done: str) -> pd.DataFrame:
    """The ``top`` completed search trials by validation (``search_trials``) that
    ``finalize`` retrains and ``export`` copies; none is a RunsError naming the ``verb``
    ("finalize") and what is ``done`` to reference runs and ensembles ("retrained")."""
    board = leaderboard(runs_dir)
    frame = search_trials(board)
    best = frame[frame["status"] == "completed"].head(top) if len(frame) else frame
    if best.empty:
        from .errors import RunsError

        raise RunsError(f"{runs_dir}: no completed search trial to {verb} (reference runs "
                        f"and ensembles are never {done}){unregistered_note(board)}")
    return best


def search_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that are one searched model of a registered family: what ``finalize`` may
    retrain and ``export`` may copy. Never an ensemble row, nor a reference run (the
    classroom models: their validation images share patients with their training images,
    so their validation objective is not comparable with a search trial's)."""
    if frame.empty:
        return frame
    from .registry import FAMILIES

    ensemble = frame["ensemble"].astype(bool) if "ensemble" in frame else False
    reference = frame["reference"].astype(bool) if "reference" in frame else False
    known = frame["family"].map(lambda f: isinstance(f, str) and f in FAMILIES)
    return frame[~ensemble & ~reference & known.astype(bool)]


def unregistered_note(frame: pd.DataFrame) -> str:
    """"" or what ``search_trials`` left out for their family: completed trials of a family
    this process has not registered (one added by a module outside the package)."""
    if frame.empty or "family" not in frame:
        return ""
    from .registry import FAMILIES

    done = frame[frame["status"] == "completed"] if "status" in frame else frame
    derived = pd.Series(False, index=done.index)
    for column in ("ensemble", "reference"):
        if column in done:
            derived |= done[column].fillna(False).astype(bool)
    names = sorted({f for f in done.loc[~derived, "family"]
                    if isinstance(f, str) and f not in FAMILIES})
    if not names:
        return ""
    return (f"; completed trials of {', '.join(names)} are left out: no such family is "
            "registered here (import the module that registers it)")


def data_hash_aliases(records: list[dict[str, Any]]) -> dict[str, str]:
    """Data hashes of records written before data hashes covered file contents (file
    names and sizes), each mapped to the content hash of the newer records whose data it
    names (``same_data`` on their recorded hashes), where exactly one does: projects of
    both ages on the same files are not "mixed"."""
    newer: dict[str, dict[str, Any]] = {}  # content hash -> a newer record's data
    for r in records:
        data = r.get("data")
        if (isinstance(data, dict) and isinstance(data.get("data_list_hash"), str)
                and data.get("data_hash") != data["data_list_hash"]):
            newer.setdefault(str(data["data_hash"]), data)
    older = {h for r in records if isinstance(r.get("data"), dict)
             for h in [r["data"].get("data_hash")] if isinstance(h, str) and h not in newer}
    if not newer or not older:
        return {}
    from .data.dataset import same_data

    out = {}
    for h in older:
        named = [content for content, data in newer.items() if same_data(h, data)]
        if len(named) == 1:
            out[h] = named[0]
    return out


def _row(r: dict[str, Any], aliases: dict[str, str] | None = None) -> dict[str, Any]:
    val = r.get("val") or {}
    test = r.get("test") or {}
    ci = r.get("test_ci") or {}
    seconds = r.get("seconds") or {}
    row: dict[str, Any] = {
        "project": r.get("project"),
        "family": r.get("family"),
        "policy": r.get("policy"),
        "trial_id": r.get("trial_id"),
        "status": r.get("status"),
        "tuner": r.get("tuner"),
        "reference": bool(r.get("reference", False)),
        "ensemble": r.get("kind") == "ensemble",
        "pretrained": bool((r.get("hyperparameters") or {}).get("model.weights")),
        "recall_target": _num(r.get("recall_target")),
        "val_objective": _num(val.get("objective")),
        "val_prec_at_recall": _num(val.get("prec_at_recall")),
        "val_auc": _num(val.get("auc")),
        "threshold": _num(r.get("threshold")),
    }
    for m in TEST_METRICS:
        row[f"test_{m}"] = _num(recorded_metric(test, m))
        if m in CI_METRICS:
            lo, hi = (ci.get(m) or [math.nan, math.nan])[:2]
            row[f"test_{m}_lo"], row[f"test_{m}_hi"] = _num(lo), _num(hi)
    # what each row's intervals resample: patients (since the fourteenth session) or images
    row["test_ci_resampled"] = (r.get("test_ci_resampled") or "images") if ci else None
    row.update(
        params=r.get("params"),
        epochs_run=r.get("epochs_run"),
        best_epoch=r.get("best_epoch"),
        seconds=_num(seconds.get("trial")),
        image_size=(r.get("data") or {}).get("image_size"),
        validation_split=_validation_split(r.get("data"), aliases),
        split_hash=(r.get("data") or {}).get("split_hash"),
        message=r.get("message"),
        trial_dir=str(Path(r["_path"]).parent),
    )
    for k, v in (r.get("hyperparameters") or {}).items():
        if not k.startswith("tuner/"):
            row[f"hp:{k}"] = v
    return row


def _validation_split(data: Any, aliases: dict[str, str] | None = None) -> str | None:
    """Which validation split a record was scored on: data, split seed, fraction. An
    older record's data hash is shown as the content hash it aliases (``data_hash_aliases``)."""
    if not isinstance(data, dict) or "split_seed" not in data:
        return None
    data_hash = data.get("data_hash")
    if isinstance(data_hash, str):
        data_hash = (aliases or {}).get(data_hash, data_hash)
    return (f"data {str(data_hash or '?')[:8]}, seed {data['split_seed']}, "
            f"val fraction {data.get('val_fraction') or 0.2:g}")


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def row_kinds(frame: pd.DataFrame) -> str:
    """"5 trials, 2 ensembles, 1 reference run": ensembles and reference runs are rows,
    not trials (the terminal's and summary.md's titles)."""
    kinds = [flag(row, "reference") and "ref" or flag(row, "ensemble") and "ens" or "trial"
             for _, row in frame.iterrows()]
    counts = [(kinds.count(k), one, many) for k, one, many in (
        ("trial", "trial", "trials"), ("ens", "ensemble", "ensembles"),
        ("ref", "reference run", "reference runs"))]
    return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts
                     if n or one == "trial")
