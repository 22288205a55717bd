"""Memory across trials: RSS after trial 30 / RSS after trial 3 of one search.

One real ``autopneumo.tuning.search`` (random tuner) of a tiny base_cnn (``--space``:
width 0.5, depth 2, one dense block of 128) at 32 px, 1 epoch per trial, on every 16th
image of the Kermany folder; training hyperparameters stay random (batch sizes vary, so
each trial traces its own functions: what a real search does). RSS is ``VmRSS`` of
this process, read when each trial's record is written, after a ``gc.collect()`` (the
one ``on_trial_end`` runs next). --quick: 10 trials, RSS after 10 / after 3.
"""

from __future__ import annotations

import gc

from common import Context, Result, check, fmt, rss_mb
from searches import Probe, probed, subset_folder, synthetic_folder, write_space

TARGET = "<= 1.05"


def run(ctx: Context) -> list[Result]:
    from autopneumo.tuning import SearchConfig, search

    trials = 10 if ctx.quick else 30
    if ctx.data is not None:
        data = subset_folder(ctx.data, ctx.scratch("memory-data"), 16)
        source = "every 16th image of the Kermany folder"
    else:
        data = synthetic_folder(ctx.scratch("memory-data"), 326, 40, size=48)
        source = "synthetic JPEGs (no data folder)"
    space = write_space(ctx.scratch("memory-spaces"), "family", "base_cnn", {
        "width": {"type": "fixed", "value": 0.5},
        "depth": {"type": "fixed", "value": 2},
        "conv_dropout": {"type": "fixed", "value": 0.0},
        "dense_units": {"type": "fixed", "value": "128"},
        "dense_dropout": {"type": "fixed", "value": 0.3},
    })
    config = SearchConfig("base_cnn", "none", data=str(data), tuner="random", max_trials=trials,
                          epochs=1, image_size=32, runs_dir=str(ctx.scratch("memory-runs")),
                          spaces=[str(space)], seed=0)
    series: list[float] = []
    census: dict[int, tuple[int, int]] = {}

    def after_trial(t):
        gc.collect()
        t.rss_after = rss_mb()
        series.append(t.rss_after)
        if len(series) in (3, trials):
            census[len(series)] = _census()
        if len(series) % 5 == 0:
            ctx.log(f"  trial {len(series)}: RSS {t.rss_after:.0f} MiB")

    before = rss_mb()
    probe = Probe(on_trial_end=after_trial)
    with probed(probe):
        search(config, progress=probe)
    done = len(series)
    if done < trials:
        raise RuntimeError(f"only {done} of {trials} trials ran")
    third, last = series[2], series[trials - 1]
    trimmed = _rss_after_malloc_trim()
    value = last / third
    per_trial = (last - third) / (trials - 3)
    walls = [t.wall for t in probe.trials]
    return [Result(
        "memory", f"memory across trials, RSS after trial {trials} / after trial 3",
        f"VmRSS after trial {trials} / VmRSS after trial 3 of one {trials}-trial search",
        {
            "RSS before the search, MiB": fmt(before),
            "RSS after trial 1 / 3, MiB": f"{fmt(series[0])} / {fmt(third)}",
            f"RSS after trial {trials}, MiB": fmt(last),
            "growth per trial after trial 3, MiB": fmt(per_trial),
            "RSS after every trial, MiB": " ".join(f"{x:.0f}" for x in series),
            f"live TF FuncGraphs after trial 3 / {trials}":
                f"{census[3][0]} / {census[trials][0]}",
            f"gc-tracked Python objects after trial 3 / {trials}":
                f"{census[3][1]:,} / {census[trials][1]:,}",
            "RSS after the search and malloc_trim(0), MiB": fmt(trimmed),
            "trial wall-clock, s (median)": fmt(sorted(walls)[len(walls) // 2]),
        },
        value, TARGET, check(value, TARGET),
        [f"{source}; {trials} trials of 1 epoch at 32 px; see BENCHMARKS.md for the cause"],
    )]


def _census() -> tuple[int, int]:
    """Live TensorFlow FuncGraphs (traced functions) and gc-tracked objects."""
    try:
        from tensorflow.python.framework.func_graph import FuncGraph
    except ImportError:  # the private module moved: count nothing rather than fail
        FuncGraph = ()  # noqa: N806
    objects = gc.get_objects()
    graphs = sum(1 for o in objects if FuncGraph and isinstance(o, FuncGraph))
    return graphs, len(objects)


def _rss_after_malloc_trim() -> float:
    """RSS once glibc has returned its free heap pages: what is left is in use."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return float("nan")
    return rss_mb()
