"""Leaderboard + report at scale: ``autopneumo.leaderboard(runs)`` then
``autopneumo.report.write_report(runs, out, pixels=False)`` over N synthetic completed
trials, N = 250, 500, 1000, three repeats (--quick: N = 500, 1000, one repeat).

The records are what ``evaluation.py`` writes (hyperparameters, validation summary,
threshold, test metrics with bootstrap intervals, per-epoch history, timings, data
counts, environment) with a ``predictions.csv`` of the real split sizes (1,043
validation + 624 test rows, the same test files and labels in every trial), spread over
every registered family x policy. They are written once; each N is a folder of hard
links to the first N. Output folders are fresh for every repeat.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
from common import Context, Result, check, fmt, median, ratio, spread

TIME_TARGET = "<= 10"
GROWTH_TARGET = "<= 2.2"  # t(1000) / t(500): linear is 2, fixed costs make it less
N_VAL, N_TEST = 1043, 624
ENVIRONMENT = {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1",
               "keras_tuner": "1.4.8", "platform": "Linux", "cpu": "synthetic",
               "cpu_count": 2, "gpus": [], "device": "CPU"}


def _projects() -> list[tuple[str, str]]:
    from autopneumo.registry import FAMILIES, POLICIES

    return [(f, p) for f in FAMILIES.names() for p in POLICIES.names()]


def write_records(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` completed trial folders below ``folder``; returns them in trial order."""
    from autopneumo.atomic import atomic_write_json
    from autopneumo.objective import binary_metrics, bootstrap_intervals, validation_summary

    rng = np.random.default_rng(seed)
    projects = _projects()
    y_val = (rng.random(N_VAL) < 0.74).astype(int)
    y_test = (rng.random(N_TEST) < 0.625).astype(int)
    val_files = [f"train/{'PNEUMONIA' if y else 'NORMAL'}/v{i}.jpeg" for i, y in enumerate(y_val)]
    test_files = [f"test/{'PNEUMONIA' if y else 'NORMAL'}/t{i}.jpeg" for i, y in enumerate(y_test)]
    counts = {"train": {"NORMAL": 1083, "PNEUMONIA": 3090, "patients": 2100},
              "val": {"NORMAL": 266, "PNEUMONIA": 777, "patients": 520},
              "test": {"NORMAL": 234, "PNEUMONIA": 390, "patients": 474}}
    dirs = []
    for i in range(n):
        family, policy = projects[i % len(projects)]
        trial_id = f"{i // len(projects):04d}"
        trial_dir = folder / f"{family}__{policy}" / f"trial_{trial_id}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        quality = rng.uniform(0.2, 0.8)
        p_val = np.clip(y_val * quality + rng.random(N_VAL) * (1 - quality), 0, 1)
        p_test = np.clip(y_test * quality + rng.random(N_TEST) * (1 - quality), 0, 1)
        val = validation_summary(y_val, p_val, 0.95)
        threshold = val["threshold"]
        test = binary_metrics(y_test, p_test, threshold, 0.95)
        ci = bootstrap_intervals(y_test, p_test, threshold, n_boot=100, seed=i)
        epochs = int(rng.integers(3, 11))
        history = {k: list(np.round(np.sort(rng.random(epochs))[::-1], 4).tolist())
                   for k in ("loss", "val_loss")}
        for k in ("accuracy", "auc", "val_accuracy", "val_auc", "val_objective",
                  "val_prec_at_recall"):
            history[k] = list(np.round(np.sort(rng.random(epochs)), 4).tolist())
        lines = ["split,file,label,probability"]
        lines += [f"val,{f},{y},{p!r}" for f, y, p in zip(val_files, y_val, p_val.tolist(),
                                                          strict=True)]
        lines += [f"test,{f},{y},{p!r}" for f, y, p in zip(test_files, y_test, p_test.tolist(),
                                                           strict=True)]
        (trial_dir / "predictions.csv").write_text("\n".join(lines) + "\n")
        record = {
            "schema_version": 1, "project": f"{family}__{policy}", "family": family,
            "policy": policy, "tuner": "random", "trial_id": trial_id, "status": "completed",
            "message": None, "traceback": None,
            "hyperparameters": {"model.width": float(rng.choice([0.5, 1.0])),
                                "train.learning_rate": float(10 ** rng.uniform(-4, -2.5)),
                                "train.batch_size": int(rng.choice([16, 32, 64])),
                                "train.class_weights": bool(rng.random() < 0.5),
                                "train.epochs": 10, "train.patience": 3},
            "recall_target": 0.95,
            "data": {"source": "kermany", "path": "/data/chest_xray", "data_hash": "0" * 64,
                     "image_size": 64, "channels": 1, "split_seed": 0, "val_fraction": 0.2,
                     "counts": counts},
            "environment": ENVIRONMENT, "command": "autopneumo search (synthetic)",
            "trial_dir": str(trial_dir), "worker": None,
            "finished_at": f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
            "val": val, "threshold": threshold, "test": test,
            "test_ci": {k: list(v) for k, v in ci.items()},
            "history": history, "epochs_run": epochs,
            "best_epoch": int(np.argmax(history["val_objective"])) + 1,
            "params": int(rng.integers(100_000, 3_000_000)),
            "files": {"model": "model.keras", "predictions": "predictions.csv"},
            "seconds": {"trial": float(rng.uniform(20, 200)),
                        "evaluation": float(rng.uniform(1, 5))},
        }
        atomic_write_json(trial_dir / "record.json", record)
        dirs.append(trial_dir)
    return dirs


def link_subset(dirs: list[Path], pool: Path, dest: Path) -> Path:
    """A runs folder of hard links to the first ``len(dirs)`` trials of ``pool``."""
    for d in dirs:
        out = dest / d.relative_to(pool)
        out.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            os.link(f, out / f.name)
    return dest


def time_once(runs: Path, out: Path) -> tuple[float, float, int]:
    import autopneumo
    from autopneumo.report import write_report

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    frame = autopneumo.leaderboard(runs)
    t_board = time.perf_counter() - start
    start = time.perf_counter()
    write_report(runs, out, pixels=False)
    t_report = time.perf_counter() - start
    return t_board, t_report, len(frame)


def run(ctx: Context) -> list[Result]:
    sizes = (500, 1000) if ctx.quick else (250, 500, 1000)
    repeats = 1 if ctx.quick else 3
    pool = ctx.scratch("report-pool")
    start = time.perf_counter()
    dirs = write_records(pool, max(sizes))
    ctx.log(f"  {max(sizes)} synthetic records written in {time.perf_counter() - start:.0f} s")
    folders = {n: link_subset(dirs[:n], pool, ctx.scratch(f"report-runs-{n}")) for n in sizes}
    board: dict[int, list[float]] = {n: [] for n in sizes}
    report: dict[int, list[float]] = {n: [] for n in sizes}
    rows: dict[int, int] = {}
    for r in range(repeats):
        for n in sizes if r % 2 == 0 else sizes[::-1]:
            tb, tr, rows[n] = time_once(folders[n], ctx.tmp / f"report-out-{n}")
            board[n].append(tb)
            report[n].append(tr)
            ctx.log(f"  N={n}: leaderboard {tb:.2f} s, report {tr:.2f} s")
    total = {n: [b + r for b, r in zip(board[n], report[n], strict=True)] for n in sizes}
    t = {n: median(total[n]) for n in sizes}
    sides = {}
    for n in sizes:
        sides[f"N={n}: leaderboard + report, s"] = spread(total[n])
        sides[f"N={n}:   leaderboard / report, s"] = (f"{fmt(median(board[n]))} / "
                                                     f"{fmt(median(report[n]))}")
    sides["per 1,000 trials, from N=500 to N=1000, s"] = fmt(2 * (t[1000] - t[500]))
    out_files = sorted((ctx.tmp / "report-out-1000").rglob("*"))
    size_mb = sum(p.stat().st_size for p in out_files if p.is_file()) / 1e6
    growth = ratio(t[1000], t[500])
    notes = [f"{rows.get(1000)} leaderboard rows at N=1000; report output {size_mb:.1f} MB; "
             f"{len(_projects())} family x policy projects; pixels=False"]
    shutil.rmtree(pool, ignore_errors=True)
    return [
        Result("report", "leaderboard + report, 1,000 trials (seconds)",
               "median seconds of leaderboard() + write_report() for 1,000 records", sides,
               t[1000], TIME_TARGET, check(t[1000], TIME_TARGET), notes),
        Result("report", "leaderboard + report growth, t(1000) / t(500)",
               "time for 1,000 records / time for 500 (linear growth = 2)",
               {"t(N) for N = " + ", ".join(map(str, sizes)) + ", s":
                    " / ".join(fmt(t[n]) for n in sizes),
                "leaderboard alone t(1000) / t(500)":
                    fmt(ratio(median(board[1000]), median(board[500])), 3)},
               growth, GROWTH_TARGET, check(growth, GROWTH_TARGET) and not math.isnan(growth)),
    ]
