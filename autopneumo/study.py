"""``study``: the whole families x policies matrix within one time budget, resumable.

The budget is split fairly: each project in turn gets the remaining time divided by the
number of projects still to run, so time one project leaves unused goes to the next, and
an overrun (at most the epoch in which its deadline passes) is taken from the rest.
Time spent is kept in ``<runs>/study.json`` so a rerun continues with what is left.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .errors import OptionError
from .registry import FAMILIES, POLICIES
from .tuning import SearchConfig, search

STUDY_FILE = "study.json"


def expand(names: list[str] | str, registry) -> list[str]:
    """``all``, a comma-separated list, or several names -> registered names (validated)."""
    items = names.split(",") if isinstance(names, str) else [n for x in names for n in x.split(",")]
    items = [n.strip() for n in items if n.strip()]
    if items == ["all"]:
        return registry.names()
    for name in items:
        registry.get(name)  # raises with a "did you mean"
    return list(dict.fromkeys(items))


def run_study(families: list[str] | str, policies: list[str] | str, budget: float,
              base: SearchConfig, progress_factory=None) -> dict[str, Any]:
    """Search every family x policy within ``budget`` seconds in total (over all reruns)."""
    if budget <= 0:
        raise OptionError(f"--budget must be positive, got {budget}")
    pairs = [(f, p) for f in expand(families, FAMILIES) for p in expand(policies, POLICIES)]
    runs_dir = Path(base.runs_dir)
    path = runs_dir / STUDY_FILE
    state = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    spent: dict[str, float] = state.get("spent", {})
    state.update(budget=budget, pairs=[f"{f}__{p}" for f, p in pairs], spent=spent)
    for i, (family, policy) in enumerate(pairs):
        project = f"{family}__{policy}"
        remaining = budget - sum(spent.values())
        share = remaining / (len(pairs) - i)
        if share <= 1.0:
            state.setdefault("skipped", [])
            if project not in state["skipped"]:
                state["skipped"].append(project)
            continue
        config = dataclasses.replace(base, family=family, policy=policy, time_budget=share)
        start = time.time()
        try:
            if progress_factory is None:
                search(config)
            else:
                with progress_factory() as progress:
                    search(config, progress=progress)
        finally:
            spent[project] = spent.get(project, 0.0) + time.time() - start
            atomic_write_json(path, state)
    state["total_spent"] = sum(spent.values())
    atomic_write_json(path, state)
    return state
