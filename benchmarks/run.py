"""Run autopneumo's performance benchmarks: ``make bench`` or ``python benchmarks/run.py``.

Each benchmark measures two sides in the same run and prints their medians, the ratio,
the target and PASS / MISS; a summary table closes the run. Targets live here and in
BENCHMARKS.md, never in timed unit tests.

    python benchmarks/run.py                      # everything (about 20 min on 2 CPU cores)
    python benchmarks/run.py --quick              # fewer repeats, smaller sizes (< 5 min)
    python benchmarks/run.py --only data,cache    # some of them
    python benchmarks/run.py --json results.json  # also write the rows as JSON

Data benchmarks need the Kermany folder: ``--data PATH``, else ``AUTOPNEUMO_DATA``, else
``../shared/data/chest_xray`` beside the repository; without it they are skipped.
Decoded-image caches go to a temporary ``AUTOPNEUMO_CACHE``, so every run starts cold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import REPO, Context, Result  # noqa: E402

BENCHMARKS = {
    # name: (module, function, one line)
    "throughput": ("bench_throughput", "run",
                   "trial epoch images/s vs bare model.fit on float tensors"),
    "data": ("bench_data", "run_data", "classroom tf.data decode vs autopneumo cache build"),
    "cache": ("bench_data", "run_cache", "cache hit vs cold decode"),
    "overhead": ("bench_overhead", "run", "trial wall-clock outside fit epochs, quick search"),
    "memory": ("bench_memory", "run", "RSS after trial 30 vs after trial 3 of one search"),
    "report": ("bench_report", "run", "leaderboard + report for 250/500/1000 records"),
    "augment": ("bench_augment", "run", "epoch time per augmentation policy vs none"),
    "workers": ("bench_workers", "run", "trials/min with 2 vs 1 workers on loopback"),
}

NEEDS_DATA = ("data", "cache")  # the others use random images where the folder is absent


def default_data() -> Path | None:
    value = os.environ.get("AUTOPNEUMO_DATA", "").strip()
    return Path(value) if value else REPO.parent / "shared" / "data" / "chest_xray"


def is_kermany(path: Path | None) -> bool:
    return path is not None and (path / "train").is_dir() and (path / "test").is_dir()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    parser.add_argument("--data", type=Path, default=None, help="the Kermany folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    # internal: one benchmark in this process, rows to a JSON file
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-data", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names + ([args.child] if args.child else []) if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    args.names = names
    return args


def run_child(args: argparse.Namespace) -> int:
    """One benchmark, in this (fresh) process: its rows go to ``--child-out``."""
    from autopneumo.backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    ctx = Context(quick=args.quick, data=None if args.no_data else args.data, tmp=args.tmp)
    module_name, function, _ = BENCHMARKS[args.child]
    rows = getattr(__import__(module_name), function)(ctx)
    for row in rows:
        common.print_result(row)
    args.child_out.write_text(json.dumps([asdict(r) for r in rows], default=str))
    return 0


def run_isolated(name: str, args: argparse.Namespace, data: Path | None, tmp: Path) -> list[Result]:
    """Each benchmark in a fresh interpreter: no heap, graphs or caches carried over."""
    out = tmp / f"{name}.json"
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--child-out", str(out), "--tmp", str(folder)]
    command += ["--data", str(data)] if data else ["--no-data"]
    command += ["--quick"] if args.quick else []
    done = subprocess.run(command, check=False)
    if done.returncode:
        raise RuntimeError(f"benchmark process exited with {done.returncode}")
    return [Result(**row) for row in json.loads(out.read_text())]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    tmp = Path(tempfile.mkdtemp(prefix="autopneumo-bench-"))
    os.environ["AUTOPNEUMO_CACHE"] = str(tmp / "cache")  # inherited by every benchmark
    data = args.data if args.data is not None else default_data()
    if not is_kermany(data):
        print(f"no Kermany folder at {data}: the data benchmarks are skipped")
        data = None
    started = time.perf_counter()
    print("autopneumo benchmarks" + (" (--quick)" if args.quick else ""))
    print("command: " + " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]))
    info = common.machine()
    common.print_machine(info)
    print(f"  {'data':<28} {data or 'absent'}")
    for k, v in common.environ_threads().items():
        print(f"  {k:<28} {v}")
    print("  each benchmark runs in its own fresh Python process")
    results: list[Result] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    loads: dict[str, str] = {}
    try:
        for name in args.names:
            _, _, what = BENCHMARKS[name]
            loads[name] = common.load_average()
            print(f"\n=== {name}: {what} (load average {loads[name]})", flush=True)
            t0 = time.perf_counter()
            if name in NEEDS_DATA and data is None:
                print("  skipped: no Kermany data folder")
                continue
            try:
                results.extend(run_isolated(name, args, data, tmp))
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
            timings[name] = time.perf_counter() - t0
            print(f"=== {name}: {timings[name]:.0f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started
    print("\nsummary (medians over repeats; ratios measured side by side in this run)")
    print(common.summary(results))
    for name, error in errors.items():
        print(f"ERROR in {name}: {error}")
    print(f"total {total / 60:.1f} min; seconds per benchmark: "
          + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
          + f"; load average at the end {common.load_average()}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "quick": args.quick, "data": str(data) if data else None,
            "seconds": timings, "load_average_at_start": loads, "errors": errors,
            "results": [{**asdict(r), "verdict": r.verdict} for r in results],
        }, indent=2, default=str))
    missed = any(r.passed is False for r in results)
    return 1 if errors or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
