"""Assemble the report's sections, top to bottom, into one template context.

Each section is one method returning plain values for the template (and adding its
figures). A section that cannot be drawn (a missing prediction file, data folder or
model, an odd record) becomes a short note on the page; it never stops the report.
"""

from __future__ import annotations

import base64
import math
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..backend import predict_batches
from ..errors import AutopneumoNote, warn
from ..evaluation import MODEL_FILE
from ..leaderboard import data_hash_aliases
from ..objective import calibration
from . import figures as fig
from .runs import Runs, ScoredModel, as_dict, is_finite, model_label, scored_models
from .stats import (
    PREVALENCES,
    Difference,
    align,
    at_prevalence,
    confusion,
    hyperparameter_effects,
    mcnemar,
    paired_differences,
)
from .tables import HTML_COLUMNS, fmt_number, fmt_seconds, fmt_value, table_rows

# The classroom study's published numbers: official Kermany test set (624 images),
# 180 px, 10 epochs, class weights, Keras metrics as the notebooks report them.
CLASSROOM = (
    ("separable-conv CNN, no augmentation", "base_cnn", "none", 0.689, 0.668, 0.997, 1.609),
    ("same CNN + random horizontal flip", "base_cnn", "flip", 0.878, 0.865, 0.954, 0.408),
    ("ResNet18 from scratch", "resnet18", "none", 0.777, 0.925, 0.700, 0.752),
)
CLASSROOM_SETUP = "official test set, 624 images; 180 px, 10 epochs, class weights"
HEADLINE_METRICS = (("test_precision", "precision"), ("test_recall", "recall"),
                    ("test_accuracy", "accuracy"), ("test_auc", "AUC"),
                    ("test_specificity", "specificity"), ("test_npv", "NPV"))
RETRAINED_METRICS = (("precision", "precision"), ("recall", "recall"),
                     ("accuracy", "accuracy"), ("auc", "AUC"), ("specificity", "specificity"),
                     ("npv", "NPV"))
SECTIONS = ("headline", "leaderboard", "families", "curves", "training", "tuning", "data",
            "gradcam", "shortcuts", "significance", "provenance")
ALPHA = 0.05


@dataclass(frozen=True)
class Options:
    top: int = 25  # leaderboard rows in the HTML (all are in the CSV)
    curves: int = 5  # models in the ROC / PR / confusion figures
    training: int = 3  # models in the training-curve figure
    pixels: bool = True  # sample images, augmentation previews and Grad-CAM overlays
    n_boot: int = 1000
    seed: int = 0
    examples: int = 4  # Grad-CAM images per row (right, wrong)
    data: str | Path | None = None  # the best trial's data folder, where it moved to


class ReportBuilder:
    def __init__(self, runs: Runs, options: Options | None = None, draw: bool = True):
        self.runs = runs
        self.opt = options or Options()
        self.draw = draw
        self.figures: dict[str, bytes] = {}
        self.tables: dict[str, pd.DataFrame] = {}  # extra CSVs: *_focus, shortcuts
        self.notes: dict[str, list[str]] = {name: [] for name in SECTIONS}
        candidates = runs.candidates()
        self.best = candidates.iloc[0] if len(candidates) else None
        self._top: list[ScoredModel] | None = None
        self._dataset: Any = None
        self._dataset_tried = False

    # --- plumbing ---------------------------------------------------------------------

    def note(self, section: str, text: str) -> None:
        self.notes[section].append(text)

    def add_figure(self, name: str, draw: Any, *args: Any) -> bool:
        """Draw one figure (skipped when the builder only gathers numbers)."""
        if not self.draw:
            return False
        png = draw(*args)
        if png:
            self.figures[name] = png
        return bool(png)

    def guarded(self, section: str) -> Any:
        try:
            return getattr(self, f"section_{section}")()
        except Exception as exc:  # a report always renders; the note says what is missing
            self.note(section, f"This section could not be drawn: {_one_line(exc)}")
            return None

    def context(self, sections: tuple[str, ...] = SECTIONS) -> dict[str, Any]:
        start = time.perf_counter()
        drawn = {name: self.guarded(name) if name in sections else None for name in SECTIONS}
        frame = self.runs.frame
        return {
            **drawn,
            "n_trials": len(frame),
            "n_completed": len(self.runs.completed()),
            "n_candidates": len(self.runs.candidates()),
            "top": self.opt.top,
            "pixels": self.opt.pixels,
            "figures": {k: base64.b64encode(v).decode("ascii") for k, v in self.figures.items()},
            "notes": self.notes,
            "skipped": frame.attrs.get("skipped", []),
            "mixed": frame.attrs.get("mixed", []),
            "runs_dir": self.runs.runs_dir,
            "generated": time.strftime("%Y-%m-%d %H:%M"),
            "build_seconds": time.perf_counter() - start,
            "version": __version__,
        }

    def top_models(self) -> list[ScoredModel]:
        if self._top is None:
            self._top, notes = scored_models(self.runs, max(self.opt.curves, 2))
            for text in notes:
                self.note("curves", text)
        return self._top

    def dataset(self) -> Any:
        """The best trial's data set, loaded once (``None`` with a note when unavailable)."""
        if not self._dataset_tried:
            self._dataset_tried = True
            from .pixels import load_record_data

            try:
                self._dataset, notes = load_record_data(self.runs.record(self.best),
                                                        self.opt.data)
            except Exception as exc:
                self._dataset, notes = None, [f"The data could not be loaded: {_one_line(exc)}"]
            for text in notes:
                self.note("data", text)
            if self._dataset is None and notes:  # the figures it costs are not silent
                lost = ("Grad-CAM, sample images or augmentation preview" if self.opt.pixels
                        else "Grad-CAM focus numbers")
                warn(f"{notes[0]} The report has no {lost}.", AutopneumoNote)
            elif notes:  # other contents than the record's: said where its numbers are shown
                for text in notes:
                    self.note("gradcam", text)
                warn(f"{notes[0]} The report's Grad-CAM, occlusion focus and shortcut check use "
                     "it.", AutopneumoNote)
        return self._dataset

    # --- 1. headline ------------------------------------------------------------------

    def section_headline(self) -> dict[str, Any] | None:
        best = self.best
        if best is None:
            return None
        target = best.get("recall_target")
        recall = best.get("test_recall")
        record = self.runs.record(best)
        comparison = [self._comparison_row(best, "this search: best by validation")]
        comparison += [self._comparison_row(r, _reference_kind(self.runs.record(r)))
                       for _, r in self.runs.references().iterrows()]
        comparison += [self._comparison_row(r, _ensemble_kind(self.runs.record(r)))
                       for _, r in self.runs.ensembles().iterrows()]
        comparison += self._retrained_rows()
        self._flag_flat_scores(best)
        self._flag_degenerate_intervals(best)
        label = model_label(best)
        retrained = [r for r in comparison if r.get("retrained") and r["name"] == label]
        if retrained:
            self.note("headline", f"{label} was picked for its validation score, which its seed's "
                                  "luck helps; its retrained row (" + retrained[0]["kind"] +
                                  f": precision {retrained[0]['precision']}, AUC "
                                  f"{retrained[0]['AUC']}) is the less optimistic estimate of "
                                  "this configuration.")
        out = {
            "name": f"{best['family']} + {best['policy']} (trial {best['trial_id']})",
            "family": best["family"], "policy": best["policy"],
            "target": f"{float(target):g}" if is_finite(target) else "–",  # as recorded
            "val": fmt_value(best, "val_prec_at_recall"),
            "threshold": fmt_number(best.get("threshold")),
            "metrics": [(label, fmt_value(best, col)) for col, label in HEADLINE_METRICS],
            "recall_met": is_finite(recall) and is_finite(target) and recall >= target - 1e-12,
            "test_best": fmt_number(best.get("test_prec_at_recall")),
            "n_test": as_dict(record.get("test")).get("n"),
            "n_test_patients": self._test_patients(best),
            "recall_lo": fmt_number(best.get("test_recall_lo")),
            "ci_over": record.get("test_ci_resampled") or "images",
            "comparison": comparison,
            "classroom": [{"name": name, "family": fam, "policy": pol,
                           "accuracy": f"{acc:.3f}", "precision": f"{prec:.3f}",
                           "recall": f"{rec:.3f}", "loss": f"{loss:.3f}"}
                          for name, fam, pol, acc, prec, rec, loss in CLASSROOM],
            "classroom_setup": CLASSROOM_SETUP,
            "prevalence": self._prevalence(as_dict(record.get("test"))),
            "runner_up": None,
        }
        candidates = self.runs.candidates()
        if len(candidates) > 1:
            second = candidates.iloc[1]
            out["runner_up"] = {
                "name": model_label(second),
                "val": fmt_value(second, "val_prec_at_recall"),
                "val_gap": _signed(best.get("val_prec_at_recall")
                                   - second.get("val_prec_at_recall")),
                "test_gap": _signed(best.get("test_precision") - second.get("test_precision")),
            }
        return out

    @staticmethod
    def _prevalence(test: dict[str, Any]) -> dict[str, Any] | None:
        """The test set's share of pneumonia images, and the precision and NPV the best
        model's test sensitivity and specificity would give at other shares."""
        try:
            tp, fp, tn, fn = (int(test[k]) for k in ("tp", "fp", "tn", "fn"))
        except (KeyError, TypeError, ValueError):
            return None
        positives, n = tp + fn, tp + fp + tn + fn
        if not positives or positives == n:
            return None  # one class only: no sensitivity or no specificity
        share, sensitivity, specificity = positives / n, tp / positives, tn / (tn + fp)
        rows = []
        for p in sorted({*PREVALENCES, share}):
            ppv, npv = at_prevalence(sensitivity, specificity, p)
            rows.append({"prevalence": f"{p:.1%} (this test set)" if p == share else f"{p:.0%}",
                         "precision": fmt_number(ppv), "npv": fmt_number(npv)})
        return {"positives": positives, "n": n, "share": f"{share:.1%}", "rows": rows}

    def _test_patients(self, best: pd.Series) -> int | None:
        pred = self.runs.predictions(best)
        return len(set(pred.patient)) if pred is not None else None

    def _flag_degenerate_intervals(self, best: pd.Series) -> None:
        """A percentile interval of zero width (every resample gave the same value: a
        perfect or null count) reads as certainty; it is not."""
        flat = [label for col, label in HEADLINE_METRICS
                if is_finite(best.get(f"{col}_lo")) and best.get(f"{col}_lo") == best.get(f"{col}_hi")]
        if flat:
            self.note("headline", f"The intervals of {', '.join(flat)} have zero width: every "
                                  "resample gave the same value (a count of 0 or all), which a "
                                  "percentile bootstrap cannot widen. It is not certainty; with "
                                  "few test patients the true value may be well away.")

    def _flag_flat_scores(self, best: pd.Series) -> None:
        """A best model whose test scores hardly vary (or whose loss is at chance level)
        owes its precision to a threshold inside a tiny score range: say so."""
        pred = self.runs.predictions(best)
        loss = best.get("test_loss")
        if pred is None or not len(pred.probability):
            return
        lo, hi = np.percentile(pred.probability, [5, 95])
        flat = hi - lo < 0.02
        chance = is_finite(loss) and loss >= math.log(2) - 1e-3
        if flat or chance:
            why = [f"90 % of its test scores lie between {lo:.4f} and {hi:.4f}"] if flat else []
            why += [f"its test loss {loss:.3f} is at or above chance level (ln 2 = 0.693)"] \
                if chance else []
            self.note("headline", f"The best model barely separates the images: {'; '.join(why)}."
                                  " Its numbers rest on where the threshold falls in that range "
                                  "and may not survive another scanner or a recalibration.")

    def _comparison_row(self, row: pd.Series, kind: str) -> dict[str, Any]:
        test = as_dict(self.runs.record(row).get("test"))
        return {"name": model_label(row), "kind": kind, "reference": bool(row.get("reference")),
                "ensemble": bool(row.get("ensemble")),
                "n": test.get("n", "–"),
                **{label: fmt_value(row, col) for col, label in HEADLINE_METRICS},
                "loss": fmt_number(row.get("test_loss"))}

    def _retrained_rows(self) -> list[dict[str, Any]]:
        """``finalize``'s results (``_finalize/summary.csv``): each configuration's test
        metrics over its seeds, mean ± standard deviation. Both CSVs go into the report."""
        folder = Path(self.runs.runs_dir) / "_finalize"
        if not (folder / "summary.csv").is_file():
            return []
        try:
            summary = pd.read_csv(folder / "summary.csv", dtype={"trial_id": str})
            seeds = pd.read_csv(folder / "runs.csv", dtype={"trial_id": str})
            rows = [self._retrained_row(r) for _, r in summary.iterrows()]
        except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
            self.note("headline", f"The retraining results in {folder} could not be read "
                                  f"({_one_line(exc)}).")
            return []
        self.tables["finalize_summary"], self.tables["finalize_runs"] = summary, seeds
        return rows

    def _retrained_row(self, r: pd.Series) -> dict[str, Any]:
        frame = self.runs.frame
        match = frame[(frame["project"].astype(str) == str(r["project"]))
                      & (frame["trial_id"].astype(str) == str(r["trial_id"]))]
        if len(match):  # the seeds scored the trial's test images (its data, as recorded)
            name = model_label(match.iloc[0])
            n = as_dict(self.runs.record(match.iloc[0]).get("test")).get("n", "–")
        else:
            name, n = f"{r['project']} (trial {r['trial_id']})", "–"
        seeds = int(r["seeds"])

        def spread(metric: str) -> str:
            mean, std = r.get(f"{metric}_mean"), r.get(f"{metric}_std")
            if not is_finite(mean):
                return "–"
            return f"{mean:.3f} ± {std:.3f}" if is_finite(std) else f"{mean:.3f}"

        return {"name": name, "retrained": True, "reference": False, "ensemble": False,
                "kind": f"retrained from scratch (finalize): mean ± sd over {seeds} seed"
                        + ("s" if seeds != 1 else ""),
                "n": n, **{label: spread(metric) for metric, label in RETRAINED_METRICS},
                "loss": spread("loss")}  # "–" for a summary.csv from before it had the loss

    # --- 2. leaderboard ---------------------------------------------------------------

    def section_leaderboard(self) -> dict[str, Any]:
        frame = self.runs.frame
        status = frame["status"].astype(str) if "status" in frame else pd.Series(dtype=str)
        return {
            "columns": HTML_COLUMNS,
            "rows": table_rows(frame, self.opt.top),
            "shown": min(self.opt.top, len(frame)),
            "failed": int((status == "failed").sum()),
            "unfinished": int(status.str.startswith("unfinished").sum()),
            "references": int(frame["reference"].astype(bool).sum()) if "reference" in frame else 0,
            "ensembles": int(frame["ensemble"].eq(True).sum()) if "ensemble" in frame else 0,
        }

    # --- 3. family x policy and the effect of each policy -----------------------------

    def section_families(self) -> dict[str, Any]:
        self.add_figure("family_policy", fig.family_policy_heatmap, self.runs.frame)
        effects = self._policy_effects()
        self.add_figure("policy_effects", fig.policy_effects_plot, effects)
        return {"effects": [_effect_row(e) for e in effects]}

    def _policy_effects(self) -> list[dict[str, Any]]:
        """Per family: the best trial of each policy against the best of ``none``."""
        runs, out = self.runs, []
        best = runs.best_per_project()
        if best.empty:
            return out
        for family, group in best.groupby("family", sort=False):
            base = group[group["policy"] == "none"]
            others = group[group["policy"] != "none"]
            if others.empty:
                continue
            if base.empty:
                self.note("families", f"{family}: no 'none' project, so no baseline to compare "
                                      "its policies against.")
                continue
            b = base.iloc[0]
            pb = runs.predictions(b)
            for _, a in others.iterrows():
                if not _same_target(a, b):
                    self.note("families", f"{model_label(a)} vs {model_label(b)}: thresholds "
                                          f"chosen for recall targets {a.get('recall_target')} "
                                          f"and {b.get('recall_target')}, so their precisions "
                                          "are at different operating points: not compared.")
                    continue
                pa = runs.predictions(a)
                pairs = align(pa, pb) if pa is not None and pb is not None else None
                if pairs is None:
                    self.note("families", f"{model_label(a)} vs {model_label(b)}: no common test "
                                          "predictions to compare.")
                    continue
                ia, ib = pairs
                diffs = paired_differences(pa.label[ia], pa.probability[ia], float(a["threshold"]),
                                           pb.probability[ib], float(b["threshold"]),
                                           n_boot=self.opt.n_boot, seed=self.opt.seed,
                                           groups=pa.patient[ia])
                out.append({"family": family, "policy": a["policy"], "a": model_label(a),
                            "b": model_label(b), "n": len(ia), **diffs})
        return out

    # --- 4. curves and confusion matrices ---------------------------------------------

    def section_curves(self) -> dict[str, Any] | None:
        models = self.top_models()[: self.opt.curves]
        if not models:
            return None
        target = self.best.get("recall_target") if self.best is not None else None
        target = float(target) if is_finite(target) else None
        self.add_figure("roc", fig.roc_plot, models, target)
        self.add_figure("precision_recall", fig.pr_plot, models, target)
        confusions = [confusion(m.test.label, m.test.probability, m.threshold) for m in models]
        self.add_figure("confusion", fig.confusion_plot, models, confusions)
        rows = []
        for m, c in zip(models, confusions, strict=True):
            rows.append({"rank": m.rank, "label": m.label, "threshold": f"{m.threshold:.3f}",
                         "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn, "n": c.n,
                         "precision": fmt_number(c.tp / (c.tp + c.fp) if c.tp + c.fp else None),
                         "recall": fmt_number(c.tp / (c.tp + c.fn) if c.tp + c.fn else None)})
        return {"rows": rows, "calibration": self._calibration(models)}

    def _calibration(self, models: list[ScoredModel]) -> list[dict[str, Any]]:
        """Brier score and expected calibration error on test and validation per top model
        (``calibration.csv``), and the test reliability diagram."""
        tests = [calibration(m.test.label, m.test.probability) for m in models]
        self.add_figure("calibration", fig.calibration_plot, models, tests)
        rows = []
        for m, test in zip(models, tests, strict=True):
            val_pred = self.runs.predictions(m.row, "val")
            val = calibration(val_pred.label, val_pred.probability) if val_pred is not None \
                else None
            rows.append({"rank": m.rank, "model": m.label,
                         "test_brier": test.brier, "test_ece": test.ece,
                         "test_mean_probability": test.mean_probability,
                         "test_pneumonia_share": test.observed,
                         "val_brier": val.brier if val else math.nan,
                         "val_ece": val.ece if val else math.nan,
                         "threshold": m.threshold})
        frame = pd.DataFrame(rows)
        if len(frame):
            self.tables["calibration"] = frame
        return [{k: (fmt_number(v) if isinstance(v, float) else v) for k, v in r.items()}
                for r in rows]

    # --- 5. training curves -----------------------------------------------------------

    def section_training(self) -> dict[str, Any] | None:
        models = self.top_models()[: self.opt.training]
        if not self.add_figure("training_curves", fig.training_curves_plot, models):
            if models and self.draw:
                self.note("training", "The top models' records hold no per-epoch history.")
            return None
        return {"models": [m.label for m in models]}

    # --- 6. tuning history and hyperparameters ----------------------------------------

    def section_tuning(self) -> dict[str, Any] | None:
        frame = self.runs.frame
        if frame.empty or "project" not in frame:
            return None
        cands = self.runs.candidates()
        scored = cands[cands["val_objective"] >= 0]
        if len(scored) < len(cands):
            self.note("tuning", f"{len(cands) - len(scored)} completed trial(s) never reached "
                                "the recall target on validation; they are left out of the plots.")
        self.add_figure("tuning_history", fig.tuning_history_plot, self._trial_order(scored))
        effects = hyperparameter_effects(scored)
        self.add_figure("hyperparameters", fig.hyperparameter_plot, scored, effects)
        searched = frame[~frame["ensemble"].eq(True)] if "ensemble" in frame else frame
        return {"projects": _project_rows(searched), "effects": [_hp_row(e) for e in effects]}

    def _trial_order(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Trial number within each project, in the order trials finished."""
        if frame.empty:
            return pd.DataFrame(columns=["project", "order", "objective"])
        finished = [str(self.runs.records.get(str(d), {}).get("finished_at") or "")
                    for d in frame["trial_dir"]]
        part = pd.DataFrame({"project": frame["project"].astype(str).to_numpy(),
                             "finished": finished,
                             "natural": [_natural(t) for t in frame["trial_id"]],
                             "objective": frame["val_objective"].to_numpy(float)})
        part = part.sort_values(["project", "finished", "natural"], kind="mergesort")
        part["order"] = part.groupby("project").cumcount() + 1
        return part

    # --- 7. data ----------------------------------------------------------------------

    def section_data(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        data = as_dict(self.runs.record(self.best).get("data"))
        counts = {k: v for k, v in as_dict(data.get("counts")).items() if isinstance(v, dict)}
        rows = [{"split": split, "normal": c.get("NORMAL", "–"),
                 "pneumonia": c.get("PNEUMONIA", "–"), "total": _total(c),
                 "patients": c.get("patients", "–")}
                for split, c in counts.items()]
        self.add_figure("data_counts", fig.data_counts_plot, counts)
        out = {"rows": rows, "path": data.get("path"), "image_size": data.get("image_size"),
               "channels": data.get("channels"), "source": data.get("source")}
        if not self.opt.pixels:
            self.note("data", "X-ray images are left out of this report (pixels=False).")
            return out
        dataset = self.dataset()
        if dataset is None:
            return out
        from .pixels import augment_previews, augmentation_plot, samples_plot

        self.add_figure("samples", samples_plot, dataset.train, 5, self.opt.seed)
        positives = np.flatnonzero(dataset.train.y == 1)
        pool = positives if len(positives) else np.arange(len(dataset.train))
        if len(pool):
            image = dataset.train.x[pool[np.random.default_rng(self.opt.seed).integers(len(pool))]]
            partners = dataset.train.x[np.random.default_rng(self.opt.seed + 1).choice(
                len(dataset.train), min(5, len(dataset.train)), replace=False)]
            previews, notes = augment_previews(image, self._policy_hyperparameters(), partners,
                                               seed=self.opt.seed)
            for text in notes:
                self.note("data", text)
            self.add_figure("augmentation", augmentation_plot, image, previews)
        return out

    def _policy_hyperparameters(self) -> dict[str, dict[str, Any]]:
        """Each policy in the runs with the hyperparameters of its best trial (none first)."""
        out: dict[str, dict[str, Any]] = {"none": {}}
        for _, row in self.runs.candidates().iterrows():
            hps = as_dict(self.runs.record(row).get("hyperparameters"))
            out.setdefault(str(row["policy"]), hps)
        return out

    # --- 8. Grad-CAM and the shortcut guard ------------------------------------------

    def section_gradcam(self) -> dict[str, Any] | None:
        """Where the best model looks: a focus table (numbers, shown with or without pixels)
        and, with pixels, overlays on its most confident right answers and mistakes."""
        if self.best is None:
            return None
        if not self.opt.pixels:
            self.note("gradcam", "Grad-CAM overlays are left out of this report (pixels=False); "
                                 "the focus numbers show no pixels and stay.")
        best, record = self.best, self.runs.record(self.best)
        model_file = as_dict(record.get("files")).get("model", MODEL_FILE)
        model_path = Path(str(best["trial_dir"])) / str(model_file)
        if not model_path.is_file():
            self.note("gradcam", f"The best model's file {model_path} is not available here, "
                                 "so there is no Grad-CAM.")
            return None
        dataset = self.dataset()
        if dataset is None:
            self.note("gradcam", "The data set is not available, so there is no Grad-CAM.")
            return None
        from .gradcam import last_conv_layer, load_model

        model = load_model(model_path)
        layer = last_conv_layer(model)
        if layer is None:
            self.note("gradcam", "The best model has no convolutional layer to explain.")
            return None
        test = dataset.test
        threshold = float(best["threshold"])
        out = {"model": model_label(best), "layer": layer.name, "threshold": f"{threshold:.3f}",
               "right": 0, "wrong": 0, "focus": None, "occlusion": None}
        from .gradcam import FOCUS_IMAGES, focus_sample

        idx = focus_sample(test.y, FOCUS_IMAGES, self.opt.seed)  # one sample for both checks
        if idx:
            out["focus"] = self._gradcam_focus(model, layer, test, threshold, idx)
            out["occlusion"] = self._occlusion_focus(model, test, threshold, idx)
        else:
            self.note("gradcam", "The test split is empty, so there is no Grad-CAM focus.")
        if self.opt.pixels and self.draw:
            out["right"], out["wrong"] = self._gradcam_overlays(model, layer, test, threshold)
        return out

    def _gradcam_focus(self, model: Any, layer: Any, test: Any, threshold: float,
                       idx: list[int]) -> dict[str, Any]:
        """The share of Grad-CAM mass inside the central lung-field box (also gradcam_focus.csv)."""
        from .gradcam import gradcam_focus

        labels = np.asarray(test.y)[idx].astype(int)
        rows, verdict, uniform = gradcam_focus(model, test.x[idx], labels, threshold, layer)
        return self._focus_block("gradcam_focus", "Grad-CAM", layer.name, rows, verdict,
                                 uniform, len(idx))

    def _occlusion_focus(self, model: Any, test: Any, threshold: float,
                         idx: list[int]) -> dict[str, Any]:
        """The same focus numbers from occlusion sensitivity (also occlusion_focus.csv)."""
        from .gradcam import OCCLUSION_GRID, occlusion_focus

        labels = np.asarray(test.y)[idx].astype(int)
        rows, verdict, uniform = occlusion_focus(model, test.x[idx], labels, threshold)
        return self._focus_block("occlusion_focus", "Occlusion",
                                 f"{OCCLUSION_GRID}x{OCCLUSION_GRID} grid", rows, verdict,
                                 uniform, len(idx))

    def _focus_block(self, table: str, method: str, where: str, rows: list[dict[str, Any]],
                     verdict: str, uniform: float, n: int) -> dict[str, Any]:
        from .gradcam import EMPTY, FOCUS_MARGIN, INSIDE, LUNG_BOX

        width, height = LUNG_BOX
        frame = pd.DataFrame(rows)
        frame.insert(0, "model", model_label(self.best))
        frame.insert(1, "method", method)
        frame.insert(2, "layer" if method == "Grad-CAM" else "cells", where)
        frame["box_width"], frame["box_height"] = width, height
        frame["verdict"] = verdict
        self.tables[table] = frame
        if verdict == EMPTY:
            sentence = f"{method}: {verdict}."
            if method != "Grad-CAM":
                sentence = (f"{method}: no verdict: greying out any one cell never lowers the "
                            "predicted class's score.")
        else:
            sentence = (f"{method}: {verdict} (median share in the box, each true class, "
                        f"against {uniform:.3f} for a uniform map).")
        return {
            "method": method, "where": where, "csv": f"{table}.csv",
            "key": table.removesuffix("_focus"),  # the HTML ids: gradcam-focus, occlusion-focus
            "rows": [{"true_class": r["true_class"], "n": r["n_images"] - r["n_empty"],
                      "empty": r["n_empty"], "median": fmt_number(r["share_median"]),
                      "iqr": (f"{r['share_q1']:.3f}–{r['share_q3']:.3f}"
                              if math.isfinite(r["share_q1"]) else "–"),
                      "uniform": f"{uniform:.3f}"} for r in rows],
            "n": n, "uniform": f"{uniform:.3f}", "margin": f"{FOCUS_MARGIN:.2f}",
            "box": (f"the middle {width:.0%} of the width and {height:.0%} of the height; "
                    f"margins {(1 - width) / 2:.0%} left and right, {(1 - height) / 2:.0%} top "
                    "and bottom").replace("%", " %"),
            "verdict": verdict, "inside": verdict == INSIDE, "sentence": sentence,
        }

    def _gradcam_overlays(self, model: Any, layer: Any, test: Any,
                          threshold: float) -> tuple[int, int]:
        from .gradcam import example_title, gradcam, gradcam_plot, pick_examples

        scores = self._test_scores(self.best, test, model)
        right, wrong = pick_examples(test.y, scores, threshold, self.opt.examples)
        rows = []
        for label, idx in (("right", right), ("wrong", wrong)):
            if not idx:
                continue
            maps, probs = gradcam(model, test.x[idx], threshold, layer)
            rows.append((label, [(test.x[i], m, example_title(str(test.files[i]), int(test.y[i]),
                                                             float(p), threshold))
                                 for i, m, p in zip(idx, maps, probs, strict=True)]))
        self.add_figure("gradcam", gradcam_plot, rows, self.opt.examples)
        return len(right), len(wrong)

    def section_shortcuts(self) -> dict[str, Any] | None:
        """``check_shortcuts`` on the best trial's data folder (also shortcuts.csv): can file
        size, image dimensions, the borders or sharpness alone predict the label, and do they
        shift between train and test? No pixels shown."""
        if self.best is None:
            return None
        path = self.opt.data or as_dict(self.runs.record(self.best).get("data")).get("path")
        if self.opt.data and Path(str(path)).is_dir():
            self.dataset()  # its hash check, where no Grad-CAM loaded it (no model file)
        if not path:
            self.note("shortcuts", "The best trial's record names no data folder, so the "
                                   "shortcut check did not run.")
            return None
        if not Path(str(path)).exists():
            self.note("shortcuts", f"Data folder {path} is not available here, so the shortcut "
                                   "check (file size, dimensions, borders, sharpness) did not run.")
            return None
        if Path(str(path)).is_file():
            self.note("shortcuts", f"{path} is a .npz file, which has no file sizes or image "
                                   "headers: the shortcut check needs a Kermany folder.")
            return None
        from ..shortcuts import CONTROL, SHORTCUT_AUC, check_shortcuts

        frame = check_shortcuts(str(path), n_boot=self.opt.n_boot, seed=self.opt.seed)
        self.tables["shortcuts"] = frame
        if frame.attrs.get("unreadable"):
            self.note("shortcuts", f"{frame.attrs['unreadable']} unreadable image(s) were left out.")
        risky = [str(g) for g, flag in zip(frame["group"], frame["shortcut"], strict=True) if flag]
        if risky:
            sentence = (f"Shortcut risk: {', '.join(risky)} alone predict(s) the label on the test "
                        f"split (AUC >= {SHORTCUT_AUC}); the models may use it instead of the lungs.")
        else:
            sentence = (f"Neither file size, image dimensions, the borders nor sharpness alone "
                        f"predict the label (every test AUC below {SHORTCUT_AUC}).")
        rows = [{"group": r.group, "features": r.features,
                 "auc": f"{r.test_auc:.3f} [{r.test_auc_lo:.3f}, {r.test_auc_hi:.3f}]",
                 "shift": f"{r.shift_auc:.3f}", "verdict": r.verdict,
                 "shortcut": bool(r.shortcut), "control": r.group == CONTROL}
                for r in frame.itertuples()]
        return {"rows": rows, "sentence": sentence, "risky": bool(risky), "path": str(path),
                "n_train": int(frame["n_train"].iloc[0]), "n_test": int(frame["n_test"].iloc[0]),
                "threshold": SHORTCUT_AUC}

    def _test_scores(self, best: pd.Series, test: Any, model: Any) -> np.ndarray:
        """The saved test scores in the data set's order; the model predicts any missing."""
        saved = self.runs.predictions(best)
        if saved is not None:
            lookup = dict(zip(saved.file, saved.probability, strict=True))
            scores = np.array([lookup.get(str(f), np.nan) for f in test.files])
            if np.isfinite(scores).all():
                return scores
        self.note("gradcam", "Saved predictions do not cover this data set; the model "
                             "re-scored it.")
        return predict_batches(model, test.x, 128).ravel()

    # --- 9. is the winner really better? ----------------------------------------------

    def section_significance(self) -> dict[str, Any] | None:
        models = self.top_models()
        if len(models) < 2:
            return {"sentence": "There is only one completed model, so there is nothing to "
                                "test it against yet."} if models else None
        a, b = models[0], models[1]
        if not _same_target(a.row, b.row):
            return {"sentence": f"{a.label} and {b.label} were thresholded for different recall "
                                f"targets ({a.row.get('recall_target')} and "
                                f"{b.row.get('recall_target')}), so their right and wrong calls "
                                "are not compared."}
        pairs = align(a.test, b.test)
        if pairs is None:
            return {"sentence": f"{a.label} and {b.label} were tested on different images, so "
                                "McNemar's test does not apply."}
        ia, ib = pairs
        groups = a.test.patient[ia]
        result = mcnemar(a.test.label[ia], a.predicted[ia], b.predicted[ib], groups=groups)
        acc_a = float(np.mean(a.predicted[ia] == a.test.label[ia].astype(bool)))
        acc_b = float(np.mean(b.predicted[ib] == b.test.label[ib].astype(bool)))
        p = f"{result.p_value:.3g}"
        by_patient = result.patients is not None and result.patients < result.n
        test = ("exact McNemar-type sign test over patients" if by_patient
                else "exact McNemar test")
        a_better = ((result.patients_a or 0) > (result.patients_b or 0) if by_patient
                    else result.only_a > result.only_b)
        if result.p_value < ALPHA and a_better:
            verdict = (f"{a.label} is significantly better than {b.label} on the test set "
                       f"({test}, p = {p}).")
        elif result.p_value < ALPHA:
            verdict = (f"{a.label} ranks first on validation, but {b.label} is significantly "
                       f"better on the test set ({test}, p = {p}).")
        else:
            verdict = (f"{a.label} is not significantly better than {b.label} "
                       f"({test}, p = {p}): the difference could be chance.")
        if self.best is not None and str(a.row.get("trial_dir")) != str(self.best.get("trial_dir")):
            verdict = (f"The best model by validation has no readable test predictions, so "
                       f"this compares the next two: {verdict}")
        detail = (f"Of the {result.n} test images both models scored, only {a.label} "
                  f"was right on {result.only_a} and only {b.label} on {result.only_b} "
                  f"(accuracy {acc_a:.3f} vs {acc_b:.3f}, each at its validation threshold).")
        if by_patient:
            detail += (f" The images come from {result.patients} patients, whose images are "
                       f"not independent: {a.label} was right on more of a patient's images "
                       f"for {result.patients_a} patients, {b.label} for {result.patients_b}; "
                       "the test counts those patients.")
        return {"a": a.label, "b": b.label, "only_a": result.only_a, "only_b": result.only_b,
                "n": result.n, "p": p, "acc_a": f"{acc_a:.3f}", "acc_b": f"{acc_b:.3f}",
                "significant": result.p_value < ALPHA, "sentence": verdict, "detail": detail,
                "test": (f"sign test over {result.patients} patients ({result.patients_a} vs "
                         f"{result.patients_b})" if by_patient else "McNemar")}

    # --- 10. provenance ---------------------------------------------------------------

    def section_provenance(self) -> dict[str, Any]:
        records = list(self.runs.records.values())
        frame = self.runs.frame
        data_keys = ("path", "data_hash", "image_size", "channels", "split_seed", "val_fraction")
        aliases = data_hash_aliases(records)  # older records' hashes of the same files

        def data_of(r: dict[str, Any]) -> tuple:
            data = as_dict(r.get("data"))
            values = [data.get(k) for k in data_keys]
            if isinstance(values[1], str):
                values[1] = aliases.get(values[1], values[1])
            return tuple(values)

        data = _distinct(records, data_of)
        env = [as_dict(r.get("environment")) for r in records]
        versions = _distinct(env, lambda e: (_backend_version(e), e.get("keras"),
                                             e.get("keras_tuner"), e.get("python")))
        hardware = _distinct(env, lambda e: (e.get("cpu"), e.get("cpu_count"),
                                             ", ".join(map(str, e.get("gpus") or [])) or "none"))
        seconds = [float(s) for s in frame.get("seconds", pd.Series(dtype=float)) if is_finite(s)]
        items = [
            ("runs folder", [self.runs.runs_dir]),
            ("data (path, hash, size, channels, split seed, val fraction)", _counted(data)),
            ("recall target", _counted(_distinct(records, lambda r: (r.get("recall_target"),)))),
            ("command lines", _counted(_distinct(records, lambda r: (r.get("command") or "–",)))),
            ("Keras backend, Keras, keras-tuner, Python", _counted(versions)),
            ("hardware (CPU, cores, GPUs)", _counted(hardware)),
            ("time", [_time_summary(seconds)]),
            ("report", [f"autopneumo {__version__}"]),
        ]
        warning = None
        if len(data) > 1:
            warning = ("Trials were run on different data or preprocessing: compare them within "
                       "a group only.")
        return {"items": items, "warning": warning}


# --- small helpers --------------------------------------------------------------------

def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _ensemble_kind(record: dict[str, Any]) -> str:
    """``ensemble: mean of the top 3 trials by validation, flip TTA``, or for ``finalize``'s
    seeds ``ensemble: mean of 3 retrainings (seeds 0, 1, 2) of base_cnn + flip (trial 0016)``
    (the project named, as each numbers its trials from 0); ``mean log-odds`` in place of
    ``mean`` for an ensemble built with ``--combine logit``."""
    members = record.get("members")
    n = len(members) if isinstance(members, list) else "?"
    info = as_dict(record.get("ensemble"))
    mean = "mean log-odds" if str(info.get("combine", "")).startswith("mean log-odds") else "mean"
    if isinstance(info.get("seeds"), list):
        of = Path(str(info.get("of") or "?"))
        family, _, policy = of.parent.name.partition("__")  # projects number trials from 0
        what = f"trial {of.name.removeprefix('trial_')}"
        what = f"{family} + {policy} ({what})" if policy else what
        return (f"ensemble: {mean} of {n} retrainings (seeds "
                f"{', '.join(map(str, info['seeds']))}) of {what}")
    tta = ", horizontal-flip TTA" if info.get("tta") else ""
    return f"ensemble: {mean} of the top {n} trial(s) by validation{tta}"


def _signed(value: Any) -> str:
    return f"{value:+.3f}" if is_finite(value) else "–"


def _interval(d: Difference) -> str:
    return f"{_signed(d.value)} [{_signed(d.lo)}, {_signed(d.hi)}]"


def _effect_row(e: dict[str, Any]) -> dict[str, Any]:
    return {"family": e["family"], "policy": e["policy"], "a": e["a"], "b": e["b"], "n": e["n"],
            "precision": _interval(e["precision"]), "precision_verdict": e["precision"].verdict,
            "auc": _interval(e["auc"]), "auc_verdict": e["auc"].verdict,
            "precision_value": e["precision"].value, "auc_value": e["auc"].value}


def _hp_row(e: Any) -> dict[str, Any]:
    if e.kind == "numeric":
        effect = f"Spearman ρ = {e.spearman:+.2f}" if math.isfinite(e.spearman) else "–"
    else:
        effect = " · ".join(f"{k}: {v:.3f}" for k, v in e.by_value.items())
    return {"name": e.name, "kind": e.kind, "n": e.n, "effect": effect, "best": e.best_value}


def _project_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for project, group in frame.groupby(frame["project"].astype(str), sort=True):
        status = group["status"].astype(str)
        done = group[(status == "completed") & group["val_objective"].notna()]
        top = done.iloc[0] if len(done) else None
        rows.append({
            "project": project, "trials": len(group),
            "completed": int((status == "completed").sum()),
            "failed": int((status == "failed").sum()),
            "unfinished": int(status.str.startswith("unfinished").sum()),
            "best_val": fmt_value(top, "val_prec_at_recall") if top is not None else "–",
            "best_test": fmt_value(top, "test_precision") if top is not None else "–",
            "seconds": (fmt_seconds(group["seconds"].sum(min_count=1)) if "seconds" in group
                        else "–"),
        })
    return rows


def _natural(text: Any) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def _total(counts: dict[str, Any]) -> Any:
    a, b = counts.get("NORMAL"), counts.get("PNEUMONIA")
    return a + b if isinstance(a, int) and isinstance(b, int) else "–"


def _distinct(items: list[Any], key) -> list[tuple[tuple, int]]:
    """Distinct keys with how many items have each, most common first."""
    counts: dict[tuple, int] = {}
    for item in items:
        k = key(item)
        counts[k] = counts.get(k, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def _counted(groups: list[tuple[tuple, int]]) -> list[str]:
    return [f"{_join(key)} — {n} trial(s)" for key, n in groups]


def _join(key: tuple) -> str:
    return ", ".join("–" if v is None else str(v) for v in key)


def _time_summary(seconds: list[float]) -> str:
    if not seconds:
        return "no trial times recorded"
    return (f"total {fmt_seconds(sum(seconds))} over {len(seconds)} trial(s); per trial median "
            f"{fmt_seconds(statistics.median(seconds))}, min {fmt_seconds(min(seconds))}, "
            f"max {fmt_seconds(max(seconds))}")


def _backend_version(env: dict[str, Any]) -> str | None:
    """``tensorflow 2.21.0`` / ``jax 0.11.2``; records older than the backend field were
    all TensorFlow."""
    backend = env.get("backend") or ("tensorflow" if env.get("tensorflow") else None)
    return f"{backend} {env.get(backend)}" if backend else None


def _reference_kind(record: dict[str, Any]) -> str:
    """A reference run's line: the classroom recipe, or how it deviated from it (a quick
    check at a smaller size never passes for the study's own)."""
    from ..baseline import CLASSROOM

    if record.get("reference_exact", True):
        return "reference run (classroom recipe, this data)"
    settings = as_dict(record.get("reference_settings"))
    changed = [f"{k} {settings[k]} (recipe {v})" for k, v in CLASSROOM.items()
               if k in settings and settings[k] != v]
    return ("reference run, deviating from the classroom recipe: " + ", ".join(changed)
            if changed else "reference run, deviating from the classroom recipe")


def _same_target(a: Any, b: Any) -> bool:
    """Two rows thresholded for one recall target (missing on both counts as one)."""
    x, y = a.get("recall_target"), b.get("recall_target")
    return x == y or not (is_finite(x) or is_finite(y))
