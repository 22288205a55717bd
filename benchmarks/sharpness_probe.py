"""Do trained models lean on sharpness? Blur or sharpen the official test images and
watch each class's mean probability of pneumonia.

A model that reads the lungs should hardly move under a slight blur (sigma 0.7-1.2 px at
128 px). One that has learnt "sharp means normal" from the training images calls blurred
normal images pneumonia more often. Test AUC is printed too: a uniform blur moves both
classes, so AUC alone hides the effect.

usage: python benchmarks/sharpness_probe.py --data ../shared/data/chest_xray MODEL.keras ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VARIANTS = (("original", 0.0, 0.0), ("blur 0.7", 0.7, 0.0), ("blur 1.2", 1.2, 0.0),
            ("sharpen 0.5", 0.0, 0.5), ("sharpen 1.0", 0.0, 1.0))


def variant(x, blur: float, sharpen: float):
    """``x``: (N, S, S, 1) uint8. Gaussian blur of ``blur`` px, or an unsharp mask of
    amount ``sharpen`` (radius 1 px)."""
    import numpy as np
    from scipy import ndimage

    f = x.astype(np.float32)
    if blur:
        f = ndimage.gaussian_filter(f, (0, blur, blur, 0))
    if sharpen:
        f = f + sharpen * (f - ndimage.gaussian_filter(f, (0, 1.0, 1.0, 0)))
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Kermany folder")
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args(argv)

    from autopneumo.backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from autopneumo.backend import predict_batches
    from autopneumo.data.cache import load_or_decode
    from autopneumo.data.kermany import scan_kermany
    from autopneumo.hypermodel import load_trained_model

    scan = scan_kermany(args.data)
    rows, test = [], {}
    for path in args.models:
        net = load_trained_model(path)
        _, size, _, channels = net.input_shape
        if (size, channels) not in test:  # the project's decode cache, test split only
            decoded = load_or_decode(scan, size, channels)
            keep = np.asarray(decoded.splits) == "test"
            test[size, channels] = (np.asarray(decoded.images)[keep],
                                    np.asarray(decoded.labels)[keep].astype(int))
        x, y = test[size, channels]
        for name, blur, sharpen in VARIANTS:
            p = predict_batches(net, variant(x, blur, sharpen), 128).ravel()
            rows.append({"model": str(path), "variant": name, "normal_mean_p": p[y == 0].mean(),
                         "pneumonia_mean_p": p[y == 1].mean(), "test_auc": roc_auc_score(y, p)})
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(frame.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
