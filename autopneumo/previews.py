"""``augment preview``: the same training images through a policy, as a PNG grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes


def preview_policy(policy: str, data: str | Path | None, out: str | Path, image_size: int = 128,
                   channels: int = 1, images: int = 3, draws: int = 5, seed: int = 0) -> Path:
    """Rows: ``images`` training images (both classes); columns: original + ``draws``
    random draws of ``policy`` at the defaults of its search-space file."""
    from .data import load_dataset
    from .errors import OptionError
    from .registry import POLICIES
    from .report.pixels import augment_previews
    from .spaces import builtin_space

    for option, value, most in (("--images", images, 20), ("--draws", draws, 12)):
        if not 1 <= value <= most:
            raise OptionError(f"{option} must be from 1 to {most}, got {value}")
    if Path(out).is_dir():
        raise OptionError(f"--out {out}: is a folder; give the PNG file to write")
    _check_png_out(Path(out))
    entry = POLICIES.get(policy, "--policy")
    params = {f"augment.{k}": v for k, v in builtin_space("augment", entry.name).defaults().items()}
    dataset = load_dataset(data, image_size, channels, seed=seed)
    rng = np.random.default_rng(seed)
    picks = [int(rng.choice(np.flatnonzero(dataset.train.y == label)))
             for label in (np.arange(images) % 2)]
    rows = []
    for k, i in enumerate(picks):
        previews, notes = augment_previews(dataset.train.x[i], {entry.name: params},
                                           partners=dataset.train.x[picks], draws=draws,
                                           seed=seed + k)
        if notes:
            raise OptionError(f"--policy {policy}: {notes[0]}")
        name = Path(str(dataset.train.files[i])).name
        rows.append((f"{entry.name}: {name}", previews[0][1], dataset.train.x[i]))
    png = _grid(rows)
    return atomic_write_bytes(out, png)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_out(out: Path) -> None:
    """``--out`` must name a ``.png`` file, and an existing file there must be a PNG (an
    earlier preview): a trial's record.json or model.keras given by mistake is not replaced."""
    from .errors import OptionError

    if out.suffix.lower() != ".png":
        raise OptionError(f"--out {out}: give a file name ending in .png")
    if out.exists() and not out.is_file():  # a FIFO would hang the read below
        raise OptionError(f"--out {out}: exists and is not a regular file; not replaced")
    if out.exists() and out.stat().st_size:  # an empty placeholder (mktemp) is fine
        try:
            with out.open("rb") as f:
                head = f.read(len(PNG_SIGNATURE))
        except OSError as e:
            raise OptionError(f"--out {out}: cannot read the existing file ({e})") from None
        if head != PNG_SIGNATURE:
            raise OptionError(f"--out {out}: an existing file that is not a PNG; not replaced "
                              "(give a new name or remove it)")


def _grid(rows) -> bytes:
    from .report.figures import figure, plain, to_png
    from .report.pixels import show

    draws = max(len(r[1]) for r in rows)
    with figure(1.45 * (draws + 1) + 0.5, 1.5 * len(rows) + 0.3, left=0.4, right=0.05,
                bottom=0.05, top=0.25, wspace=0.06, hspace=0.2) as fig:
        axes = fig.subplots(len(rows), draws + 1, squeeze=False)
        for r, (label, augmented, original) in enumerate(rows):
            for ax in axes[r]:
                ax.axis("off")
            image, kw = show(original)
            axes[r, 0].imshow(image, **kw)
            axes[r, 0].set_title(plain(label, 30), fontsize=6)
            for c, draw in enumerate(augmented, start=1):
                shown, kw = show(draw)
                axes[r, c].imshow(shown, **({**kw, "vmax": 1} if kw else {}))
        return to_png(fig)
