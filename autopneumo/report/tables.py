"""Cell formatting shared by the HTML table, the headline and the Markdown summary, and the
spreadsheet-safe CSV. One formatter, so the page shows exactly the CSV's numbers
rounded to 3 decimals: ``value [lo, hi]`` for metrics with a bootstrap interval."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from ..leaderboard import flag

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# the Markdown summary's columns (and the first HTML report's)
TABLE_COLUMNS = [
    ("rank", "#"), ("family", "family"), ("policy", "policy"), ("trial_id", "trial"),
    ("status", "status"), ("val_prec_at_recall", "val precision@recall"),
    ("val_auc", "val AUC"), ("threshold", "threshold"),
    ("test_precision", "test precision"), ("test_recall", "test recall"),
    ("test_accuracy", "test accuracy"), ("test_auc", "test AUC"),
    ("test_specificity", "test specificity"), ("test_npv", "test NPV"),
    ("test_loss", "test loss"),
]
# the HTML table: narrower, so it fits a laptop screen; every column is in the CSV
HTML_COLUMNS = [
    ("rank", "#"), ("family", "family"), ("policy", "policy"), ("trial_id", "trial"),
    ("status", "status"), ("val_prec_at_recall", "val precision@recall"),
    ("val_auc", "val AUC"), ("threshold", "threshold"),
    ("test_precision", "test precision"), ("test_recall", "test recall"),
    ("test_accuracy", "test accuracy"), ("test_auc", "test AUC"),
    ("params", "params"), ("epochs_run", "epochs"), ("seconds", "time"),
]
CI_COLUMNS = {"test_precision", "test_recall", "test_accuracy", "test_auc", "test_specificity",
              "test_npv", "test_f1"}
# a text column's cell, once the sorting script sees it
TEXT_COLUMNS = {"family", "policy", "trial_id", "status"}


def safe_csv(frame: pd.DataFrame) -> str:
    """CSV text where no text cell can run as a spreadsheet formula."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            )
    return out.to_csv(index=False)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value: Any, digits: int = 3) -> str:
    if is_missing(value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_seconds(value: Any) -> str:
    if is_missing(value):
        return "–"
    value = float(value)
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def fmt_value(row: pd.Series | dict[str, Any], col: str) -> str:
    """``0.812 [0.765, 0.856]`` for a metric with an interval, ``0.812`` otherwise."""
    value = row.get(col)
    if is_missing(value):
        return "–"
    if col == "seconds":
        return fmt_seconds(value)
    if col in ("params", "epochs_run", "rank") and isinstance(value, float):
        return f"{int(value):,}" if col == "params" else str(int(value))
    if col == "params" and isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        text = f"{value:.3f}"
        lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
        if col in CI_COLUMNS and isinstance(lo, float) and not math.isnan(lo):
            text += f" [{lo:.3f}, {hi:.3f}]"
        return text
    return str(value)


def sort_key(row: pd.Series | dict[str, Any], col: str) -> str:
    """The raw value the browser sorts a column by (numbers as numbers, empty last)."""
    value = row.get(col)
    if is_missing(value) or col in TEXT_COLUMNS:
        return ""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return ""


def shown_rows(frame: pd.DataFrame, top: int) -> pd.DataFrame:
    """The top ``top`` rows, plus any reference run or ensemble ranked below them and, where
    no search trial is among the top, the best one (the one the headline names)."""
    if frame.empty:
        return frame
    extra = frame.iloc[top:]
    marked = [c for c in ("reference", "ensemble") if c in frame]
    if not marked:
        return frame.head(top)
    derived = extra[marked].fillna(False).astype(bool).any(axis=1)
    if not (~frame.head(top)[marked].fillna(False).astype(bool).any(axis=1)).any():
        trials = extra[~derived & (extra["status"] == "completed")]
        derived |= extra.index.isin(trials.index[:1])
    return pd.concat([frame.head(top), extra[derived]])


def table_rows(frame: pd.DataFrame, top: int) -> list[dict[str, Any]]:
    """The HTML table's rows: ``shown_rows``, formatted."""
    if frame.empty:
        return []
    shown = shown_rows(frame, top)
    rows = []
    for _, r in shown.iterrows():
        reference = flag(r, "reference")
        ensemble = flag(r, "ensemble")
        status = str(r.get("status"))
        css = (_css_word(status), "reference" if reference else "", "ensemble" if ensemble else "")
        cells = [(fmt_value(r, col), sort_key(r, col)) for col, _ in HTML_COLUMNS]
        if reference:  # not chosen on validation: the classroom's fixed 0.5
            at = [col for col, _ in HTML_COLUMNS].index("threshold")
            cells[at] = (cells[at][0] + " (fixed)", cells[at][1])
        rows.append({
            "cells": cells,
            "status": status,
            "reference": reference,
            "ensemble": ensemble,
            "pretrained": flag(r, "pretrained"),  # NaN (an unfinished row): no
            "css": " ".join(c for c in css if c),
            "message": r.get("message") if isinstance(r.get("message"), str) else "",
        })
    return rows


def _css_word(text: str) -> str:
    """A class name from a status (``failed``, ``unfinished``), letters only."""
    return re.sub(r"[^a-z]", "", text.split(" ")[0].lower())
