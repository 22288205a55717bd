"""What saving a trial's model by rename and loading predict's model from the bytes it
checked cost, side by side with Keras' own save and load by path (alternated, medians of
8): ``python benchmarks/model_files.py``."""

import os
import statistics
import tempfile
import time
from pathlib import Path

from autopneumo.backend import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402

from autopneumo.atomic import atomic_save_model  # noqa: E402
from autopneumo.hypermodel import build_model, load_trained_model  # noqa: E402
from autopneumo.registry import FAMILIES, POLICIES  # noqa: E402

tmp = Path(tempfile.mkdtemp())
for fam in ("base_cnn", "densenet121"):
    model = build_model(FAMILIES.get(fam), POLICIES.get("photometric"), (128, 128, 1))
    path = tmp / f"{fam}.keras"
    saves = {"in place": [], "by rename": []}
    for i in range(8):
        for side in (("in place", "by rename") if i % 2 == 0 else ("by rename", "in place")):
            t = time.perf_counter()
            if side == "in place":
                model.save(path)
            else:
                atomic_save_model(model, path)
            saves[side].append(time.perf_counter() - t)
    size = path.stat().st_size / 1e6
    loads = {"by path": [], "bytes + private copy": []}
    for i in range(8):
        order = ("by path", "bytes + private copy")
        for side in order if i % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            if side == "by path":
                load_trained_model(path)
            else:
                load_trained_model(path, path.read_bytes())
            loads[side].append(time.perf_counter() - t)
            keras.backend.clear_session()
    m = {k: statistics.median(v) for k, v in {**saves, **loads}.items()}
    copy = m["bytes + private copy"]
    print(f"{fam} ({size:.1f} MB): save in place {m['in place'] * 1e3:.0f} ms, by rename "
          f"{m['by rename'] * 1e3:.0f} ms (ratio {m['by rename'] / m['in place']:.3f}); load by "
          f"path {m['by path'] * 1e3:.0f} ms, bytes + private copy {copy * 1e3:.0f} ms "
          f"(ratio {copy / m['by path']:.3f})")
print("load average", os.getloadavg())
