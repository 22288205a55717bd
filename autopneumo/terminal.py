"""Terminal rendering of the leaderboard (rich)."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .leaderboard import flag


def _fmt(x, digits: int = 3) -> Text:
    """Plain text (never rich markup: names come from files and folders)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return Text("-")
    return Text(f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def print_leaderboard(frame: pd.DataFrame, top: int = 20, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)
    for line in frame.attrs.get("skipped", []):
        console.print(Text("skipped ", style="yellow") + Text(line))
    for line in frame.attrs.get("mixed", []):
        console.print(Text("warning ", style="yellow") + Text(line))
    if frame.empty:
        console.print("no trial records found")
        return
    table = Table(title=f"autopneumo leaderboard ({len(frame)} trials, ranked by validation)")
    cols = [("rank", "#"), ("family", "family"), ("policy", "policy"), ("trial_id", "trial"),
            ("status", "status"), ("val_prec_at_recall", "val P@R"), ("val_auc", "val AUC"),
            ("threshold", "thr"), ("test_precision", "test prec"), ("test_recall", "test rec"),
            ("test_accuracy", "test acc"), ("test_auc", "test AUC"),
            ("test_specificity", "test spec")]
    for _, title in cols:
        table.add_column(title, justify="right")
    for _, row in frame.head(top).iterrows():
        cells = [_fmt(row.get(c)) for c, _ in cols]
        kind = "ref" if flag(row, "reference") else "ens" if flag(row, "ensemble") else ""
        if kind:  # the trial column says which rows are not search trials
            cells[3] = cells[3] + Text(f" ({kind})", style="dim")
        table.add_row(*cells)
    console.print(table)
    if len(frame) > top:
        console.print(f"... {len(frame) - top} more (use --top)")
