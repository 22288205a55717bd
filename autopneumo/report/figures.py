"""The report's figures that show numbers, not pixels: one function per figure, each
returning PNG bytes (or ``None`` when there is nothing to draw).

Figures are drawn on ``matplotlib.figure.Figure`` objects directly (Agg canvas, no
pyplot), so making a report never changes a caller's backend or global figure state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from ..objective import Calibration
from .runs import ScoredModel
from .stats import Difference, HyperparameterEffect, curve, value_label

DPI = 100
RC = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7,
      "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False,
      "axes.spines.right": False}
METRICS = (("loss", "loss"), ("accuracy", "accuracy"), ("precision", "precision"),
           ("recall", "recall"))


def shorten(text: Any, width: int) -> str:
    text = str(text)
    return text[: width - 1] + "…" if len(text) > width else text


def plain(text: Any, width: int = 48) -> str:
    """A label for matplotlib: ``$`` would start mathtext (and can raise), so escape it;
    long names are shortened so a figure keeps its layout."""
    return shorten(text, width).replace("$", r"\$")


@contextmanager
def figure(width: float, height: float, left: float = 0.65, right: float = 0.2,
           bottom: float = 0.5, top: float = 0.4, wspace: float = 0.3,
           hspace: float = 0.5) -> Iterator[Any]:
    """A figure with fixed margins in inches (``left`` .. ``top``).

    Fixed margins, not a layout engine: constrained or tight layout doubles the drawing
    time, and a report over a thousand trials has a time budget.
    """
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), dpi=DPI)
        fig.subplots_adjust(left=min(left / width, 0.45), right=1 - min(right / width, 0.45),
                            bottom=min(bottom / height, 0.45), top=1 - min(top / height, 0.45),
                            wspace=wspace, hspace=hspace)
        yield fig


def to_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def colors(n: int) -> list:
    """Distinct colours (tab10, repeating past ten)."""
    from matplotlib import colormaps

    palette = list(colormaps["tab10"].colors)
    return [palette[i % len(palette)] for i in range(n)]


def heatmap(ax: Any, table: np.ndarray, fmt: str, cmap: str, vmin: float, vmax: float,
            xlabels: Sequence[str], ylabels: Sequence[str]) -> Any:
    """An annotated seaborn heatmap; returns its mappable for a colorbar."""
    import seaborn as sns

    data = pd.DataFrame(np.asarray(table, dtype=float), index=list(ylabels),
                        columns=list(xlabels))
    labels = data.map(lambda v: "" if not np.isfinite(v) else
                      (str(int(v)) if fmt == "d" else format(v, fmt)))
    sns.heatmap(data, annot=labels.to_numpy(), fmt="", cmap=cmap, vmin=vmin, vmax=vmax,
                cbar=False, ax=ax, annot_kws={"fontsize": 8})
    ax.tick_params(length=0)
    return ax.collections[0]


def family_policy_heatmap(frame: pd.DataFrame) -> bytes | None:
    """Best configuration (by validation) per family x policy: its test precision at its
    validation threshold. Reference runs, ensembles and unfinished trials are left out."""
    if frame.empty or "status" not in frame:
        return None
    done = frame[frame["status"] == "completed"]
    if "reference" in done:
        done = done[~done["reference"].astype(bool)]
    if "ensemble" in done:
        done = done[~done["ensemble"].astype(bool)]
    done = done[done["val_objective"].notna()]
    if done.empty:
        return None
    best = done.sort_values("val_objective", ascending=False, kind="mergesort")
    best = best.groupby(["family", "policy"]).head(1)
    table = best.pivot(index="family", columns="policy", values="test_precision")
    values = table.to_numpy(dtype=float)
    low = np.nanmin(values) if np.isfinite(values).any() else 0.5
    with figure(3.9 + 1.1 * table.shape[1], 1.5 + 0.5 * table.shape[0], left=1.8, bottom=0.75,
                top=0.55, right=0.8) as fig:
        ax = fig.subplots()
        image = heatmap(ax, values, ".3f", "viridis", min(0.5, math.floor(low * 10) / 10), 1.0,
                        [plain(c, 18) for c in table.columns], [plain(i, 24) for i in table.index])
        bar = fig.colorbar(image, ax=ax, fraction=0.08, pad=0.03)
        bar.set_label("test precision")
        ax.set_xlabel("augmentation policy")
        ax.set_ylabel("model family")
        ax.set_title("Best configuration (by validation) per family x policy:\n"
                     "test precision at its validation threshold")
        return to_png(fig)


def policy_effects_plot(effects: Sequence[dict[str, Any]]) -> bytes | None:
    """Forest plot: per family, each policy minus ``none`` (test precision and AUC)."""
    if not effects:
        return None
    labels = [plain(f"{e['family']}: {e['policy']} − none", 40) for e in effects]
    with figure(8.0, 1.2 + 0.35 * len(effects), left=2.4, bottom=0.55, top=0.35,
                wspace=0.12) as fig:
        axes = fig.subplots(1, 2, sharey=True)
        for ax, metric, title in zip(axes, ("precision", "auc"),
                                     ("Δ test precision (at validation thresholds)", "Δ test AUC"),
                                     strict=True):
            diffs: list[Difference] = [e[metric] for e in effects]
            for y, d in enumerate(diffs):
                tone = {"better": "#2a7", "worse": "#c33"}.get(d.verdict, "#555")
                if math.isfinite(d.lo) and math.isfinite(d.hi):
                    ax.plot([d.lo, d.hi], [y, y], color=tone, lw=1.5)
                ax.plot([d.value], [y], "o", color=tone, ms=5)
            ax.axvline(0, color="#999", lw=0.8, ls="--")
            ax.set_yticks(np.arange(len(diffs)), labels)
            ax.invert_yaxis()
            ax.set_title(title)
            ax.set_xlabel("policy − none, 95 % paired bootstrap interval")
        return to_png(fig)


def roc_plot(models: Sequence[ScoredModel], target: float | None) -> bytes | None:
    """ROC curves of the top models; each model's operating point at its validation
    threshold, and the recall target as a horizontal line."""
    if not models:
        return None
    with figure(5.0, 4.2) as fig:
        ax = fig.subplots()
        for model, color in zip(models, colors(len(models)), strict=True):
            y, s = model.test.label, model.test.probability
            if 0 < y.sum() < len(y):
                c = curve(y, s)
                ax.plot(np.r_[0.0, c.fpr], np.r_[0.0, c.tpr], color=color, lw=1.2,
                        label=plain(f"#{model.rank} {model.label}"))
                point = _operating_point(model)
                ax.plot(point["fpr"], point["recall"], "o", color=color, ms=6, mec="k")
        if target is not None:
            ax.axhline(target, color="#c33", ls=":", lw=1, label=f"recall target {target:g}")
        ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, ls="--")
        ax.set_xlabel("false positive rate (1 − specificity)")
        ax.set_ylabel("true positive rate (recall)")
        ax.set_title("ROC on the test split (dots: validation-chosen thresholds)")
        ax.legend(loc="lower right")
        return to_png(fig)


def pr_plot(models: Sequence[ScoredModel], target: float | None) -> bytes | None:
    """Precision-recall curves; the recall target as a vertical line, operating points."""
    if not models:
        return None
    with figure(5.0, 4.2) as fig:
        ax = fig.subplots()
        for model, color in zip(models, colors(len(models)), strict=True):
            y, s = model.test.label, model.test.probability
            if y.sum() > 0:
                c = curve(y, s)
                ax.plot(np.r_[0.0, c.tpr], np.r_[1.0, c.precision], color=color, lw=1.2,
                        label=plain(f"#{model.rank} {model.label}"))
                point = _operating_point(model)
                ax.plot(point["recall"], point["precision"], "o", color=color, ms=6, mec="k")
        if target is not None:
            ax.axvline(target, color="#c33", ls=":", lw=1, label=f"recall target {target:g}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_ylim(0, 1.02)
        ax.set_title("Precision-recall on the test split (dots: validation thresholds)")
        ax.legend(loc="lower left")
        return to_png(fig)


def _operating_point(model: ScoredModel) -> dict[str, float]:
    y = model.test.label.astype(bool)
    pred = model.predicted
    tp, fp = np.sum(pred & y), np.sum(pred & ~y)
    fn, tn = np.sum(~pred & y), np.sum(~pred & ~y)
    return {"recall": tp / max(tp + fn, 1), "fpr": fp / max(fp + tn, 1),
            "precision": tp / (tp + fp) if tp + fp else math.nan}


def confusion_plot(models: Sequence[ScoredModel], confusions: Sequence[Any]) -> bytes | None:
    """One 2x2 confusion matrix per top model at its validation threshold."""
    if not models:
        return None
    with figure(2.3 * len(models) + 1.0, 2.7, left=0.95, bottom=0.55, top=0.5, right=0.1,
                wspace=0.12) as fig:
        axes = np.atleast_1d(fig.subplots(1, len(models)))
        for k, (ax, model, c) in enumerate(zip(axes, models, confusions, strict=True)):
            table = np.array([[c.tn, c.fp], [c.fn, c.tp]])
            heatmap(ax, table, "d", "Blues", 0, max(table.max(), 1), ["NORMAL", "PNEUMONIA"],
                    ["NORMAL", "PNEUMONIA"] if k == 0 else ["", ""])
            ax.set_xlabel("predicted")
            if k == 0:
                ax.set_ylabel("true")
            ax.set_title(f"{plain(f'#{model.rank} {model.label}', 30)}\n"
                         f"threshold {model.threshold:.3f}", fontsize=7)
        return to_png(fig)


def calibration_plot(models: Sequence[ScoredModel],
                     calibrations: Sequence[Calibration]) -> bytes | None:
    """Reliability diagram on the test split: per top model, the share of pneumonia images
    against the mean probability in each tenth of [0, 1] (marker area: images in the bin)."""
    if not models:
        return None
    with figure(5.0, 4.2) as fig:
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, ls="--", label="calibrated")
        for model, cal, color in zip(models, calibrations, colors(len(models)), strict=True):
            if len(cal.bins):
                ax.plot(cal.bins.predicted, cal.bins.observed, color=color, lw=1.0, alpha=0.8,
                        label=plain(f"#{model.rank} {model.label}"))
                ax.scatter(cal.bins.predicted, cal.bins.observed, s=6 + 60 * np.sqrt(
                    cal.bins.n / max(cal.bins.n.max(), 1)), color=color, edgecolors="k",
                    linewidths=0.4, zorder=3)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("mean predicted probability in the bin")
        ax.set_ylabel("share of pneumonia images in the bin")
        ax.set_title("Calibration on the test split (10 equal-width bins)")
        ax.legend(loc="upper left")
        return to_png(fig)


def training_curves_plot(models: Sequence[ScoredModel]) -> bytes | None:
    """Loss, accuracy, precision, recall per epoch for the top models, train (solid) vs
    validation (dashed), as the classroom notebooks plot them; a ring marks the best
    epoch (the weights that were kept)."""
    rows = [m for m in models if isinstance(m.record.get("history"), dict) and m.record["history"]]
    if not rows:
        return None
    with figure(10.0, 3.2, left=0.5, bottom=1.0, top=0.3, right=0.1, wspace=0.28) as fig:
        axes = fig.subplots(1, len(METRICS))
        for model, color in zip(rows, colors(len(rows)), strict=True):
            history = model.record["history"]
            best = model.record.get("best_epoch")
            for ax, (key, _) in zip(axes, METRICS, strict=True):
                for name, style in ((key, "-"), (f"val_{key}", "--")):
                    values = _floats(history.get(name))
                    if values:
                        ax.plot(range(1, len(values) + 1), values, style, color=color, lw=1.2)
                        if name.startswith("val_") and _epoch(best, len(values)):
                            ax.plot([best], [values[best - 1]], "o", ms=6, mfc="none", color=color)
        for ax, (_, title) in zip(axes, METRICS, strict=True):
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=c, lw=1.5, label=plain(f"#{m.rank} {m.label}", 40))
                   for m, c in zip(rows, colors(len(rows)), strict=True)]
        handles += [Line2D([], [], color="#444", ls="-", label="train"),
                    Line2D([], [], color="#444", ls="--", label="validation"),
                    Line2D([], [], color="#444", ls="", marker="o", mfc="none", label="best epoch")]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), frameon=False)
        return to_png(fig)


def _epoch(best: Any, epochs: int) -> bool:
    return isinstance(best, int) and 0 < best <= epochs


def _floats(values: Any) -> list[float]:
    if not isinstance(values, list):
        return []
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def tuning_history_plot(history: pd.DataFrame) -> bytes | None:
    """Validation objective per trial in the order trials ran, one panel line per project,
    with each project's best-so-far as a step line.

    ``history`` has columns project, order (trial number within project), objective.
    """
    if history.empty:
        return None
    projects = list(dict.fromkeys(history["project"]))
    with figure(8.0, 3.4) as fig:
        ax = fig.subplots()
        for project, color in zip(projects, colors(len(projects)), strict=True):
            part = history[history["project"] == project].sort_values("order")
            label = plain(project, 32) if len(projects) <= 12 else None
            ax.scatter(part["order"], part["objective"], color=color, s=10, alpha=0.6)
            ax.step(part["order"], part["objective"].cummax(), where="post", color=color,
                    lw=1.2, label=label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("trial (in the order it ran, per project)")
        ax.set_ylabel("validation objective")
        ax.set_title("Tuning history: dots are trials, lines the best so far")
        if len(projects) <= 12:
            ax.legend(loc="lower right", ncol=2)
        return to_png(fig)


def hyperparameter_plot(frame: pd.DataFrame, effects: Sequence[HyperparameterEffect],
                        limit: int = 12) -> bytes | None:
    """Objective against each hyperparameter (dots per trial, coloured by family)."""
    effects = list(effects)[:limit]
    if not effects:
        return None
    families = list(dict.fromkeys(frame["family"].astype(str)))
    palette = dict(zip(families, colors(len(families)), strict=True))
    ncols = min(4, len(effects))
    nrows = math.ceil(len(effects) / ncols)
    with figure(2.5 * ncols + 0.6, 2.3 * nrows + 0.7, left=0.75, bottom=0.85, top=0.5,
                wspace=0.3, hspace=0.85) as fig:
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax, effect in zip(axes, effects, strict=False):
            col = f"hp:{effect.name}"
            part = frame[[col, "val_objective", "family"]].dropna()
            if effect.kind == "numeric":
                x = part[col].astype(float)
                if x.min() > 0 and x.max() / x.min() > 20:
                    ax.set_xscale("log")
                title = f"{plain(effect.name, 26)}\nSpearman ρ = {effect.spearman:+.2f}"
            else:
                cats = list(effect.by_value)
                index = {c: i for i, c in enumerate(cats)}
                labels = part[col].map(value_label)
                part = part[labels.isin(index)]
                jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(part))
                x = labels[labels.isin(index)].map(index).to_numpy(float) + jitter
                ax.set_xticks(range(len(cats)), [plain(c, 12) for c in cats], rotation=30)
                ax.set_xlim(-0.5, len(cats) - 0.5)
                title = f"{plain(effect.name, 26)}\nbest: {plain(effect.best_value, 16)}"
            ax.scatter(x, part["val_objective"], s=8, alpha=0.6,
                       c=[palette[str(f)] for f in part["family"]])
            ax.set_title(title)
        for ax in axes[len(effects):]:
            ax.set_visible(False)
        if len(families) > 1:
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], ls="", marker="o", color=palette[f], label=plain(f, 20))
                       for f in families[:10]]
            fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5),
                       frameon=False)
        fig.supylabel("validation objective", fontsize=8, x=0.01)
        return to_png(fig)


def data_counts_plot(counts: dict[str, dict[str, int]]) -> bytes | None:
    """Images per split and class (bars), from the record's data manifest."""
    rows = [(split, cls, int(c[cls])) for split, c in counts.items() if isinstance(c, dict)
            for cls in ("NORMAL", "PNEUMONIA") if isinstance(c.get(cls), int | float)]
    if not rows:
        return None
    splits = list(dict.fromkeys(r[0] for r in rows))
    with figure(5.0, 2.6, bottom=0.35) as fig:
        ax = fig.subplots()
        width = 0.38
        for i, (cls, color) in enumerate((("NORMAL", "#4c72b0"), ("PNEUMONIA", "#dd8452"))):
            values = [next((r[2] for r in rows if r[0] == s and r[1] == cls), 0) for s in splits]
            bars = ax.bar(np.arange(len(splits)) + (i - 0.5) * width, values, width,
                          label=cls, color=color)
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(range(len(splits)), [plain(s, 12) for s in splits])
        ax.set_ylabel("images")
        ax.set_title("Images per split and class")
        ax.legend()
        return to_png(fig)
