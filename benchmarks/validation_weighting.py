"""Would a validation split re-weighted toward the test images rank trials better?

Importance-weighted validation: a logistic regression learns to tell the validation
images from the *unlabelled* test images (5-fold cross-validated, so every validation
image is scored by a model that did not see it); each validation image is weighted by its
odds of being a test image. Each trial's validation AUC is then recomputed with those
weights, and both rankings are compared with the trials' test AUC (Spearman). Two feature
sets: 16x16 mean-pooled pixels (through a 50-component PCA), and the shortcut check's
border, sharpness and centre statistics.

Exploratory: it reads test labels to judge the rankings, never to choose a model.

usage: python benchmarks/validation_weighting.py --data DATA --runs RUNS [--size 128]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def pixels(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)[..., 0] / 255.0
    n, size = x.shape[0], x.shape[1]
    step = size // 16
    return x[:, :step * 16, :step * 16].reshape(n, 16, step, 16, step).mean(axis=(2, 4)).reshape(n, -1)


def frame_stats(x: np.ndarray) -> np.ndarray:
    from autopneumo.shortcuts import _frame_features

    return np.hstack(list(_frame_features(np.asarray(x), 0.08).values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True, help="a runs folder (trial predictions)")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)

    import pandas as pd
    from scipy.stats import spearmanr
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from autopneumo.data import load_dataset
    from autopneumo.leaderboard import leaderboard, search_trials

    ds = load_dataset(args.data, args.size, 1, 0.2, 0)
    trials = search_trials(leaderboard(args.runs))
    trials = trials[trials["status"] == "completed"]
    saved = []
    for folder in trials["trial_dir"]:
        frame = pd.read_csv(Path(folder) / "predictions.csv")
        saved.append((frame[frame.split == "val"].set_index("file"), frame[frame.split == "test"]))
    test_auc = np.array([roc_auc_score(t.label, t.probability) for _, t in saved])
    val_auc = np.array([roc_auc_score(v.label, v.probability) for v, _ in saved])
    files = pd.Index(np.asarray(ds.val.files).astype(str))
    print(f"{len(saved)} trials from {args.runs}; plain validation: Spearman with test AUC "
          f"{spearmanr(val_auc, test_auc)[0]:.2f}, its best trial's test AUC "
          f"{test_auc[val_auc.argmax()]:.3f} (best test AUC {test_auc.max():.3f})")
    for name, features, pca in (("16x16 pixels", pixels, True), ("frame stats", frame_stats, False)):
        fv, ft = features(ds.val.x), features(ds.test.x)
        x, domain = np.vstack([fv, ft]), np.r_[np.zeros(len(fv)), np.ones(len(ft))]
        for c in (0.01, 0.1, 1.0):
            steps = [StandardScaler()] + ([PCA(50, random_state=0)] if pca else [])
            model = make_pipeline(*steps, LogisticRegression(C=c, max_iter=2000))
            p = cross_val_predict(model, x, domain, method="predict_proba",
                                  cv=StratifiedKFold(5, shuffle=True, random_state=0))[:, 1]
            pv = np.clip(p[:len(fv)], 1e-3, 1 - 1e-3)
            w = pd.Series(pv / (1 - pv), index=files)
            w /= w.mean()
            weighted = np.array([roc_auc_score(v.label, v.probability,
                                               sample_weight=w.loc[v.index].to_numpy())
                                 for v, _ in saved])
            print(f"{name:12s} C={c:<5} domain AUC {roc_auc_score(domain, p):.3f}, effective "
                  f"validation size {w.sum() ** 2 / (w ** 2).sum():.0f} of {len(w)}; weighted: "
                  f"Spearman {spearmanr(weighted, test_auc)[0]:.2f}, its best trial's test AUC "
                  f"{test_auc[weighted.argmax()]:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
