"""Ensemble every run of a group of saved runs, with no selection among them.

Each group is one or more glob patterns (``|`` between them) of run folders that hold a
``predictions.csv`` (ablation runs, trials, retrainings), all scored on the same
validation and test files (``autopneumo ensemble``'s check). The members' probabilities
(or log-odds, ``--combine logit``) are averaged; the threshold is chosen on the
ensemble's validation scores with the trials' rule (best precision at the recall target)
and the test split is scored once. Each member's
own test precision and AUC are listed under the group.

Exploratory, like the ablation: it reads test labels to report, never to choose.

usage: python benchmarks/ensemble_runs.py "runs/ablation20/runs/*|runs/ablation21/runs/*" ...
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def score(saved: list[dict], files: dict, labels: dict, combine: str,
          target: float) -> dict:
    from autopneumo.ensemble import _saved_scores, combine_scores
    from autopneumo.objective import binary_metrics, precision_at_recall

    scores = _saved_scores(saved, files)
    mean = {s: combine_scores([m[s] for m in scores], combine) for s in ("val", "test")}
    point = precision_at_recall(labels["val"], mean["val"], target)
    return binary_metrics(labels["test"], mean["test"], point.threshold, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", help="glob patterns of run folders, | between")
    parser.add_argument("--combine", default="probability,logit")
    parser.add_argument("--recall-target", type=float, default=0.95)
    args = parser.parse_args()
    from autopneumo.ensemble import _common_split, _read_member_predictions
    from autopneumo.errors import RunsError

    for group in args.groups:
        dirs = sorted({Path(d) for pattern in group.split("|") for d in glob.glob(pattern)
                       if (Path(d) / "predictions.csv").is_file()})
        if not dirs:
            raise SystemExit(f"{group}: no run folder with a predictions.csv")
        try:  # the same validation and test files in every run, or one line naming them
            saved = [_read_member_predictions(d) for d in dirs]
            files, labels = _common_split([{"trial_dir": str(d)} for d in dirs], saved)
        except RunsError as exc:
            raise SystemExit(f"{group}: {exc}") from None
        print(f"{group}: {len(dirs)} runs")
        for combine in args.combine.split(","):
            m = score(saved, files, labels, combine, args.recall_target)
            print(f"  ensemble ({combine} mean, {len(labels['val'])} validation images): "
                  f"precision {m['precision']:.3f} recall {m['recall']:.3f} AUC "
                  f"{m['auc']:.3f} accuracy {m['accuracy']:.3f} specificity "
                  f"{m['specificity']:.3f}")
        for d, one in zip(dirs, saved, strict=True):
            m = score([one], files, labels, "probability", args.recall_target)
            print(f"    {d}: precision {m['precision']:.3f} AUC {m['auc']:.3f}")


if __name__ == "__main__":
    main()
