"""Ctrl-C at many points of a search's first trial: does the command always exit 130?

Each run starts ``autopneumo search`` on the tests' tiny generated data set (20 trials of
3 epochs, so the search cannot end on its own first), waits for the first trial's
folder, sleeps a random 0-6 s (tracing, the first batches, the evaluation) and sends
SIGINT the way a terminal does. A run is good when the command exits 130 within 90 s,
says how to resume, and prints no traceback. Not part of ``make bench``: a reliability
probe whose outcome is a count, not a ratio. ``PYTHONPATH=/path/to/other/checkout``
probes another version of the code with the same delays (same ``--seed``).

usage: python benchmarks/ctrl_c_stress.py [--runs 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from tests.conftest import make_kermany
    from tests.test_reliability import SMALL_CNN, search_cmd, wait_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="ctrl-c-"))
    data = make_kermany(root / "data")
    space = root / "small.yaml"
    space.write_text(SMALL_CNN)
    outcomes = Counter()
    for i in range(args.runs):
        runs = root / f"runs{i}"
        delay = rng.uniform(0.0, 6.0)
        proc = subprocess.Popen(search_cmd(data, runs, space, trials=20, epochs=3),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        wait_for(lambda runs=runs: any(runs.glob("*/trial_*")), 240)
        time.sleep(delay)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        good = (proc.returncode == 130 and "Traceback" not in err
                and "run the same command again to resume" in err)
        outcomes["good" if good else f"exit {proc.returncode}"] += 1
        trials = len(list(runs.glob("*/trial_*")))
        print(f"run {i}: signal {delay:.2f} s after the first trial folder; exit "
              f"{proc.returncode} {time.monotonic() - start:.1f} s later; {trials} trial "
              f"folder(s); {'good' if good else 'BAD'}", flush=True)
        if not good:
            print("  stderr ends: " + err[-800:].replace("\n", "\n  "), flush=True)
    print(dict(outcomes))


if __name__ == "__main__":
    main()
