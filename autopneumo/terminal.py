"""Terminal rendering of the leaderboard (rich)."""

from __future__ import annotations

import math

import click
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .leaderboard import flag, row_kinds


def distinct_from(p: float, threshold: float, least: int = 2) -> str:
    """``p`` with ``least`` decimals, or as many as it takes (up to 6) to differ from the
    threshold as printed: 0.4991 against a threshold of 0.4993, not 0.50 and 0.50 beside
    two different labels."""
    for digits in range(least, 7):
        if f"{p:.{digits}f}" != f"{threshold:.{digits}f}":
            return f"{p:.{digits}f}"
    return f"{p:.6f}"


def print_predictions(frame: pd.DataFrame, console: Console | None = None) -> None:
    """``predict``'s table: file, score, label and a note (the error, or why a score
    deserves little trust). File names are never cut or squeezed out (two patients' files
    must not read the same); the note wraps instead. Scores print with as many decimals
    as it takes to differ from the threshold beside a label."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped: no terminal width to fit, as the leaderboard
            console = Console(width=200)
    threshold = float(frame.attrs["threshold"])
    how = frame.attrs.get("threshold_source") or "chosen on validation"
    table = Table(title=f"threshold {threshold:.4f} ({how}); "
                        "score: the model's output, not a calibrated probability")
    longest = max((len(str(f)) for f in frame["file"]), default=4)
    table.add_column("file", overflow="fold", min_width=min(longest, 20))
    table.add_column("probability", no_wrap=True)
    table.add_column("label", no_wrap=True)
    table.add_column("note", overflow="fold", ratio=1, min_width=12)
    for row in frame.to_dict("records"):  # a missing value may read as None or NaN
        if pd.notna(row["error"]):
            table.add_row(Text(str(row["file"])), "-", "-",
                          Text(f"error: {row['error']}", style="red"))
        else:
            note = (Text(f"warning: {row['warning']}", style="yellow")
                    if pd.notna(row.get("warning")) else Text(""))
            table.add_row(Text(str(row["file"])),
                          distinct_from(float(row["probability"]), threshold, 4),
                          Text(str(row["label"])), note)
    console.print(table)


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
    # on stderr, as every other command's "warning:" lines: the table alone on stdout
    for label, key in (("skipped", "skipped"), ("warning", "mixed")):
        for line in frame.attrs.get(key, []):
            click.echo(f"{label}: {line}", err=True)
    if frame.empty:
        console.print("no trial records found")
        return
    table = Table(title=f"autopneumo leaderboard ({row_kinds(frame)}, ranked by validation)")
    cols = [("rank", "#"), ("family", "family"), ("policy", "policy"), ("trial_id", "trial"),
            ("status", "status"), ("val_prec_at_recall", "val P@R"), ("val_auc", "val AUC"),
            ("threshold", "thr"), ("test_precision", "test prec"), ("test_recall", "test rec"),
            ("test_accuracy", "test acc"), ("test_auc", "test AUC"),
            ("test_specificity", "test spec"), ("test_npv", "test NPV")]
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
