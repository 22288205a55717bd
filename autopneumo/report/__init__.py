"""``write_report``: leaderboard.csv, a self-contained index.html and figures/*.png."""

from __future__ import annotations

import base64
import html
import io
import math
import time
from pathlib import Path

import pandas as pd

from ..atomic import atomic_write_bytes, atomic_write_text
from ..leaderboard import leaderboard

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_csv(frame: pd.DataFrame) -> str:
    """CSV text where no text cell can run as a spreadsheet formula."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            )
    return out.to_csv(index=False)


def write_report(runs_dir: str | Path = "runs", out: str | Path = "reports", fmt: str = "html",
                 top: int = 25) -> list[Path]:
    """Render the leaderboard of ``runs_dir`` into ``out``; returns the files written."""
    out = Path(out)
    frame = leaderboard(runs_dir)
    written = [atomic_write_text(out / "leaderboard.csv", safe_csv(frame))]
    if fmt == "md":
        written.append(atomic_write_text(out / "summary.md", markdown_summary(frame, top)))
        return written
    figures = {}
    heatmap = family_policy_heatmap(frame)
    if heatmap is not None:
        written.append(atomic_write_bytes(out / "figures" / "family_policy.png", heatmap))
        figures["family_policy"] = base64.b64encode(heatmap).decode("ascii")
    page = render_html(frame, figures, top)
    written.append(atomic_write_text(out / "index.html", page))
    return written


TABLE_COLUMNS = [
    ("rank", "#"), ("family", "family"), ("policy", "policy"), ("trial_id", "trial"),
    ("status", "status"), ("val_prec_at_recall", "val precision@recall"),
    ("val_auc", "val AUC"), ("threshold", "threshold"),
    ("test_precision", "test precision"), ("test_recall", "test recall"),
    ("test_accuracy", "test accuracy"), ("test_auc", "test AUC"),
    ("test_specificity", "test specificity"), ("test_loss", "test loss"),
]
CI_COLUMNS = {"test_precision", "test_recall", "test_accuracy", "test_auc", "test_specificity"}


def fmt_value(row: pd.Series, col: str) -> str:
    value = row.get(col)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        text = f"{value:.3f}"
        lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
        if col in CI_COLUMNS and isinstance(lo, float) and not math.isnan(lo):
            text += f" [{lo:.3f}, {hi:.3f}]"
        return text
    return str(value)


def family_policy_heatmap(frame: pd.DataFrame) -> bytes | None:
    """Best test precision at the validation threshold per family x policy (seaborn)."""
    done = frame[frame.get("status", pd.Series(dtype=str)) == "completed"] if len(frame) else frame
    if done.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    # the best trial of each project by validation, then its test precision
    best = done.sort_values("val_objective", ascending=False).groupby(["family", "policy"]).head(1)
    table = best.pivot(index="family", columns="policy", values="test_precision")
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * table.shape[1], 1.2 + 0.7 * table.shape[0]))
    sns.heatmap(table, annot=True, fmt=".3f", cmap="viridis", vmin=0.5, vmax=1.0, ax=ax,
                cbar_kws={"label": "test precision"})
    ax.set_title("Best configuration (by validation) per family x policy:\n"
                 "test precision at its validation threshold", fontsize=9)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def render_html(frame: pd.DataFrame, figures: dict[str, str], top: int) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("autopneumo.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    rows = [{col: fmt_value(r, col) for col, _ in TABLE_COLUMNS} | {"_status": r.get("status")}
            for _, r in frame.head(top).iterrows()]
    completed = frame[frame["status"] == "completed"] if len(frame) else frame
    best = completed.iloc[0] if len(completed) else None
    headline = None
    if best is not None:
        headline = {
            "name": f"{best['family']} + {best['policy']} (trial {best['trial_id']})",
            "metrics": [(label, fmt_value(best, col)) for col, label in (
                ("test_precision", "precision"), ("test_recall", "recall"),
                ("test_accuracy", "accuracy"), ("test_auc", "AUC"),
                ("test_specificity", "specificity"))],
            "val": fmt_value(best, "val_prec_at_recall"),
            "target": best.get("recall_target"),
        }
    return env.get_template("index.html.j2").render(
        columns=TABLE_COLUMNS, rows=rows, n_trials=len(frame), n_completed=len(completed),
        top=top, headline=headline, figures=figures, skipped=frame.attrs.get("skipped", []),
        runs_dir=frame.attrs.get("runs_dir", ""), generated=time.strftime("%Y-%m-%d %H:%M"),
    )


def markdown_summary(frame: pd.DataFrame, top: int) -> str:
    lines = [f"# autopneumo leaderboard ({len(frame)} trials, ranked by validation)", ""]
    header = [label for _, label in TABLE_COLUMNS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for _, row in frame.head(top).iterrows():
        cells = [fmt_value(row, col).replace("|", "\\|") for col, _ in TABLE_COLUMNS]
        lines.append("| " + " | ".join(html.escape(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
