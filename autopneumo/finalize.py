"""``finalize``: retrain the top configurations with several seeds, so a ranking is not an
accident of one seed. Results go to ``<runs>/_finalize/`` (not read as search trials).

Each seed's result is kept as it finishes, and a rerun reuses every seed already done
for the same trial, values and data: a finalize stopped midway (Ctrl-C, a lost machine)
resumes where it stopped, and ``--seeds 5`` after ``--seeds 3`` trains two more;
``--seeds 1`` after ``--seeds 3`` trains nothing and still summarises all three (finished
work is never dropped from the summary). The folders are named by rank, and a trial's
seeds under a rank an earlier run gave it are reused where they lie. A retraining that
diverges is recorded as failed; the others go on, and finalize raises at the end.

With two seeds or more, the seeds' mean probability is one more model: an ensemble row
(``<runs>/_ensemble/rank1_<project>_trial<id>_seeds3``, policy ``3 seeds of <id>``),
thresholded on validation like every row; its test metrics are in ``summary.csv`` as
``ensemble_*``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .atomic import atomic_write_text
from .errors import OptionError, SearchError
from .leaderboard import best_search_trials
from .objective import recorded_metric
from .paths import require_runs_dir

FINAL_FILE = "final.json"
METRICS = ("precision", "recall", "accuracy", "auc", "specificity", "npv", "f1", "prec_at_recall",
           "loss")


def finalize(runs_dir: str | Path, top: int = 3, seeds: int = 3,
             combine: str = "probability", data: str | Path | None = None) -> pd.DataFrame:
    """Mean and standard deviation of every test metric over ``seeds`` retrainings; with 2
    seeds or more, their ensemble (scores averaged by ``combine``, see ``ensemble``).

    Each trial is retrained on the data folder its record names, or on ``data`` (a moved
    copy: it must hold the same files, checked by the data hash)."""
    from .ensemble import check_combine
    from .spaces import positive_int

    for option, value in (("--top", top), ("--seeds", seeds)):
        if not positive_int(value):  # 2.0 or "2" from Python: not a TypeError in pandas
            raise OptionError(f"{option} must be a positive integer, got {value!r}")
    check_combine(combine)
    runs_dir = require_runs_dir(runs_dir)
    best = best_search_trials(runs_dir, top, "finalize", "retrained")
    from .locking import project_lock

    with project_lock(runs_dir / "_finalize", what="finalize"):  # one retrains at a time
        return _finalize(runs_dir, best, seeds, combine, data)


def _finalize(runs_dir: Path, best: pd.DataFrame, seeds: int, combine: str,
              data: str | Path | None) -> pd.DataFrame:
    from .data import load_dataset
    from .data.dataset import recorded_dataset
    from .evaluation import Evaluator
    from .trials import TrainingFailed, check_builds, check_recorded, train_and_evaluate

    rows, failed = [], []
    folders: dict[int, tuple[str, list[Path], str]] = {}  # rank -> (trial id, seeds, name)
    records = []
    for _, row in best.iterrows():  # every record checked before anything trains
        path = Path(row["trial_dir"]) / "record.json"
        record = json.loads(path.read_text())
        values = check_recorded(record, path, _searched_space(path))
        check_builds(record, values, path)
        records.append((record, values))
    for rank, ((_, row), (record, values)) in enumerate(
            zip(best.iterrows(), records, strict=True), start=1):
        dataset = recorded_dataset(load_dataset, record, Path(row["trial_dir"]), data)
        out = runs_dir / "_finalize" / f"rank{rank}_{row['project']}_trial{row['trial_id']}"
        # an earlier run may have ranked this trial otherwise (a better trial came since):
        # its seeds there are this trial's all the same, and are reused where they lie
        places = [out, *_other_ranks(runs_dir, row["project"], row["trial_id"], out)]
        done = {}
        for seed in range(seeds):
            found = _seed_done(places, seed, row["trial_dir"], values, dataset.manifest)
            if found is not None:
                rows.append(_row(rank, row, seed, found[1], reused=True))
                done[seed] = found[0]
                continue
            evaluator = Evaluator(dataset, {"project": row["project"], "family": row["family"],
                                            "policy": row["policy"], "tuner": "finalize"},
                                  record["recall_target"], command="autopneumo finalize")
            try:
                final = train_and_evaluate(
                    row["family"], row["policy"], values, dataset, evaluator,
                    out / f"seed{seed}", f"{row['trial_id']}-seed{seed}",
                    record["recall_target"], seed,
                    extra={"finalize_of": row["trial_dir"], "seed": seed}, filename=FINAL_FILE)
            except TrainingFailed as exc:  # the other seeds and ranks go on
                failed.append(f"trial {row['trial_id']} seed {seed} ({exc})")
                continue
            rows.append(_row(rank, row, seed, final, reused=False))
            done[seed] = out / f"seed{seed}"
        # seeds beyond --seeds that an earlier run retrained stay in the summary
        for seed, folder, final in _later_seeds(places, seeds, row["trial_dir"], values,
                                                dataset.manifest):
            rows.append(_row(rank, row, seed, final, reused=True))
            done[seed] = folder
        folders[rank] = (str(row["trial_id"]), [done[seed] for seed in sorted(done)], out.name)
    summary = _summarise(runs_dir, rows, folders, combine)
    if failed:
        raise SearchError(
            f"{len(failed)} retraining(s) diverged: {'; '.join(failed)}. The seeds that "
            f"finished are summarised in {runs_dir / '_finalize' / 'summary.csv'}",
            summary=summary)
    return summary


def _summarise(runs_dir: Path, rows: list[dict], folders: dict, combine: str) -> pd.DataFrame:
    columns = ["rank", "project", "trial_id", "seed", *METRICS, "val_prec_at_recall", "reused"]
    runs = pd.DataFrame(rows, columns=columns)
    # a metric undefined in one seed (NPV where it called every test image pneumonia) is
    # undefined over the seeds: not the mean of the others under "over N seeds"
    summary = runs.groupby(["rank", "project", "trial_id"]).agg(
        **{f"{m}_{stat}": (m, how) for m in (*METRICS, "val_prec_at_recall")
           for stat, how in (("mean", _mean), ("std", _std))}, seeds=("seed", "count"),
        reused=("reused", "sum")).reset_index()
    summary = summary.merge(_seed_ensembles(runs_dir, folders, combine), on="rank", how="left")
    atomic_write_text(runs_dir / "_finalize" / "runs.csv", runs.to_csv(index=False))
    atomic_write_text(runs_dir / "_finalize" / "summary.csv", summary.to_csv(index=False))
    return summary


def _searched_space(record_path: Path) -> list | None:
    """The hyperparameters the trial's search declared (keras-tuner's configs, in its
    project's oracle.json); None where that does not read."""
    try:
        oracle = json.loads((record_path.parent.parent / "oracle.json").read_text())
        space = oracle["hyperparameters"]["space"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return space if isinstance(space, list) else None


def _mean(values: pd.Series) -> float:
    return values.mean(skipna=False)


def _std(values: pd.Series) -> float:
    return values.std(skipna=False)  # ddof 1


def _seed_ensembles(runs_dir: Path, folders: dict[int, tuple[str, list[Path], str]],
                    combine: str) -> pd.DataFrame:
    """Per rank with two seeds or more: the seeds' ensemble row and its test metrics. The
    same seeds' row under the trial's earlier rank is removed: it is this one, renamed."""
    import shutil

    from .ensemble import seed_ensemble

    rows = []
    for rank, (trial_id, dirs, name) in folders.items():
        entry: dict = {"rank": rank}
        if len(dirs) >= 2:
            record = seed_ensemble(runs_dir, dirs, f"{name}_seeds{len(dirs)}",
                                   f"{len(dirs)} seeds of {trial_id}",
                                   command="autopneumo finalize", combine=combine)
            tail = record["trial_id"][len(f"rank{rank}"):]  # _<project>_trial<id>_seeds<N>...
            for old in _ranked(runs_dir / "_ensemble", tail):
                if old.name != record["trial_id"]:
                    shutil.rmtree(old, ignore_errors=True)
            entry["ensemble"] = record["trial_id"]
            entry |= {f"ensemble_{m}": recorded_metric(record["test"], m) for m in METRICS}
        rows.append(entry)
    return pd.DataFrame(rows, columns=["rank", "ensemble", *(f"ensemble_{m}" for m in METRICS)])


def _row(rank: int, row, seed: int, final: dict, reused: bool) -> dict:
    return {"rank": rank, "project": row["project"], "trial_id": row["trial_id"],
            "seed": seed, **{m: recorded_metric(final["test"], m) for m in METRICS},
            "val_prec_at_recall": final["val"].get("prec_at_recall"), "reused": reused}


def _other_ranks(runs_dir: Path, project: str, trial_id, out: Path) -> list[Path]:
    """This trial's seed folders under the other ranks an earlier run gave it."""
    return [p for p in _ranked(runs_dir / "_finalize", f"_{project}_trial{trial_id}")
            if p != out]


def _ranked(folder: Path, tail: str) -> list[Path]:
    """The folders ``rank<N><tail>`` in ``folder``, whatever N (another project whose name
    merely ends alike, ``rank1_x<tail>``, is not one)."""
    return sorted(p for p in folder.glob("rank*") if p.name.endswith(tail)
                  and p.name[len("rank"):-len(tail)].isdigit() and p.is_dir())


def _seed_done(places: list[Path], seed: int, trial_dir: str, values: dict,
               manifest: dict) -> tuple[Path, dict] | None:
    """The first of ``places`` holding this seed's finished retraining of the trial."""
    for place in places:
        final = _done_before(place / f"seed{seed}" / FINAL_FILE, trial_dir, seed, values,
                             manifest)
        if final is not None:
            return place / f"seed{seed}", final
    return None


def _later_seeds(places: list[Path], seeds: int, trial_dir: str, values: dict,
                 manifest: dict) -> list[tuple[int, Path, dict]]:
    """Finished retrainings of this trial with seed numbers >= ``seeds`` (from an earlier
    run with more seeds), in seed order."""
    numbers = {int(folder.name[len("seed"):]) for place in places
               for folder in place.glob("seed*") if folder.name[len("seed"):].isdigit()}
    found = []
    for number in sorted(n for n in numbers if n >= seeds):
        hit = _seed_done(places, number, trial_dir, values, manifest)
        if hit is not None:
            found.append((number, *hit))
    return found


def _done_before(path: Path, trial_dir: str, seed: int, values: dict,
                 manifest: dict) -> dict | None:
    """The seed's earlier retraining of this trial, if it finished with the same values
    on the same data (``manifest``'s); None otherwise (it is trained again and overwritten)."""
    from .data.dataset import same_data

    try:
        final = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None  # damaged: retrained (and overwritten)
    same = (isinstance(final, dict) and final.get("status") == "completed"
            and isinstance(final.get("test"), dict) and isinstance(final.get("val"), dict)
            and _same_trial(final.get("finalize_of"), trial_dir) and final.get("seed") == seed
            and final.get("hyperparameters") == values
            and same_data((final.get("data") or {}).get("data_hash"), manifest))
    return final if same else None


def _same_trial(recorded, trial_dir: str | Path) -> bool:
    """The same trial, however the runs folder was spelled (relative, absolute, moved or
    copied): its project folder and trial folder."""
    return isinstance(recorded, str) and Path(recorded).parts[-2:] == Path(trial_dir).parts[-2:]
