"""``study``: the whole families x policies matrix within one time budget, resumable.

The budget is split fairly: each project in turn gets the time its predecessors left,
divided by the number of projects still to run, less what it spent in an earlier run
(``fair_share``), so time one project leaves unused goes to the next, an overrun (at most
the epoch in which its deadline passes) is taken from the rest, and a project resumed
after a Ctrl-C gets the rest of its share, not a new one. Time spent is kept in
``<runs>/study.json`` (written every 15 s while a project runs) so a rerun continues with
what is left, with
each project's outcome (``outcome``: trials, completed, the most epochs hyperband gave a
trial). ``short_shares`` says which projects' shares were too short to compare: on a
2-core CPU a 90-minute study of 4 pairs left every hyperband trial at its first 2 epochs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .errors import OptionError, RunsError, SearchError, UserError
from .periodic import Periodic
from .progress import OPEN_ENDED_TRIALS
from .registry import FAMILIES, POLICIES
from .spaces import is_number
from .tuning import DEADLINE_LOG, SearchConfig, epoch_cap, resolve_spaces, search

STUDY_FILE = "study.json"
STUDY_LOCK = "study.lock"  # one study at a time per runs folder: each keeps the accounting


def expand(names: list[str] | str, registry) -> list[str]:
    """``all``, a comma-separated list, or several names -> registered names (validated)."""
    items = names.split(",") if isinstance(names, str) else [n for x in names for n in x.split(",")]
    items = [n.strip() for n in items if n.strip()]
    if items == ["all"]:
        return registry.names()
    for name in items:
        registry.get(name)  # raises with a "did you mean"
    return list(dict.fromkeys(items))


# what every project of a study shares; a rerun must give the same (the budget and the
# pairs may change: that is how a study is extended)
STUDY_SETTINGS = ("tuner", "epochs", "image_size", "channels", "recall_target", "val_fraction",
                  "seed")


def fair_share(budget: float, spent: list[float], i: int) -> float:
    """Seconds pair ``i`` may still use: the budget left after the pairs before it, split
    evenly among it and the pairs after it, less what pair ``i`` already spent. In one
    uninterrupted run that is the time left over the pairs still to run; after a Ctrl-C
    or a raised --budget, a pair does not get a fresh share on top of what it had."""
    allowance = (budget - sum(spent[:i])) / (len(spent) - i)
    return allowance - spent[i]


class _Ticker(Periodic):
    """While a pair's search runs, ``account`` (its time spent so far into study.json) is
    called every ``interval`` seconds: a study killed without warning (kill -9, out of
    memory, a preempted job restarted) loses at most that much of its accounting."""

    interval = 5.0  # a write of a small file: nothing next to a trial

    def __init__(self, account):
        super().__init__(type(self).interval, "autopneumo-study-ticker")
        self.account = account
        self.ticks = 0

    def tick(self) -> None:
        self.account()
        self.ticks += 1


def _names(option: str, names: Any) -> str | list[str]:
    """``names`` as ``expand`` takes them: a string, or any collection of names (a list, a
    NumPy array such as a leaderboard's ``frame["family"].unique()``, a generator) as a
    list; anything else is named here, not met as a TypeError or AttributeError."""
    if isinstance(names, str):
        return names
    if isinstance(names, Iterable) and not isinstance(names, bytes):
        names = list(names)  # read once: a generator is used up by the check
        if all(isinstance(n, str) for n in names):
            return names
    raise OptionError(f"{option} must be a name, 'all' or a list of names, got {names!r}")


def _check_types(budget: Any, base: Any) -> None:
    """From Python nothing parses these as the CLI does: a "2h" budget or a None base is
    named here, not met as a TypeError or AttributeError."""
    if not is_number(budget):
        raise OptionError(f"--budget must be a number of seconds (parse_duration reads '2h'), "
                          f"got {budget!r}")
    if not isinstance(base, SearchConfig):
        raise OptionError(f"run_study takes a SearchConfig as base, got {type(base).__name__}")


STUDY_MAX_TRIALS = OPEN_ENDED_TRIALS  # never reached in a budget: the share ends each pair


def run_study(families: list[str] | str, policies: list[str] | str, budget: float,
              base: SearchConfig, progress_factory=None) -> dict[str, Any]:
    """Search every family x policy within ``budget`` seconds in total (over all reruns).

    ``base`` holds the settings every pair shares (its ``family`` and ``policy`` are
    replaced); without a ``max_trials`` the budget alone ends each pair, as in the CLI."""
    families, policies = _names("--families", families), _names("--augment", policies)
    _check_types(budget, base)
    if not budget > 0:  # NaN too: it was written to study.json before any pair refused it
        raise OptionError(f"--budget must be positive, got {budget}")
    chosen = {"--families": expand(families, FAMILIES), "--augment": expand(policies, POLICIES)}
    for option, names in chosen.items():
        if not names:
            raise OptionError(f"{option} selects nothing: give 'all' or names")
    pairs = [(f, p) for f in chosen["--families"] for p in chosen["--augment"]]
    if base.max_trials is None:
        base = dataclasses.replace(base, max_trials=STUDY_MAX_TRIALS)
    base.validate()
    from .locking import project_lock

    with project_lock(Path(base.runs_dir), STUDY_LOCK, "study"):  # before study.json is read
        return _run_study(pairs, budget, base, progress_factory)


def _run_study(pairs: list[tuple[str, str]], budget: float, base: SearchConfig,
               progress_factory) -> dict[str, Any]:
    runs_dir = Path(base.runs_dir)
    path = runs_dir / STUDY_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        _check_state(state)
    except RecursionError:
        raise RunsError(f"{path}: unreadable study file (nested too deeply)") from None
    except (OSError, ValueError) as exc:
        raise RunsError(f"{path}: unreadable study file ({exc})") from exc
    settings = {k: getattr(base, k) for k in STUDY_SETTINGS}
    changed = [k for k in STUDY_SETTINGS if k in state.get("settings", {})
               and state["settings"][k] != settings[k]]
    if changed and _any_trial(runs_dir, state.get("spent", {})):  # before anything is written
        raise RunsError(f"{runs_dir}: this study was started with other settings "
                        f"({', '.join(changed)}); use the same options or another --runs-dir")
    spent: dict[str, float] = state.get("spent", {})
    state.update(budget=budget, pairs=[f"{f}__{p}" for f, p in pairs], spent=spent,
                 settings=settings)
    names = [f"{f}__{p}" for f, p in pairs]
    elsewhere = sum(v for k, v in spent.items() if k not in names)  # pairs no longer studied
    for i, (family, policy) in enumerate(pairs):
        project = names[i]
        share = fair_share(budget - elsewhere, [spent.get(n, 0.0) for n in names], i)
        share = min(share, budget - sum(spent.values()))
        config = dataclasses.replace(base, family=family, policy=policy, time_budget=share)
        if share <= 1.0:
            state.setdefault("skipped", [])
            if project not in spent and project not in state["skipped"]:  # never ran
                state["skipped"].append(project)
            elif project not in state.get("outcome", {}):  # stopped past its deadline
                from .leaderboard import read_records

                state.setdefault("outcome", {})[project] = outcome(
                    read_records(runs_dir / project), epoch_cap(resolve_spaces(config)),
                    config.tuner)
            continue
        if project in state.get("skipped", []):  # it runs now
            state["skipped"].remove(project)
        cap = epoch_cap(resolve_spaces(config))
        before, start = spent.get(project, 0.0), time.time()

        def account(before=before, start=start, project=project) -> None:
            spent[project] = before + time.time() - start
            atomic_write_json(path, state)

        ticker = _Ticker(account)
        ran_before, stamps = project in spent, _record_stamps(runs_dir / project)
        state.get("outcome", {}).pop(project, None)  # this run's, once it ends
        account()  # the pair is in study.json from its start
        try:
            with ticker:  # a kill -9 loses at most one tick of the accounting
                try:
                    if progress_factory is None:
                        records = search(config)
                    else:
                        with progress_factory() as progress:
                            records = search(config, progress=progress)
                except SearchError as exc:  # every trial of its share failed: the next pair
                    if exc.records is None:
                        raise
                    records = exc.records
            state.setdefault("outcome", {})[project] = outcome(records, cap, config.tuner)
        except UserError:
            if _record_stamps(runs_dir / project) != stamps:  # raised after a trial ran
                account()
            elif ran_before:  # the project refused to start (other settings): nothing ran
                spent[project] = before
            else:  # not charged, and not "ran": a later rerun may still call it skipped
                spent.pop(project, None)
            if spent:
                atomic_write_json(path, state)
            else:  # nothing of the study ever ran (a mistyped --data): nothing pinned
                path.unlink(missing_ok=True)
            raise
        except BaseException:
            account()
            raise
        account()
    state["total_spent"] = sum(spent.values())
    atomic_write_json(path, state)
    return state


def _check_state(state: Any) -> None:
    """ValueError where a study file is valid JSON of another shape than ``_run_study``
    writes (an object whose ``spent`` maps pairs to seconds, ``skipped`` lists pairs,
    ``settings`` and ``outcome`` are objects)."""
    if not isinstance(state, dict):
        raise ValueError(f"not a JSON object but {type(state).__name__}")
    for key, kind in (("spent", dict), ("settings", dict), ("outcome", dict),
                      ("skipped", list)):
        if not isinstance(state.get(key, kind()), kind):
            raise ValueError(f"{key!r} is not a JSON {'object' if kind is dict else 'list'}")
    for project, seconds in state.get("spent", {}).items():
        if not (is_number(seconds) and 0 <= seconds < math.inf):
            raise ValueError(f"spent[{project!r}] is not a number of seconds: {seconds!r:.40}")
    if not all(isinstance(p, str) for p in state.get("skipped", [])):
        raise ValueError("'skipped' is not a list of pair names")
    for project, out in state.get("outcome", {}).items():
        if not (isinstance(out, dict) and all(is_number(out.get(k)) for k in
                                              ("completed", "most_epochs", "cap"))):
            raise ValueError(f"outcome[{project!r}] is not a pair's outcome")


def _any_trial(runs_dir: Path, projects: Any) -> bool:
    """Whether a trial of the study's projects started: until then (a first run stopped
    while its first pair loaded the data) the settings bind nothing, as a project's own
    pinned settings do not (a corrected rerun at another --image-size goes on)."""
    return any(any((runs_dir / project).glob("trial_*")) for project in projects)


def _record_stamps(project_dir: Path) -> set[tuple[str, int, int]]:
    """Each trial record below ``project_dir`` as (path, size, mtime): what a search that
    ran a trial changes, and one refused at its start does not."""
    from .evaluation import RECORD_FILE

    stamps = set()
    for path in project_dir.rglob(RECORD_FILE):
        try:
            st = path.stat()
        except OSError:
            continue
        stamps.add((str(path), st.st_size, st.st_mtime_ns))
    return stamps


def outcome(records: list[dict[str, Any]], cap: int, tuner: str) -> dict[str, Any]:
    """One project's result: trials, completed ones, and the most epochs any completed
    trial reached: the epochs it was given (hyperband's rung; the cap for the other
    tuners), or fewer where the budget's deadline ended its fit (``cut_by_deadline``
    counts those)."""
    done = [r for r in records if r.get("status") == "completed"]
    return {"trials": len(records), "completed": len(done), "tuner": tuner, "cap": cap,
            "most_epochs": max((_epochs_reached(r, cap) for r in done), default=0),
            "cut_by_deadline": sum(map(_cut_by_deadline, done)),
            "interrupted": sum(r.get("status") == "interrupted" for r in records)}


def _cut_by_deadline(record: dict[str, Any]) -> bool:
    return bool((record.get("history") or {}).get(DEADLINE_LOG))


def _epochs_reached(record: dict[str, Any], cap: int) -> int:
    from .evaluation import start_epoch

    hps = record.get("hyperparameters") or {}
    given = int(hps.get("tuner/epochs", cap))
    if not _cut_by_deadline(record):
        return given  # ran to its rung, or early stopping judged it done
    # a hyperband continuation starts where its parent's weights were (start_epoch)
    return min(given, start_epoch(record) + int(record.get("epochs_run") or 0))


def short_shares(state: dict[str, Any]) -> list[str]:
    """One line per project whose share of the budget was too short to compare it: no
    completed trial, or (hyperband) none promoted to the epoch cap; skipped projects too."""
    lines = []
    for project, out in state.get("outcome", {}).items():
        spent = f"in its {_duration(state.get('spent', {}).get(project, 0.0))}"
        if out["completed"] == 0:
            lines.append(f"{project}: no trial completed {spent}")
        elif out["most_epochs"] < out["cap"]:
            why = "hyperband's early rounds" if out["tuner"] == "hyperband" else ""
            if out.get("cut_by_deadline"):
                why += (" and " if why else "") + "the budget's end"
            lines.append(f"{project}: no trial got past {out['most_epochs']} of {out['cap']} "
                         f"epochs ({why}) {spent}")
        if out.get("interrupted"):
            lines.append(f"{project}: {out['interrupted']} trial(s) interrupted and not run "
                         "again (its share was spent)")
    lines += [f"{project}: skipped, no budget left" for project in state.get("skipped", [])]
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 59.5 else f"{seconds / 60:.0f} min"


def overrun(state: dict[str, Any]) -> float:
    """Seconds spent past the budget (a running trial finishes its epoch first)."""
    return max(0.0, float(state.get("total_spent", 0.0)) - float(state.get("budget", 0.0)))
