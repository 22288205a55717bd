"""``--format md``: a Markdown summary to paste into an issue or a paper draft.

One table (the top trials) and short lines around it: the winner with its intervals,
the policy effects, McNemar's verdict, provenance. Every name is HTML-escaped (issue
trackers render inline HTML) and pipes in cells are escaped.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from .tables import TABLE_COLUMNS, fmt_value


def _text(value: Any) -> str:
    return html.escape(str(value))


def markdown_summary(frame: pd.DataFrame, top: int, context: dict[str, Any] | None = None) -> str:
    context = context or {}
    lines = [f"# autopneumo leaderboard ({len(frame)} trials, ranked by validation)", ""]
    headline = context.get("headline")
    if headline:
        metrics = ", ".join(f"{label} {value}" for label, value in headline["metrics"])
        lines += [
            f"**Best by validation:** {_text(headline['name'])}, validation precision at recall "
            f">= {headline['target']}: {headline['val']}.",
            "",
            f"- Test set at its validation threshold {headline['threshold']} "
            f"(95 % bootstrap intervals): {metrics}.",
        ]
        for row in headline["comparison"][1:]:
            what = (f"Ensemble ({_text(row['kind'])})" if row.get("ensemble")
                    else "Reference run")
            lines.append(f"- {what} {_text(row['name'])}: precision {row['precision']}, "
                         f"recall {row['recall']}, accuracy {row['accuracy']}.")
        classroom = "; ".join(f"{r['name']}: precision {r['precision']}, recall {r['recall']}, "
                              f"accuracy {r['accuracy']}" for r in headline["classroom"])
        lines.append(f"- Classroom study as published ({headline['classroom_setup']}): "
                     f"{classroom}.")
        if headline.get("runner_up"):
            r = headline["runner_up"]
            lines.append(f"- Runner-up: {_text(r['name'])} (validation {r['val']}); gap "
                         f"{r['val_gap']} on validation, {r['test_gap']} in test precision.")
    significance = context.get("significance")
    if significance:
        lines.append(f"- {_text(significance['sentence'])}")
    for e in (context.get("families") or {}).get("effects", []):
        lines.append(f"- {_text(e['family'])}: {_text(e['policy'])} vs none, test precision "
                     f"{e['precision']} ({e['precision_verdict']}), AUC {e['auc']} "
                     f"({e['auc_verdict']}), {e['n']} paired test images.")
    if len(lines) > 2:
        lines.append("")
    header = [label for _, label in TABLE_COLUMNS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for _, row in frame.head(top).iterrows():
        cells = [fmt_value(row, col).replace("|", "\\|") for col, _ in TABLE_COLUMNS]
        lines.append("| " + " | ".join(html.escape(c) for c in cells) + " |")
    provenance = context.get("provenance")
    if provenance:
        lines.append("")
        for label, values in provenance["items"]:
            lines.append(f"- {label}: " + "; ".join(_text(v) for v in values))
    return "\n".join(lines) + "\n"
