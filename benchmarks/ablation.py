"""What moves the numbers: one change at a time from a base configuration.

Each configuration is trained once per seed exactly as ``finalize`` retrains a trial
(``trials.train_and_evaluate``: early stopping on the validation objective, best epoch
kept, threshold chosen on the validation split), then scored on the official test set.
The base is every search space's default (base_cnn, flip, 128 px grey, Adam 1e-3,
batch 32, class weights) with the choices the ablation varies pinned (``PINNED``: no
border crop, no equalisation, no standardisation) and a longer epoch cap.

This reads test numbers for many configurations, so it is exploratory: a change that
wins here is a hypothesis for the search spaces, and a study (which never sees the test
set while it selects) must confirm it. Rows are written to ``ablation.csv`` after each
training, so a run stopped by ``--budget`` keeps what it finished.

``--seeds 0,1,2`` trains every named configuration once per seed (seed by seed, so a
run stopped by ``--budget`` has the same seeds for each configuration), in place of
each configuration's own seed.

usage: python benchmarks/ablation.py --data ../shared/data/chest_xray --out DIR
           [--budget SECONDS] [--epochs N] [--only NAME,NAME] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The base pins every choice the ablation varies, so that a search space's default moving
# later (train.crop's did, to 0.8 and back) does not silently change what "base" means.
# The rows record every value used (column ``values``).
PINNED = {"train.crop": 1.0, "train.equalize": False, "train.standardize": False,
          "train.balance": "class_weights", "train.label_smoothing": 0.0,
          "train.optimizer": "adam", "train.schedule": "constant", "train.ema": False}
# name -> (family, policy, image size, {prefixed hyperparameter: value} over PINNED, seed)
BASE = ("base_cnn", "flip", 128, {}, 0)
CONFIGS: dict[str, tuple] = {
    "base": BASE,
    "base seed 1": ("base_cnn", "flip", 128, {}, 1),
    "equalize": ("base_cnn", "flip", 128, {"train.equalize": True}, 0),
    "geometric": ("base_cnn", "geometric", 128, {}, 0),
    "no augmentation": ("base_cnn", "none", 128, {}, 0),
    "224 px": ("base_cnn", "flip", 224, {}, 0),
    "photometric": ("base_cnn", "photometric", 128, {}, 0),
    "resnet18": ("resnet18", "flip", 128, {}, 0),
    "no class balance": ("base_cnn", "flip", 128, {"train.balance": "none"}, 0),
    "label smoothing 0.1": ("base_cnn", "flip", 128, {"train.label_smoothing": 0.1}, 0),
    "adamw + cosine": ("base_cnn", "flip", 128, {"train.optimizer": "adamw",
                                                 "train.schedule": "cosine"}, 0),
    "64 px": ("base_cnn", "flip", 64, {}, 0),
    "equalize + geometric": ("base_cnn", "geometric", 128, {"train.equalize": True}, 0),
    "randaugment": ("base_cnn", "randaugment", 128, {}, 0),
    "combined": ("base_cnn", "combined", 128, {}, 0),
    "crop 0.8": ("base_cnn", "flip", 128, {"train.crop": 0.8}, 0),
    "crop 0.8 + geometric": ("base_cnn", "geometric", 128, {"train.crop": 0.8}, 0),
    "equalize + combined": ("base_cnn", "combined", 128, {"train.equalize": True}, 0),
    "resnet18 geometric 224 px": ("resnet18", "geometric", 224, {}, 0),
    "base seed 2": ("base_cnn", "flip", 128, {}, 2),
    "crop 0.8 + photometric": ("base_cnn", "photometric", 128, {"train.crop": 0.8}, 0),
    "photometric seed 1": ("base_cnn", "photometric", 128, {}, 1),
    "crop 0.8 seed 1": ("base_cnn", "flip", 128, {"train.crop": 0.8}, 1),
    # sharpness separates the training classes (AUC 0.9) and the test normals are blurrier
    "photometric + sharpness": ("base_cnn", "photometric", 128, {"augment.sharpness": 0.5}, 0),
    # photometric at its search space's maxima: does more of the one change that helps help more?
    "photometric strong": ("base_cnn", "photometric", 128, {
        "augment.contrast": 0.4, "augment.brightness": 0.3, "augment.noise": 0.06}, 0),
    # seventh session: the training settings the ablation had not varied, around photometric
    "photometric 64 px": ("base_cnn", "photometric", 64, {}, 0),
    "photometric + label smoothing 0.1": ("base_cnn", "photometric", 128,
                                          {"train.label_smoothing": 0.1}, 0),
    "photometric + adamw + cosine": ("base_cnn", "photometric", 128,
                                     {"train.optimizer": "adamw", "train.schedule": "cosine"}, 0),
    "photometric + oversample": ("base_cnn", "photometric", 128, {"train.balance": "oversample"}, 0),
    "photometric + focal": ("base_cnn", "photometric", 128, {"train.loss": "focal"}, 0),
    # for a GPU: the one policy that helps, at the references' resolution and architecture
    "photometric 224 px": ("base_cnn", "photometric", 224, {}, 0),
    "resnet18 photometric 224 px": ("resnet18", "photometric", 224, {}, 0),
    # eighth session: grey vs RGB (the classroom's models took RGB; the images are grey)
    "photometric RGB": ("base_cnn", "photometric", 128, {}, 0),
    "photometric 64 px RGB": ("base_cnn", "photometric", 64, {}, 0),
    # tenth session: per-image standardisation after the augmentation (exact invariance to
    # global brightness and contrast, which photometric augmentation teaches approximately)
    "photometric 64 px + standardize": ("base_cnn", "photometric", 64, {"train.standardize": True}, 0),
    "flip 64 px + standardize": ("base_cnn", "flip", 64, {"train.standardize": True}, 0),
    "photometric + standardize": ("base_cnn", "photometric", 128, {"train.standardize": True}, 0),
    # eleventh session: the policies never ablated, each with standardisation at 64 px, to
    # compare with "flip 64 px + standardize" and "photometric 64 px + standardize"
    **{f"{policy} 64 px + standardize": ("base_cnn", policy, 64, {"train.standardize": True}, 0)
       for policy in ("mixup", "cutmix", "randaugment", "erasing")},
    # twelfth session: the two best of those at 128 px, like "photometric + standardize"
    **{f"{policy} + standardize": ("base_cnn", policy, 128, {"train.standardize": True}, 0)
       for policy in ("randaugment", "erasing")},
    # twelfth session: the weights' moving average (train.ema), scored and kept per epoch
    "photometric 64 px + standardize + ema": (
        "base_cnn", "photometric", 64, {"train.standardize": True, "train.ema": True}, 0),
    "photometric + standardize + ema": (
        "base_cnn", "photometric", 128, {"train.standardize": True, "train.ema": True}, 0),
    # thirteenth session: AdamW with a cosine schedule (seventh session's best single seed
    # without standardisation) on top of "photometric + standardize"
    "photometric + standardize + adamw + cosine": (
        "base_cnn", "photometric", 128,
        {"train.standardize": True, "train.optimizer": "adamw", "train.schedule": "cosine"}, 0),
}
CHANNELS = {"photometric RGB": 3, "photometric 64 px RGB": 3}  # 1 (grey) for the others
COLUMNS = ("precision", "recall", "auc", "accuracy", "specificity", "prec_at_recall")


def default_values(family: str, policy: str) -> dict:
    from autopneumo.tuning import SearchConfig, resolve_spaces

    spaces = resolve_spaces(SearchConfig(family, policy))["spaces"]
    return {f"{space.prefix}.{name}": value for space in spaces.values()
            for name, value in space.defaults().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=None, help="seconds; no new config after")
    parser.add_argument("--epochs", type=int, default=20, help="epoch cap (patience 5)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the trained models go (default: OUT/runs)")
    parser.add_argument("--only", default="", help="comma-separated configuration names")
    parser.add_argument("--recall-target", type=float, default=0.95)
    parser.add_argument("--seeds", default="",
                        help="comma-separated seeds: each configuration once per seed")
    args = parser.parse_args(argv)

    from autopneumo.backend import import_tensorflow_quietly, keras_backend

    import_tensorflow_quietly()  # before anything imports Keras: quiet, threads sized
    import pandas as pd

    from autopneumo.data import load_dataset
    from autopneumo.evaluation import Evaluator
    from autopneumo.trials import train_and_evaluate

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"--only: unknown configuration(s) {unknown}; known: {list(CONFIGS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    runs = ([(name, seed) for seed in seeds for name in names] if seeds
            else [(name, CONFIGS[name][4]) for name in names])
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    datasets: dict[tuple[int, int], object] = {}
    rows = []
    for name, seed in runs:
        if args.budget and time.time() - started > args.budget:
            print(f"budget spent: {name!r} (seed {seed}) and later runs not run", flush=True)
            break
        family, policy, size, changes, _ = CONFIGS[name]
        channels = CHANNELS.get(name, 1)
        if (size, channels) not in datasets:
            datasets[size, channels] = load_dataset(args.data, size, channels, 0.2, 0)
        dataset = datasets[size, channels]
        values = default_values(family, policy) | PINNED | changes
        values |= {"train.epochs": args.epochs, "train.patience": 5}
        evaluator = Evaluator(dataset, {"project": f"{family}__{policy}", "family": family,
                                        "policy": policy, "tuner": "ablation"},
                              args.recall_target, command="benchmarks/ablation.py", n_boot=200)
        run_dir = (args.runs or args.out / "runs") / f"{name.replace(' ', '_')}_seed{seed}"
        t0 = time.perf_counter()
        record = train_and_evaluate(family, policy, values, dataset, evaluator, run_dir, name,
                                    args.recall_target, seed)
        row = {"config": name, "family": family, "policy": policy, "size": size,
               "channels": channels, "seed": seed,
               "changes": ", ".join(f"{k}={v}" for k, v in changes.items()) or "-",
               "epochs_run": record["epochs_run"], "best_epoch": record["best_epoch"],
               "seconds": round(time.perf_counter() - t0, 1),
               "val_auc": record["val"]["auc"], "val_prec_at_recall": record["val"]["prec_at_recall"],
               **{f"test_{c}": record["test"][c] for c in COLUMNS},
               "backend": keras_backend(),
               "values": json.dumps(values, sort_keys=True)}
        rows.append(row)
        frame = pd.DataFrame(rows)
        frame.to_csv(args.out / "ablation.csv", index=False)
        print(f"{name:24s} s{seed} test P {row['test_precision']:.3f} R {row['test_recall']:.3f} "
              f"AUC {row['test_auc']:.3f} | val AUC {row['val_auc']:.3f} | "
              f"{row['epochs_run']} ep, {row['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
