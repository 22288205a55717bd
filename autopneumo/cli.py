"""The ``autopneumo`` command: each subcommand parses options and calls one library function."""

from __future__ import annotations

import contextlib
import errno
import shlex
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .errors import AutopneumoWarning, UserError
from .paths import DATA_ENV, DEFAULT_REPORT_DIR, DEFAULT_RUNS_DIR, require_runs_dir

if TYPE_CHECKING:  # the command line imports pandas only in the commands that use it
    import pandas as pd


class _Group(click.Group):
    """User errors become one line and exit 2; Ctrl-C says how to resume and exits 130."""

    def invoke(self, ctx):
        from .interrupts import keep_ctrl_c, term_as_ctrl_c

        try:
            with keep_ctrl_c(), term_as_ctrl_c(), _warnings_as_lines():
                return super().invoke(ctx)  # (keep_ctrl_c: not even one inside gc is lost)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a path the user gave: a file, unwritable, missing
            click.echo(f"Error: {_os_error(exc)}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo(
                "\nInterrupted. Completed trials are saved; run the same command again to resume.",
                err=True,
            )
            ctx.exit(130)


@contextlib.contextmanager
def _warnings_as_lines():
    """Each autopneumo warning as one ``warning: ...`` / ``note: ...`` line on stderr, every
    time it is issued; other warnings as Python shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", AutopneumoWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, AutopneumoWarning):
                click.echo(f"{category.label}: {message}", err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _os_error(exc: OSError) -> str:
    """One line naming the file: ``PATH: reason`` (``PATH -> OTHER: reason`` for a move)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:  # Keras' zip writer names no file
        reason += ("; free some space and run the same command again (finished trials and "
                   "files are kept)")
    if exc.filename is None:
        return reason
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"{where}: {reason}"


@click.group(cls=_Group)
@click.version_option(package_name="autopneumo")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Compare model families and augmentation policies for pneumonia detection on chest X-rays."""
    if ctx.invoked_subcommand not in (None, "data", "leaderboard"):
        from .backend import import_tensorflow_quietly

        import_tensorflow_quietly()


# --- data -------------------------------------------------------------------------------

@main.group(cls=_Group)
def data() -> None:
    """Inspect or fetch data."""


@data.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def data_check(path: Path) -> None:
    """Counts per split and class, patients, duplicate and unreadable files, colour."""
    from rich.console import Console
    from rich.table import Table

    from .data import check_data

    result = check_data(path)
    console = Console()
    table = Table(title=f"{result.root}")
    for col in ("split", "NORMAL", "PNEUMONIA", "patients"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, counts in result.counts.items():
        table.add_row(split, str(counts["NORMAL"]), str(counts["PNEUMONIA"]),
                      str(result.patients[split]))
    console.print(table)
    console.print(f"data hash: {result.data_hash[:16]}")
    line = f"patients in both train/val and test: {result.patients_train_and_test}"
    if result.patients_train_and_test_by_kind != result.patients_train_and_test:
        line += (f" ({result.patients_train_and_test_by_kind} if personN_bacteria and "
                 "personN_virus are different patients, as the official split appears to "
                 "number them; the validation split treats them as one, which cannot leak)")
    console.print(line, markup=False)
    console.print(f"duplicate groups (byte-identical files): {len(result.duplicate_groups)}"
                  f" ({result.duplicates_across_splits} across splits)", markup=False)
    for group in result.duplicate_groups[:10]:
        console.print("  " + " = ".join(group), markup=False)
    console.print(f"unreadable files: {len(result.unreadable)}")
    for failure in result.unreadable:
        console.print(f"  {failure.path}: {failure.reason}", markup=False)
    if result.ignored:
        from .data.images import IMAGE_SUFFIXES

        console.print(f"not read (neither {'/'.join(IMAGE_SUFFIXES)} nor DICOM by content): "
                      f"{len(result.ignored)}")
        for name in result.ignored[:10]:
            console.print(f"  {name}", markup=False)
        if len(result.ignored) > 10:
            console.print(f"  ... and {len(result.ignored) - 10} more")
    if result.colour:
        console.print(f"colour: {len(result.colour)} of {result.readable} images have channels "
                      "that differ (e.g. " + ", ".join(result.colour[:3]) + "): "
                      "--channels 3 keeps their colour", markup=False)
    else:
        console.print(f"colour: none of the {result.readable} readable images has colour "
                      "(every channel equal): --channels 3 adds nothing to the "
                      "default --channels 1", markup=False)


@data.command("download")
@click.option("--url", default=None, help="Source URL (file:// works); default: MedMNIST on Zenodo.")
@click.option("--md5", default=None,
              help="Expected MD5 (default: the official file's; with --url none, and the "
                   "file is then fetched every time).")
def data_download(url: str | None, md5: str | None) -> None:
    """Download PneumoniaMNIST and print the path of the .npz (checksum verified for the
    default URL or with --md5; a download that is not a MedMNIST .npz is refused and the
    cached copy kept)."""
    from .data.download import PNEUMONIAMNIST_MD5, PNEUMONIAMNIST_URL, download_pneumoniamnist

    path = download_pneumoniamnist(url or PNEUMONIAMNIST_URL,
                                   md5 if md5 is not None else (None if url else PNEUMONIAMNIST_MD5))
    click.echo(str(path))


# --- search -----------------------------------------------------------------------------

def search_options(fn):
    """The options shared by ``search`` and ``worker`` (they must describe the same project)."""
    options = [
        click.option("--family", required=True, help="Model family (see `autopneumo families`)."),
        click.option("--augment", "policy", default="photometric", show_default=True,
                     help="Augmentation policy (see `autopneumo policies`); photometric is "
                          "the one that raised test AUC across seeds in the ablation."),
        click.option("--data", "data_path", type=click.Path(path_type=Path), envvar=DATA_ENV,
                     help=f"Kermany folder or MedMNIST .npz [env {DATA_ENV}]."),
        click.option("--tuner", type=click.Choice(["hyperband", "bayesian", "random", "grid"]),
                     default="bayesian", show_default=True),
        click.option("--max-trials", type=int, default=None,
                     help="Trials to run [default: 10; with hyperband, one whole run of its "
                          "brackets, every rung's trial counted: 30 at a 10-epoch cap; more "
                          "runs them again]."),
        click.option("--epochs", type=int, default=None,
                     help="Epoch cap per trial (default: the training space file)."),
        click.option("--image-size", type=int, default=128, show_default=True),
        click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True),
        click.option("--recall-target", type=float, default=0.95, show_default=True),
        click.option("--val-fraction", type=float, default=0.2, show_default=True),
        click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True),
        click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
                     show_default=True),
        click.option("--space", "spaces", multiple=True, type=click.Path(path_type=Path),
                     help="An edited search-space file replacing the built-in one of its kind "
                          "(repeatable: one per kind)."),
        click.option("--strategy", type=click.Choice(["mirrored"]), default=None,
                     help="Train each trial on several GPUs (tf.distribute.MirroredStrategy)."),
        click.option("--devices", type=int, default=None, help="GPUs per trial with --strategy."),
        click.option("--weights", type=click.Path(path_type=Path), default=None,
                     help="Local ImageNet weights file for the backbone (nothing is downloaded)."),
        click.option("--mixed-precision", is_flag=True,
                     help="GPU only: float16 compute (ignored, with a note, on a CPU)."),
        click.option("--jit", is_flag=True, help="GPU only: XLA compilation (ignored on a CPU)."),
        click.option("--data-on-device", is_flag=True,
                     help="GPU with KERAS_BACKEND=jax only: hold the training split on the "
                          "device and gather batches there (ignored, with a note, elsewhere)."),
        click.option("--preset", type=click.Choice(["quick"]), default=None,
                     help="quick: 64 px, 3 epochs, hyperband, 8 trials, 5 min per search "
                          "(options given explicitly win)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _config(role: str, **kw):
    from .tuning import PRESETS, SearchConfig, parse_duration

    budget = kw.pop("time_budget", None)
    budget = parse_duration(budget, "--time-budget") if budget is not None else None
    if kw.get("preset"):
        ctx = click.get_current_context()
        for key, value in PRESETS[kw["preset"]].items():
            if key == "time_budget":
                budget = budget if budget is not None else value
            elif ctx.get_parameter_source(key) in (None, click.core.ParameterSource.DEFAULT):
                kw[key] = str(value) if key == "channels" else value
    return SearchConfig(
        family=kw["family"], policy=kw["policy"], data=kw["data_path"], tuner=kw["tuner"],
        max_trials=kw["max_trials"], epochs=kw["epochs"], image_size=kw["image_size"],
        channels=int(kw["channels"]), recall_target=kw["recall_target"],
        val_fraction=kw["val_fraction"], seed=kw["seed"], runs_dir=kw["runs_dir"],
        spaces=list(kw["spaces"]), command=shlex.join(["autopneumo", *sys.argv[1:]]),
        time_budget=budget, chief=kw.get("chief"),
        role=role, worker_id=kw.get("worker_id"),
        worker_timeout=60.0 if kw.get("worker_timeout") is None else kw["worker_timeout"],
        strategy=kw["strategy"],
        devices=kw["devices"], weights=kw.get("weights"),
        mixed_precision=kw.get("mixed_precision", False), jit=kw.get("jit", False),
        data_on_device=kw.get("data_on_device", False),
    )


def _run_search(config) -> None:
    from .progress import SearchProgress
    from .tuning import resolve_spaces
    from .tuning import search as run_search

    config.validate()
    resolve_spaces(config)  # unknown names and bad space files fail before the data loads
    from .errors import SearchError

    try:
        with SearchProgress() as progress:
            records = run_search(config, progress=progress)
    except SearchError as exc:  # none completed: the count, then the error's line
        if exc.records is not None:
            click.echo(f"{config.project}: 0 completed, {len(exc.records)} failed trials in "
                       f"{config.runs_dir}")
        raise
    done = [r for r in records if r.get("status") == "completed"]
    click.echo(f"{config.project}: {len(done)} completed, {len(records) - len(done)} failed "
               f"trials in {config.runs_dir}; next: "
               f"{shlex.join(['autopneumo', 'leaderboard', '--runs-dir', str(config.runs_dir)])}")


@main.command()
@search_options
@click.option("--time-budget", default=None,
              help="Stop cleanly after this long: 90s, 30m, 2h (a bare number is minutes); "
                   "with --chief no trial is handed out past it (give workers theirs).")
@click.option("--chief", default=None, metavar="HOST:PORT",
              help="Serve keras-tuner's oracle here for `autopneumo worker` processes.")
@click.option("--worker-timeout", type=float, default=60.0, show_default=True,
              help="With --chief: seconds of worker silence before its trial is reissued.")
def search(**kw) -> None:
    """Run (or resume) a KerasTuner search of one family x policy."""
    _run_search(_config("chief" if kw.get("chief") else "single", **kw))


@main.command()
@search_options
@click.option("--chief", required=True, metavar="HOST:PORT", help="The chief's address.")
@click.option("--worker-id", default=None, help="Unique id (default: worker-<host>-<pid>).")
@click.option("--time-budget", default=None,
              help="Stop this worker's running trial after its epoch past this long (90s, "
                   "30m, 2h); give the chief the same.")
def worker(**kw) -> None:
    """Join a chief's search: run the trials it hands out (same options as its search)."""
    _run_search(_config("worker", **kw))


@main.command()
@click.option("--families", default="all", show_default=True,
              help="'all' or a comma-separated list.")
@click.option("--augment", "policies", default="all", show_default=True,
              help="'all' or a comma-separated list of policies.")
@click.option("--budget", required=True, help="Total time: 90m, 2h, 1h30m.")
@click.option("--data", "data_path", type=click.Path(path_type=Path), envvar=DATA_ENV)
@click.option("--tuner", type=click.Choice(["hyperband", "bayesian", "random"]),
              default="hyperband", show_default=True)
@click.option("--epochs", type=int, default=None)
@click.option("--image-size", type=int, default=128, show_default=True)
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True)
@click.option("--recall-target", type=float, default=0.95, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
              show_default=True)
def study(families, policies, budget, data_path, tuner, epochs, image_size, channels,
          recall_target, seed, runs_dir) -> None:
    """Search the families x policies matrix within one time budget (resumable)."""
    from .progress import SearchProgress
    from .study import STUDY_MAX_TRIALS, overrun, run_study, short_shares
    from .tuning import SearchConfig, parse_duration

    base = SearchConfig(family="", policy="", data=data_path, tuner=tuner,
                        max_trials=STUDY_MAX_TRIALS,
                        epochs=epochs, image_size=image_size, channels=int(channels),
                        recall_target=recall_target, seed=seed, runs_dir=runs_dir,
                        command=shlex.join(["autopneumo", *sys.argv[1:]]))
    state = run_study(families, policies, parse_duration(budget, "--budget"), base,
                      SearchProgress)
    short = short_shares(state)
    for line in short:
        click.echo(f"warning: {line}", err=True)
    if short:
        click.echo("warning: those shares were too short to compare the pairs; study fewer "
                   "pairs (--families, --augment) or give a longer --budget", err=True)
    over = overrun(state)
    over = (f" ({over / 60:.1f} over: a trial running at the deadline finishes its epoch)"
            if over >= 3 else "")
    click.echo(f"study: {len(state['pairs'])} projects, {state['total_spent'] / 60:.1f} of "
               f"{state['budget'] / 60:.1f} minutes spent{over}; next: "
               f"{shlex.join(['autopneumo', 'report', '--runs-dir', str(runs_dir)])}")


# --- results ----------------------------------------------------------------------------

@main.command()
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
              show_default=True)
@click.option("--top", type=int, default=20, show_default=True)
def leaderboard(runs_dir: Path, top: int) -> None:
    """Ranked table of all trials (by the validation objective; test shown, never ranked)."""
    from .leaderboard import leaderboard as build
    from .terminal import print_leaderboard

    require_runs_dir(runs_dir)
    if top < 1:
        raise UserError(f"--top must be positive, got {top}")
    frame = build(runs_dir)
    print_leaderboard(frame, top)


@main.command()
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_REPORT_DIR,
              show_default=True)
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="html",
              show_default=True)
@click.option("--top", type=int, default=25, show_default=True,
              help="Rows in the HTML table and the Markdown summary's (reference runs, "
                   "ensembles and the best search trial ranked below are added).")
@click.option("--no-pixels", is_flag=True,
              help="Leave out every figure showing X-ray pixels (samples, previews, Grad-CAM "
                   "overlays); numbers such as the Grad-CAM focus and shortcut check stay.")
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="The best trial's data folder where it is now, if it moved since the "
                   "search (checked against the recorded data hash).")
def report(runs_dir: Path, out: Path, fmt: str, top: int, no_pixels: bool,
           data_path: Path | None) -> None:
    """Write leaderboard.csv and index.html (or summary.md) comparing families x policies."""
    from .report import write_report

    require_runs_dir(runs_dir)
    written = write_report(runs_dir, out, fmt=fmt, top=top, pixels=not no_pixels,
                           data=data_path)
    for path in written:
        click.echo(str(path))


@main.group(cls=_Group)
def baseline() -> None:
    """Reference runs trained as published studies trained them."""


@baseline.command("classroom")
@click.option("--data", "data_path", type=click.Path(path_type=Path), envvar=DATA_ENV)
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
              show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--image-size", type=int, default=None,
              help="Deviate from the study's 180 px (recorded; for quick checks only).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Deviate from the study's 10 epochs (recorded; for quick checks only).")
def baseline_classroom(data_path, runs_dir, seed, image_size, epochs) -> None:
    """The classroom study's CNN, CNN + flip and ResNet-18 (180 px RGB, batch 16, 10 epochs,
    Adam, class weights, random 80/20 image split, threshold 0.5), marked reference."""
    from .baseline import classroom

    for r in classroom(data_path, runs_dir, seed, image_size=image_size, epochs=epochs):
        t = r["test"]
        click.echo(f"{r['trial_id']}: test accuracy {_num(t['accuracy'])} precision "
                   f"{_num(t['precision'])} recall {_num(t['recall'])} loss {_num(t['loss'])}")


# finalize's seed ensembles and ``ensemble``: how the members' scores are averaged
combine_option = click.option(
    "--combine", type=click.Choice(["probability", "logit"]), default="probability",
    show_default=True,
    help="Average the members' probabilities, or their log-odds (for models whose "
         "probabilities sit against 0 or 1 on different scales).")


@main.command()
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
              show_default=True)
@click.option("--top", type=int, default=3, show_default=True)
@click.option("--seeds", type=int, default=3, show_default=True)
@combine_option
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="The data folder, if it moved since the search (the same files).")
def finalize(runs_dir: Path, top: int, seeds: int, combine: str, data_path: Path | None
             ) -> None:
    """Retrain the top configurations with several seeds: mean and std of test metrics.
    Seeds already retrained by an earlier run are reused (rerun to resume). With 2 seeds
    or more, the seeds' ensemble (see --combine) is recorded as an ensemble row."""
    from .finalize import finalize as run_finalize

    summary = run_finalize(runs_dir, top, seeds, combine, data=data_path)
    for _, row in summary.iterrows():
        reused = f", {int(row['reused'])} from an earlier run" if row["reused"] else ""
        metrics = ", ".join(_mean_and_spread(row, key, label) for key, label in
                            (("precision", "precision"), ("recall", "recall"), ("auc", "AUC")))
        click.echo(f"#{row['rank']} {row['project']} trial {row['trial_id']}: {metrics} "
                   f"({row['seeds']} seed{'s' if row['seeds'] != 1 else ''}{reused})")
        if isinstance(row.get("ensemble"), str):
            click.echo(f"   ensemble of the {row['seeds']} seeds: precision "
                       f"{_num(row['ensemble_precision'])}, recall "
                       f"{_num(row['ensemble_recall'])}, AUC {_num(row['ensemble_auc'])} "
                       f"(leaderboard row {row['ensemble']})")
    click.echo(f"details: {shlex.quote(str(runs_dir / '_finalize' / 'summary.csv'))}")


def _mean_and_spread(row: pd.Series, key: str, label: str) -> str:
    """``precision 0.812 ± 0.015``; one seed has no spread (its std is NaN), so it reads
    ``precision 0.812``."""
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    return f"{label} {_num(mean)}" + ("" if std != std else f" ± {std:.3f}")


def _num(x, digits: int = 3) -> str:
    """A metric as the leaderboard shows it: ``-`` where it is undefined (NaN, or None in
    a record), not ``nan`` (precision where a model called no image positive)."""
    return "-" if x is None or x != x else f"{x:.{digits}f}"


# --- use the winner ---------------------------------------------------------------------

@main.command()
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="A trial folder, an exported folder or a .keras file.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--threshold", type=float, default=None,
              help="Override the validation-chosen threshold.")
@click.option("--recall-target", type=float, default=None,
              help="Another operating point: the threshold that gives the best validation "
                   "precision at this recall, from the validation scores saved beside the "
                   "model (a trial, finalize seed or export).")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV to standard output.")
@click.option("--strict", is_flag=True,
              help="Exit with code 1 (after writing every row) when an image could not be "
                   "read, was scored with a warning, or a file in the folders was skipped.")
def predict(model_path: Path, inputs: tuple[Path, ...], threshold: float | None,
            recall_target: float | None, as_csv: bool, strict: bool) -> None:
    """Score for pneumonia (the sigmoid output, not a calibrated probability) and label
    per image (IMAGE_OR_FOLDER...)."""
    from .inference import predict as run_predict

    frame = run_predict(model_path, list(inputs), threshold, recall_target=recall_target)
    if as_csv:
        from .report import safe_csv

        click.echo(safe_csv(frame), nl=False)
    else:
        from .terminal import print_predictions

        print_predictions(frame)
    failed = int(frame["error"].notna().sum())
    if failed == len(frame):
        raise UserError(f"none of the {len(frame)} images could be read")
    if failed:  # a batch job reading only the CSV still hears of it
        click.echo(f"{failed} of {len(frame)} images could not be read (the "
                   f"{'error' if as_csv else 'note'} column says why)", err=True)
    warned = int(frame["warning"].notna().sum())
    if warned:
        click.echo(f"{warned} of {len(frame)} images scored with a warning (tiny, not "
                   "radiograph-shaped or nearly blank: the "
                   f"{'warning' if as_csv else 'note'} column says which)", err=True)
    skipped = frame.attrs.get("skipped") or []
    if skipped:
        from .data.images import suffix_list

        click.echo(f"{len(skipped)} file(s) in the given folders (and their subfolders) "
                   "skipped, neither images by their suffix nor DICOM by their content "
                   f"({suffix_list(skipped)}); give a file by name to try it", err=True)
    if strict and (failed or warned or skipped):
        click.get_current_context().exit(1)  # the rows are written; a pipeline stops here


@main.command()
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
              show_default=True)
@click.option("--top", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--ensemble", "ensemble_name", default=None, metavar="NAME",
              help="Export this ensemble row instead (its name under RUNS/_ensemble, as "
                   "the leaderboard shows it, or that folder's path): every member, the "
                   "combination rule, TTA and the ensemble's threshold; predict applies them.")
def export(runs_dir: Path, top: int, out: Path, ensemble_name: str | None) -> None:
    """Write the best model(s) by validation with a JSON model card."""
    from .inference import export as run_export

    written = run_export(runs_dir, out, top, ensemble=ensemble_name)
    for folder in written:
        click.echo(str(folder))
    if len(written) < top and ensemble_name is None:
        click.echo(f"only {len(written)} completed search trial(s) to export (--top {top})",
                   err=True)


@main.group(cls=_Group)
def augment() -> None:
    """Look at augmentation policies."""


@augment.command("preview")
@click.option("--policy", required=True)
@click.option("--data", "data_path", type=click.Path(path_type=Path), envvar=DATA_ENV)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--image-size", type=int, default=128, show_default=True)
@click.option("--images", type=int, default=3, show_default=True)
@click.option("--draws", type=int, default=5, show_default=True)
def augment_preview(policy, data_path, out, image_size, images, draws) -> None:
    """A grid of the same training images through POLICY (its default strengths)."""
    from .previews import preview_policy

    click.echo(str(preview_policy(policy, data_path, out, image_size, images=images,
                                  draws=draws)))


# --- registries -------------------------------------------------------------------------

@main.command()
@click.option("--build", is_flag=True,
              help="Also build each family's model and each policy's layers at the spaces' "
                   "defaults, as a search does first (seconds per family).")
def spaces(build: bool) -> None:
    """Check every search-space file against its builder, without data (exit 2 on any)."""
    from .registry import FAMILIES, POLICIES
    from .tuning import check_spaces

    problems = check_spaces(build=build)
    for line in problems:
        click.echo(f"Error: {line}", err=True)
    if problems:
        click.get_current_context().exit(2)
    built = " (each built at its defaults)" if build else ""
    click.echo(f"{len(FAMILIES.names())} families, {len(POLICIES.names())} policies and the "
               f"training space: every search-space file is valid{built}")

@main.command()
def families() -> None:
    """List the registered model families and their search-space files."""
    from .registry import FAMILIES

    _list_entries(FAMILIES)


@main.command()
def policies() -> None:
    """List the registered augmentation policies and their search-space files."""
    from .registry import POLICIES

    _list_entries(POLICIES)


def _list_entries(registry) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in ("name", "description", "search space"):
        table.add_column(col)
    for name in registry.names():
        entry = registry.get(name)
        path = entry.space_file
        table.add_row(name, entry.description,
                      str(path) if path.is_file() else f"{path} (missing)")
    Console().print(table)


# --- ensembles and shortcut checks --------------------------------------------------------

@main.command()
@click.option("--top", type=int, default=3, show_default=True,
              help="Average the K best completed trials by validation.")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR,
              show_default=True)
@click.option("--tta", is_flag=True,
              help="Re-score each model on the original and horizontally flipped images "
                   "(needs the models and the data folder; works with --top 1).")
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="With --tta: the data folder, if it moved since the search (the same "
                   "files, checked by the data hash).")
@combine_option
def ensemble(top: int, runs_dir: Path, tta: bool, data_path: Path | None,
             combine: str) -> None:
    """Average the top K trials' probabilities; threshold on validation; one more row."""
    from .ensemble import ensemble as run_ensemble

    record = run_ensemble(runs_dir, top=top, tta=tta, combine=combine, data=data_path,
                          command=shlex.join(["autopneumo", *sys.argv[1:]]))
    val, test, ci = record["val"], record["test"], record["test_ci"]

    def metric(name: str) -> str:
        lo, hi = (ci.get(name) or [float("nan")] * 2)[:2]
        return f"{name} {_num(test[name])} [{_num(lo)}, {_num(hi)}]"

    members = ", ".join(f"#{m['rank']} {m['family']} + {m['policy']} (trial {m['trial_id']})"
                        for m in record["members"])
    how = "mean log-odds" if combine == "logit" else "mean"
    click.echo(f"ensemble {record['trial_id']}: {how} of {members}"
               + (", each with horizontal-flip TTA" if tta else ""))
    click.echo(f"validation: objective {val['objective']:.4f}, precision "
               f"{_num(val['prec_at_recall'])} at recall >= {record['recall_target']}, "
               f"threshold {record['threshold']:.4f}")
    click.echo(f"test ({test['n']} images, 95 % bootstrap intervals over "
               f"{record.get('test_ci_resampled') or 'images'}): "
               + ", ".join(metric(m) for m in ("precision", "recall", "auc")))
    click.echo(f"record: {record['_path']}")


@data.command("shortcuts")
@click.option("--data", "data_path", type=click.Path(path_type=Path), envvar=DATA_ENV,
              help=f"Kermany folder [env {DATA_ENV}].")
def data_shortcuts(data_path: Path | None) -> None:
    """Can file size, image dimensions, the borders or sharpness alone predict the label, and
    do they shift between train and test?"""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .shortcuts import check_shortcuts

    frame = check_shortcuts(data_path)
    unreadable = frame.attrs.get("unreadable_files") or []
    if unreadable:
        names = ", ".join(map(str, unreadable[:5]))
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        click.echo(f"warning: skipped {len(unreadable)} unreadable image(s): {names}{more}",
                   err=True)
    table = Table(title=f"shortcut check: {frame.attrs.get('root')} (logistic regression fitted "
                        "on train + val, AUC on test; shift: test vs train images of a class, 0.5 = none)")
    numeric = ("train", "test", "test AUC", "shift")
    for col in ("features", "what", "train", "test", "test AUC", "95 % CI", "shift", "verdict"):
        table.add_column(col, justify="right" if col in numeric else "left")
    for _, row in frame.iterrows():
        table.add_row(Text(row["group"]), Text(row["features"]), str(row["n_train"]),
                      str(row["n_test"]), f"{row['test_auc']:.3f}",
                      f"[{row['test_auc_lo']:.3f}, {row['test_auc_hi']:.3f}]",
                      f"{row['shift_auc']:.3f}", Text(row["verdict"]))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    main()
