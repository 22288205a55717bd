"""A rich progress display for a search: trial i/N, epoch, objective so far, ETA."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

OPEN_ENDED_TRIALS = 1000  # a trial limit no time budget reaches (study.STUDY_MAX_TRIALS)


class RemainingColumn(ProgressColumn):
    """``ETA`` from the trials' pace, or, for a search with a time budget (a study's
    pair runs up to 1,000 trials until its share is spent), the budget left."""

    def __init__(self):
        super().__init__()
        self.eta = TimeRemainingColumn()

    def render(self, task) -> Text:
        deadline = task.fields.get("deadline")
        if deadline is None:
            return Text("ETA ") + self.eta.render(task)
        left = max(0, int(deadline - time.time()))
        return Text(f"budget left {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}")


class SearchProgress:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), RemainingColumn(),
            console=self.console, transient=False,
        )
        self.task = None
        self.best = math.nan
        self.trial_id = "-"
        self.epochs = None

    def __enter__(self):
        return self  # the display starts with the search: an error before it leaves no line

    def __exit__(self, *exc):
        if self.progress.live.is_started:
            self.progress.stop()
        return False

    def search_begin(self, config, done: int, deadline: float | None = None) -> None:
        """``done``: trials of the project already finished (not those to repeat);
        ``deadline``: when the time budget ends (time.time()), if there is one."""
        if not self.progress.live.is_started:
            self.progress.start()
        self.epochs = config.epochs
        self.best = _best_so_far(config)  # resumed: the project's best, not this run's
        # a study's pair runs "up to 1,000 trials" until its share is spent: "7/?", not "7/1…"
        open_ended = deadline is not None and config.max_trials >= OPEN_ENDED_TRIALS
        self.task = self.progress.add_task(
            config.project, total=None if open_ended else config.max_trials,
            completed=done if open_ended else min(done, config.max_trials),
            status="starting", deadline=deadline,
        )

    def trial_begin(self, trial) -> None:
        self.trial_id = trial.trial_id
        self._status("building")

    def epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get("val_prec_at_recall", math.nan)
        self._status(f"epoch {epoch + 1}: val precision@recall {value:.3f}")

    def trial_end(self, record: dict[str, Any]) -> None:
        value = (record.get("val") or {}).get("prec_at_recall", math.nan)
        if not math.isnan(value) and not (value <= self.best):
            self.best = value
        self.progress.advance(self.task)
        self._status("done")
        self.console.log(
            f"trial {record['trial_id']} {record['status']}"
            + (f": val precision@recall {value:.3f}" if record["status"] == "completed" else
               f": {record.get('message') or ''}")
        )

    def _status(self, text: str) -> None:
        if self.task is not None:
            best = "" if math.isnan(self.best) else f" · best {self.best:.3f}"
            self.progress.update(self.task, status=f"trial {self.trial_id} · {text}{best}")

    def epoch_callback(self):
        import keras

        owner = self

        class _EpochProgress(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                owner.epoch(epoch, logs or {})

            def __deepcopy__(self, memo):  # keras-tuner deep-copies callbacks per trial
                return self

        return _EpochProgress()


def _best_so_far(config) -> float:
    """The best validation precision@recall among the project's recorded trials (NaN for
    none): what a resumed search's "best" starts from."""
    from pathlib import Path

    from .leaderboard import read_records

    values = [r["val"].get("prec_at_recall")
              for r in read_records(Path(config.runs_dir) / config.project)
              if r.get("status") == "completed" and isinstance(r.get("val"), dict)]
    return max((v for v in values if isinstance(v, int | float) and not math.isnan(v)),
               default=math.nan)
