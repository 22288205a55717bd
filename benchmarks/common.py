"""Shared pieces of the benchmarks: the machine, timing, medians and ratios, the tables.

Every benchmark returns ``Result`` rows: two sides measured in the same run (interleaved
where that is possible, so a noisy neighbour slows both), their medians, the ratio and
the target. Absolute times are printed too, but only ratios are compared with targets.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Context:
    """What every benchmark gets from ``run.py``."""

    quick: bool
    data: Path | None  # the Kermany folder, or None where it is absent
    tmp: Path  # a scratch folder removed at the end of the run
    log: Callable[[str], None] = print

    def scratch(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Result:
    """One measured ratio against its target."""

    benchmark: str
    name: str
    measured: str  # what the ratio is, in words
    sides: dict[str, str]  # label -> "median (spread)" as printed
    ratio: float
    target: str  # e.g. ">= 0.95"
    passed: bool | None  # None: reported only, no target
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "REPORT"
        if isinstance(self.ratio, float) and math.isnan(self.ratio):
            return "n/a"
        return "PASS" if self.passed else "MISS"


def check(ratio: float, target: str) -> bool:
    """``target`` is ``">= x"`` or ``"<= x"`` (x may be a fraction like ``1/50``)."""
    op, _, value = target.partition(" ")
    limit = _number(value)
    if math.isnan(ratio):
        return False
    return ratio >= limit if op == ">=" else ratio <= limit


def _number(text: str) -> float:
    text = text.strip().rstrip("x%")
    if "/" in text:
        a, b = text.split("/")
        return float(a) / float(b)
    return float(text)


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def spread(values: list[float]) -> str:
    """Median with min-max, for printing."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}] n={len(values)}"


def fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == 0:
        return "0"
    magnitude = abs(x)
    if magnitude >= 1000:
        return f"{x:,.0f}"
    if magnitude >= 1:
        return f"{x:.{max(digits - len(str(int(magnitude))), 1)}f}"
    return f"{x:.{digits}g}"


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def interleaved(sides: dict[str, Callable[[], float | None]], repeats: int,
                warmup: int = 0) -> dict[str, list[float]]:
    """Run each side ``repeats`` times, alternating ABBA..., so drift and a busy neighbour
    land on both sides alike. A side returns its own measurement, or None to be timed
    as a whole."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(warmup):
        for n in names:
            sides[n]()
    for r in range(repeats):
        for n in (names if r % 2 == 0 else list(reversed(names))):
            start = time.perf_counter()
            value = sides[n]()
            out[n].append(time.perf_counter() - start if value is None else float(value))
    return out


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def rss_mb() -> float:
    """Resident set size of this process (``VmRSS`` in ``/proc/self/status``), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"{one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        return "n/a"


def machine() -> dict[str, str]:
    """CPU model, cores, memory, GPU (if any) and the library versions that matter."""
    info: dict[str, str] = {}
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = cpu
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["cores"] = f"{usable} usable ({os.cpu_count()} online)"
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            total = int(fh.readline().split()[1])
        info["memory"] = f"{total / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info["gpu"] = gpus()
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = sys.version.split()[0]
    from importlib import metadata

    info["keras backend"] = os.environ.get("KERAS_BACKEND") or "tensorflow (default)"
    for name in ("tensorflow", "jax", "keras", "keras-tuner", "numpy", "pillow", "pandas",
                 "matplotlib"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "absent"
    info["load average (1/5/15 min)"] = load_average()
    return info


def gpus() -> str:
    """NVIDIA GPUs by ``nvidia-smi`` (the parent process does not import TensorFlow)."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return "none (CPU only; no nvidia-smi)"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (nvidia-smi failed)"
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return ", ".join(names) if names else "none (CPU only)"


def print_machine(info: dict[str, str], log: Callable[[str], None] = print) -> None:
    log("machine:")
    for k, v in info.items():
        log(f"  {k:<28} {v}")


def print_result(r: Result, log: Callable[[str], None] = print) -> None:
    log(f"\n[{r.benchmark}] {r.name}")
    log(f"  measures: {r.measured}")
    for label, value in r.sides.items():
        log(f"  {label:<44} {value}")
    log(f"  ratio: {fmt(r.ratio, 4)}   target: {r.target or '-'}   -> {r.verdict}")
    for note in r.notes:
        log(f"  note: {note}")


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table (readable in a terminal too)."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            for row in rows]
    return "\n".join([line, sep, *body])


def summary(results: list[Result]) -> str:
    rows = [[r.benchmark, r.name, fmt(r.ratio, 4), r.target or "-", r.verdict]
            for r in results]
    return table(rows, ["benchmark", "ratio measured", "ratio", "target", "verdict"])


def environ_threads() -> dict[str, Any]:
    """Thread settings that change timings, printed with the results."""
    keys = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
            "AUTOPNEUMO_CACHE")
    return {k: os.environ.get(k, "unset") for k in keys}
