"""Recompute the test intervals of records written by an older autopneumo, from their
saved ``predictions.csv``: the patient bootstrap (fourteenth session) and the loss and
precision-at-recall intervals (fifteenth), the negative predictive value's (sixteenth).
Nothing is retrained, the point estimates and the threshold stay as recorded (a record
whose saved predictions no longer give them is refused; a metric the record lacks, such
as ``npv``, is added from the same predictions), and the record gains
``test_ci_recomputed`` (when).

Use it before regenerating a committed report from old runs, so the report's intervals
are the ones a new search would record.

usage: python benchmarks/reinterval.py runs/study3 [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def reinterval(path: Path, n_boot: int = 1000) -> dict | None:
    """The record at ``path`` with recomputed intervals; None if it has no test scores."""
    from autopneumo.evaluation import patients_in, read_predictions
    from autopneumo.objective import binary_metrics, bootstrap_intervals, resampled_over

    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("status") != "completed" or not (path.parent / "predictions.csv").exists():
        return None
    test = read_predictions(path.parent).get("test")
    if test is None:
        return None
    threshold, target = float(record["threshold"]), float(record["recall_target"])
    again = binary_metrics(test["label"], test["probability"], threshold, target)
    for key in ("precision", "recall", "auc"):
        recorded = record["test"][key]
        if not (math.isclose(again[key], recorded, abs_tol=1e-6)
                or (math.isnan(again[key]) and math.isnan(recorded))):
            raise SystemExit(f"{path}: its predictions give test {key} {again[key]:.6f}, the "
                             f"record says {recorded:.6f}; not rewritten")
    record["test"] = {**again, **record["test"]}  # what the record has stays as it is
    groups = patients_in(test)  # the scan's own ids, or (older files) from the names
    ci = bootstrap_intervals(test["label"], test["probability"], threshold, n_boot=n_boot,
                             groups=groups, target=target)
    record["test_ci"] = {k: list(v) for k, v in ci.items()}
    record["test_ci_resampled"] = resampled_over(groups)
    record["test_ci_recomputed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="print, write nothing")
    args = parser.parse_args()
    from autopneumo.atomic import atomic_write_json

    paths = sorted(args.runs_dir.rglob("record.json")) + sorted(args.runs_dir.rglob("final.json"))
    changed = 0
    for path in paths:
        record = reinterval(path)
        if record is None:
            continue
        lo, hi = record["test_ci"]["precision"]
        print(f"{path.parent.relative_to(args.runs_dir)}: precision [{lo:.3f}, {hi:.3f}] "
              f"over {record['test_ci_resampled']}")
        if not args.dry_run:
            atomic_write_json(path, record)
        changed += 1
    print(f"{changed} record(s) {'would be ' if args.dry_run else ''}rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
