"""``write_report``: leaderboard.csv, a self-contained index.html and figures/*.png.

The page answers, top to bottom: which configuration wins (by validation) and by how
much on test; the ranked table; family x policy and each policy against ``none``;
curves and confusion matrices; training curves; tuning history and hyperparameters; the
data; Grad-CAM with its focus on the lung field, and the shortcut check; McNemar's test
between the top two; provenance. Modules:

- ``runs``: leaderboard + records + lazily read predictions
- ``stats``: paired bootstrap, McNemar, curves, hyperparameter effects
- ``figures`` / ``pixels`` / ``gradcam``: one function per figure (PNG bytes)
- ``build``: the sections; ``tables``: cell formatting and the safe CSV
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import AutopneumoNote, OptionError, warn
from ..objective import check_bootstrap
from ..paths import require_runs_dir
from ..spaces import is_integer, positive_int
from .build import SECTIONS, Options, ReportBuilder
from .figures import family_policy_heatmap
from .markdown import markdown_summary
from .runs import Runs, load_runs
from .tables import CI_COLUMNS, HTML_COLUMNS, TABLE_COLUMNS, fmt_value, safe_csv

__all__ = ["CI_COLUMNS", "HTML_COLUMNS", "TABLE_COLUMNS", "family_policy_heatmap", "fmt_value",
           "markdown_summary", "render_html", "safe_csv", "write_report"]

FIGURES = ("family_policy", "policy_effects", "roc", "precision_recall", "confusion",
           "calibration", "training_curves", "tuning_history", "hyperparameters", "data_counts", "samples",
           "augmentation", "gradcam")
PIXEL_FIGURES = ("samples", "augmentation", "gradcam")  # show X-ray pixels
MARKDOWN_SECTIONS = ("headline", "families", "curves", "gradcam", "shortcuts", "significance",
                     "provenance")
# extra CSVs, written where the data allow (finalize_*: copies of the runs' _finalize/*.csv)
TABLES = ("calibration", "gradcam_focus", "occlusion_focus", "shortcuts", "finalize_summary",
          "finalize_runs")


def write_report(runs_dir: str | Path = "runs", out: str | Path = "reports", fmt: str = "html",
                 top: int = 25, *, pixels: bool = True, curves: int = 5, n_boot: int = 1000,
                 seed: int = 0, data: str | Path | None = None) -> list[Path]:
    """Render the runs of ``runs_dir`` into ``out``; returns the files written.

    ``top`` rows go into the HTML (or Markdown) table (every trial is in the CSV); ``curves`` models get
    ROC / PR curves and confusion matrices; ``pixels=False`` leaves out every figure that
    shows X-ray pixels (sample images, augmentation previews, Grad-CAM overlays). The
    numbers of the shortcut guard show no pixels and stay: where the best model and its
    data folder are available, the Grad-CAM focus on the lung field (gradcam_focus.csv,
    which needs TensorFlow), the occlusion focus (occlusion_focus.csv) and the shortcut
    check (shortcuts.csv); otherwise a note.
    """
    if fmt not in ("html", "md"):
        raise OptionError(f"unknown report format {fmt!r}: use 'html' or 'md'")
    if not positive_int(top):
        raise OptionError(f"--top must be a positive integer, got {top!r}")
    _check_python_options(pixels, curves, n_boot, seed)
    require_runs_dir(runs_dir)  # a mistyped path is not an empty report
    if data is not None and not Path(data).exists():
        raise OptionError(f"--data {data}: not found")
    out = Path(out)
    runs = load_runs(runs_dir)
    table = safe_csv(csv_frame(runs.frame))
    digest = runs_digest(table)  # marked in the page: which runs it describes
    stale = _stale_page(out, fmt, table, digest)  # judged before the CSV is replaced
    written = [atomic_write_text(out / "leaderboard.csv", table)]
    options = Options(top=top, curves=curves, pixels=pixels, n_boot=n_boot, seed=seed,
                      data=data)
    if fmt == "md":
        builder = ReportBuilder(runs, options, draw=False)
        context = builder.context(MARKDOWN_SECTIONS)
        written += _write_tables(builder, out)
        written.append(atomic_write_text(out / "summary.md",
                                         markdown_summary(runs.frame, top, context)
                                         + f"\n{RUNS_MARK['summary.md'].format(digest)}\n"))
        _remove_stale(stale, fmt)  # first: it takes the other runs' page with all its figures
        if not pixels:
            _remove_pixels(out)
        return written
    builder = ReportBuilder(runs, options)
    context = builder.context()
    written += _write_tables(builder, out)
    for name, png in builder.figures.items():
        written.append(atomic_write_bytes(out / "figures" / f"{name}.png", png))
    for name in set(FIGURES) - set(builder.figures):  # no stale figure from an older report
        (out / "figures" / f"{name}.png").unlink(missing_ok=True)
    context["runs_digest"] = digest
    written.append(atomic_write_text(out / "index.html",
                                     render_html(runs.frame, context["figures"], top, context)))
    _remove_stale(stale, fmt)
    return written


PAGE_MARKS = {"index.html": "<title>autopneumo report</title>",
              "summary.md": "# autopneumo leaderboard"}
RUNS_MARK = {"index.html": '<meta name="autopneumo-runs" content="{}">',
             "summary.md": "<!-- autopneumo runs {} -->"}
SAME_RUNS_COLUMNS = ("project", "trial_id", "status", "val_objective")


def runs_digest(table: str) -> str:
    """Which runs a report describes: its leaderboard's trials, statuses and objectives
    (not the trial folders' paths, which follow how --runs-dir was spelled)."""
    import hashlib
    import io

    frame = pd.read_csv(io.StringIO(table), dtype=str, keep_default_na=False)
    keys = [c for c in SAME_RUNS_COLUMNS if c in frame]
    rows = sorted(map(tuple, frame[keys].to_numpy())) if len(frame) else []
    return hashlib.sha256(repr((keys, rows)).encode()).hexdigest()[:16]


def _stale_page(out: Path, fmt: str, table: str, digest: str) -> Path | None:
    """The other format's page of an earlier report into ``out`` where it describes other
    runs than this report: it would stand beside this report's CSV. Only a page autopneumo
    wrote; its runs are read from the page's own mark, or, for a page written before the
    mark existed, from the earlier leaderboard.csv. In doubt the page is kept, so a folder
    can hold both formats of the same runs however --runs-dir was spelled."""
    import re

    page = out / ("summary.md" if fmt == "html" else "index.html")
    try:
        text = page.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if PAGE_MARKS[page.name] not in text:
        return None  # not ours
    marked = re.search(re.escape(RUNS_MARK[page.name]).replace(r"\{\}", "([0-9a-f]+)"), text)
    if marked:
        return None if marked.group(1) == digest else page
    try:
        old = runs_digest((out / "leaderboard.csv").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if old == runs_digest(table) else page


def _remove_stale(page: Path | None, fmt: str) -> None:
    """``_stale_page``'s page (an HTML page with its figures), once this report is written."""
    if page is None or not page.exists():
        return
    page.unlink()
    if page.name == "index.html":
        for name in FIGURES:
            (page.parent / "figures" / f"{name}.png").unlink(missing_ok=True)
    other = "md" if fmt == "html" else "html"
    warn(f"removed {page}: an earlier report's, of other runs than this one (`report --format "
         f"{other}` writes it again)", AutopneumoNote)


def _remove_pixels(out: Path) -> None:
    """A --no-pixels Markdown report written where an HTML report with pixels was: its
    pixel figures and its page (which embeds them) would stay in a folder meant to be
    shared. They are removed, and the terminal says so."""
    stale = [out / "figures" / f"{name}.png" for name in PIXEL_FIGURES]
    page = out / "index.html"
    if page.exists():
        text = page.read_text(encoding="utf-8", errors="replace")
        if any(f'id="fig-{name}"' in text for name in PIXEL_FIGURES):
            stale.append(page)  # it embeds those figures
    for path in stale:
        if path.exists():
            path.unlink()
            warn(f"removed {path}: an earlier report's, which can show X-ray pixels "
                 "(--no-pixels)", AutopneumoNote)


def _write_tables(builder: ReportBuilder, out: Path) -> list[Path]:
    """The focus and shortcut CSVs where they were computed; a stale one from an older
    report is removed."""
    written = []
    for name in TABLES:
        if name in builder.tables:
            written.append(atomic_write_text(out / f"{name}.csv",
                                             safe_csv(builder.tables[name])))
        else:
            (out / f"{name}.csv").unlink(missing_ok=True)
    return written


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard with ``reference`` (and ``ensemble``) next to ``status``; every other
    column as is."""
    if "reference" not in frame or "status" not in frame:
        return frame
    marks = [c for c in ("reference", "ensemble") if c in frame]
    cols = [c for c in frame.columns if c not in marks]
    at = cols.index("status") + 1
    cols[at:at] = marks
    return frame[cols]


def _check_python_options(pixels: Any, curves: Any, n_boot: Any, seed: Any) -> None:
    """The options only Python passes, where nothing parses them as the CLI does: a
    ``pixels="no"`` is true and would show X-ray pixels, ``curves=-1`` drew every model's
    curves but the last, ``n_boot=0`` left every interval NaN."""
    if not isinstance(pixels, bool | np.bool_):
        raise OptionError(f"pixels must be True or False, got {pixels!r}")
    if not (is_integer(curves) and curves >= 0):
        raise OptionError(f"curves must be a whole number of models (0 or more), got {curves!r}")
    check_bootstrap(n_boot, seed)


def render_html(frame: pd.DataFrame, figures: dict[str, str], top: int,
                context: dict[str, Any] | None = None) -> str:
    """The page. ``figures`` are base64 PNGs; without a ``context`` one is built from
    ``frame`` alone (no pixels)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    if context is None:
        frame = frame.copy()
        if "reference" not in frame:
            frame["reference"] = False
        if "ensemble" not in frame:
            frame["ensemble"] = False
        runs = Runs(frame=frame, records={}, runs_dir=str(frame.attrs.get("runs_dir", "")))
        context = ReportBuilder(runs, Options(top=top, pixels=False)).context()
    env = Environment(loader=PackageLoader("autopneumo.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("index.html.j2").render(
        **{**context, "figures": {**context.get("figures", {}), **figures}},
        sections=SECTIONS)
