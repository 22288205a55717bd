"""Ensemble every run of a group of saved runs, with no selection among them.

Each group is one or more glob patterns (``|`` between them) of run folders that hold a
``predictions.csv`` (ablation runs, trials, retrainings). The members' probabilities (or
log-odds, ``--combine logit``) are averaged over the validation and test images they all
scored; the threshold is chosen on the ensemble's validation scores with the trials' rule
(best precision at the recall target) and the test split is scored once. Each member's
own test precision and AUC are listed under the group.

Exploratory, like the ablation: it reads test labels to report, never to choose.

usage: python benchmarks/ensemble_runs.py "runs/ablation20/runs/*|runs/ablation21/runs/*" ...
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def aligned(preds: list[dict], split: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """The labels and each member's scores on the images every member scored."""
    files = sorted(set.intersection(*[set(p[split]["file"]) for p in preds]))
    labels, scores = None, []
    for p in preds:
        index = {f: i for i, f in enumerate(p[split]["file"])}
        order = [index[f] for f in files]
        y = p[split]["label"][order]
        if labels is not None and not (y == labels).all():
            raise SystemExit(f"the members disagree on the {split} labels")
        labels = y
        scores.append(p[split]["probability"][order])
    return labels, scores


def score(preds: list[dict], combine: str, target: float) -> tuple[int, dict]:
    from autopneumo.ensemble import combine_scores
    from autopneumo.objective import binary_metrics, precision_at_recall

    y_val, s_val = aligned(preds, "val")
    y_test, s_test = aligned(preds, "test")
    point = precision_at_recall(y_val, combine_scores(s_val, combine), target)
    return len(y_val), binary_metrics(y_test, combine_scores(s_test, combine),
                                      point.threshold, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", help="glob patterns of run folders, | between")
    parser.add_argument("--combine", default="probability,logit")
    parser.add_argument("--recall-target", type=float, default=0.95)
    args = parser.parse_args()
    from autopneumo.evaluation import read_predictions

    for group in args.groups:
        dirs = sorted({Path(d) for pattern in group.split("|") for d in glob.glob(pattern)
                       if (Path(d) / "predictions.csv").is_file()})
        if not dirs:
            raise SystemExit(f"{group}: no run folder with a predictions.csv")
        preds = [read_predictions(d) for d in dirs]
        print(f"{group}: {len(dirs)} runs")
        for combine in args.combine.split(","):
            n_val, m = score(preds, combine, args.recall_target)
            print(f"  ensemble ({combine} mean, {n_val} validation images): precision "
                  f"{m['precision']:.3f} recall {m['recall']:.3f} AUC {m['auc']:.3f} "
                  f"accuracy {m['accuracy']:.3f} specificity {m['specificity']:.3f}")
        for d, p in zip(dirs, preds, strict=True):
            _, m = score([p], "probability", args.recall_target)
            print(f"    {d}: precision {m['precision']:.3f} AUC {m['auc']:.3f}")


if __name__ == "__main__":
    main()
