"""``--format md``: a Markdown summary to paste into an issue or a paper draft.

One table (the top trials) and short lines around it: the winner with its intervals,
the policy effects, McNemar's verdict, provenance; then the shortcut guard (the
Grad-CAM focus on the lung field and the shortcut check, each a small table where the
model and data were available, otherwise the note saying why not). Every name is HTML-escaped (issue
trackers render inline HTML) and pipes in cells are escaped.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from ..leaderboard import flag, row_kinds
from .tables import TABLE_COLUMNS, fmt_value, shown_rows

STATUS_CELL = [col for col, _ in TABLE_COLUMNS].index("status")


def _text(value: Any) -> str:
    return html.escape(str(value), quote=False)  # outside attributes: "seed's", not &#x27;


def markdown_summary(frame: pd.DataFrame, top: int, context: dict[str, Any] | None = None) -> str:
    context = context or {}
    lines = [f"# autopneumo leaderboard ({row_kinds(frame)}, ranked by validation)", ""]
    lines += [f"> Not comparable: {line}." for line in context.get("mixed", [])]
    lines += [f"> Skipped unreadable record: {_text(line)}" for line in context.get("skipped", [])]
    lines += [""] if context.get("mixed") or context.get("skipped") else []
    headline = context.get("headline")
    if headline:
        metrics = ", ".join(f"{label} {value}" for label, value in headline["metrics"])
        lines += [
            f"**Best by validation:** {_text(headline['name'])}, validation precision at recall "
            f">= {headline['target']}: {headline['val']}.",
            "",
            f"- Test set at its validation threshold {headline['threshold']} "
            f"(95 % bootstrap intervals over {headline.get('ci_over', 'images')}): {metrics}.",
        ]
        for row in headline["comparison"][1:]:
            if row.get("ensemble"):  # kind: "ensemble: mean of ..."
                what = f"{_text(row['name'])} ({_text(row['kind'].removeprefix('ensemble: '))})"
            elif row.get("retrained"):
                what = f"{_text(row['name'])}, {_text(row['kind'])}"
            else:
                what = f"Reference run {_text(row['name'])}"
                if "deviating" in str(row.get("kind")):
                    what += f" ({_text(row['kind'].removeprefix('reference run, '))})"
            lines.append(f"- {what}: precision {row['precision']}, "
                         f"recall {row['recall']}, accuracy {row['accuracy']}, AUC {row['AUC']}.")
        classroom = "; ".join(f"{r['name']}: precision {r['precision']}, recall {r['recall']}, "
                              f"accuracy {r['accuracy']}" for r in headline["classroom"])
        lines.append(f"- Classroom study as published ({headline['classroom_setup']}): "
                     f"{classroom}.")
        if headline.get("prevalence"):
            prev = headline["prevalence"]
            at = "; ".join(f"{r['prevalence']}: {r['precision']} / {r['npv']}" for r in prev["rows"])
            lines.append(f"- Precision and NPV depend on how common pneumonia is ({prev['positives']}"
                         f" of {prev['n']} test images, {prev['share']}); with the same test recall "
                         f"and specificity, precision / NPV at other shares: {at}.")
        if headline.get("runner_up"):
            r = headline["runner_up"]
            lines.append(f"- Runner-up: {_text(r['name'])} (validation {r['val']}); gap "
                         f"{r['val_gap']} on validation, {r['test_gap']} in test precision.")
    notes = context.get("notes") or {}
    for section in ("headline", "curves", "families"):  # why a model or pair is left out
        lines += [f"- Note: {_text(t)}" for t in notes.get(section, [])]
    significance = context.get("significance")
    if significance:
        lines.append(f"- {_text(significance['sentence'])}")
    calibrated = ((context.get("curves") or {}).get("calibration") or [None])[0]
    if calibrated:
        c = calibrated
        lines.append(f"- Calibration of {_text(c['model'])}: test Brier {c['test_brier']}, "
                     f"ECE {c['test_ece']} (validation {c['val_brier']}, {c['val_ece']}); mean "
                     f"test probability {c['test_mean_probability']} against a pneumonia share "
                     f"of {c['test_pneumonia_share']} (calibration.csv).")
    for e in (context.get("families") or {}).get("effects", []):
        lines.append(f"- {_text(e['family'])}: {_text(e['policy'])} vs none, test precision "
                     f"{e['precision']} ({e['precision_verdict']}), AUC {e['auc']} "
                     f"({e['auc_verdict']}), {e['n']} paired test images.")
    if not headline and "status" in frame and len(frame):
        failed = frame[frame["status"] == "failed"]
        others = int((frame["status"] == "completed").sum())  # references, ensembles
        lines.append(f"No completed {'search ' if others else ''}trial yet" + (
            f" ({others} completed reference run(s) or ensemble(s), in the table)"
            if others else "") + f"; {len(failed)} failed" + (
            f" (the first: {_text(failed['message'].dropna().iloc[0])})"
            if len(failed) and failed["message"].notna().any() else "") + ".")
    if len(lines) > 2:
        lines.append("")
    header = [label for _, label in TABLE_COLUMNS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    shown = shown_rows(frame, top)  # the HTML's rule: references, ensembles, the best trial
    for _, row in shown.iterrows():
        cells = [fmt_value(row, col).replace("|", "\\|") for col, _ in TABLE_COLUMNS]
        for mark, word in (("reference", "reference"), ("ensemble", "ensemble")):
            if flag(row, mark):  # NaN (an unfinished row): neither
                cells[STATUS_CELL] += f" ({word})"
        lines.append("| " + " | ".join(_text(c) for c in cells) + " |")
    if len(shown) < len(frame):
        lines += ["", f"{len(shown)} of {len(frame)} rows: the top {top}, and the reference "
                      "runs, ensembles and best search trial ranked below them."]
    provenance = context.get("provenance")
    if provenance:
        lines.append("")
        for label, values in provenance["items"]:
            lines.append(f"- {label}: " + "; ".join(_text(v) for v in values))
    if headline:
        lines += _shortcut_guard(context)
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return _text(value).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _shortcut_guard(context: dict[str, Any]) -> list[str]:
    """Grad-CAM focus and the shortcut check: tables where computed, else the notes."""
    notes = context.get("notes") or {}
    lines = ["", "## Shortcut guard", ""]
    g = context.get("gradcam") or {}
    if not g.get("focus"):
        lines += ["### Grad-CAM focus on the lung field", ""]
    for focus in (g.get("focus"), g.get("occlusion")):
        if not focus:
            continue
        what = (f"layer `{_text(focus['where'])}`" if focus["method"] == "Grad-CAM"
                else f"{_text(focus['where'])} of greyed-out cells")
        if lines[-1]:
            lines.append("")
        lines += [f"### {focus['method']} focus on the lung field", "",
                  f"**{_text(focus['sentence'])}**", "",
                  f"{_text(g['model'])}, {what}, threshold {g['threshold']}: "
                  f"share of the evidence inside the central box ({_text(focus['box'])}) on "
                  f"{focus['n']} test images; a uniform map gives {focus['uniform']} (the box's "
                  f"area). Inside when every class's median is >= {focus['margin']} above it.", ""]
        lines += _table(["true class", "images", "median share in box", "IQR (Q1-Q3)",
                         "uniform share", "empty maps"],
                        [[r["true_class"], r["n"], r["median"], r["iqr"], r["uniform"], r["empty"]]
                         for r in focus["rows"]])
    lines += [f"- {_text(t)}" for t in notes.get("gradcam", []) if "overlays" not in t]
    lines += ["", "### Shortcut check", ""]
    shortcuts = context.get("shortcuts")
    if shortcuts:
        lines += [f"**{_text(shortcuts['sentence'])}**", "",
                  f"Logistic regression per feature group, fitted on train + val "
                  f"({shortcuts['n_train']} images), test AUC ({shortcuts['n_test']} images) with a "
                  f"95 % bootstrap interval; >= {shortcuts['threshold']} flags a shortcut risk.", ""]
        lines += _table(["feature group", "features", "test AUC [95 % CI]",
                         "shift (train vs test AUC)", "verdict"],
                        [[r["group"], r["features"], r["auc"], r["shift"], r["verdict"]]
                         for r in shortcuts["rows"]])
    lines += [f"- {_text(t)}" for t in notes.get("shortcuts", [])]
    return lines
