"""The keras.applications / ResNet families and the RandAugment, erasing, MixUp, CutMix and
combined policies: tunables, channels, local weights files (no network), training-only
behaviour and the batch-level mixing functions."""

from __future__ import annotations

import importlib
import socket
import urllib.request

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from autopneumo.augment._mixing import (  # noqa: E402
    BatchPolicy,
    MixedBatches,
    batch_transform,
    cutmix_batch,
    mixup_batch,
)
from autopneumo.augment.erasing import RandomErase  # noqa: E402
from autopneumo.augment.randaugment import RandAugment  # noqa: E402
from autopneumo.errors import OptionError  # noqa: E402
from autopneumo.hypermodel import build_model, class_weights  # noqa: E402
from autopneumo.registry import FAMILIES, POLICIES  # noqa: E402
from autopneumo.spaces import builtin_space  # noqa: E402

APPLICATIONS = ("densenet121", "efficientnet_b0", "mobilenet_v3_small")
NEW_FAMILIES = ("resnet",) + APPLICATIONS
NEW_POLICIES = ("randaugment", "mixup", "cutmix", "erasing", "combined")
# small settings per family, and a larger one that must have more parameters
SMALL = {"resnet": {"width": 0.25}, "densenet121": {"blocks": "2-2-2-2"},
         "efficientnet_b0": {"width": 0.25, "depth": 0.5},
         "mobilenet_v3_small": {"alpha": 0.5, "minimalistic": True}}
LARGER = {"resnet": {"width": 0.25, "depth": 34}, "densenet121": {"blocks": "2-4-8-4"},
          "efficientnet_b0": {"width": 0.5, "depth": 0.5},
          "mobilenet_v3_small": {"alpha": 0.75, "minimalistic": True}}


def features(family: str, shape, **params):
    inputs = keras.Input(shape=shape)
    return keras.Model(inputs, FAMILIES.get(family).builder(inputs, **params))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(urllib.request, "urlretrieve", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(keras.utils, "get_file", refuse)
    monkeypatch.setattr(importlib.import_module("keras.src.utils.file_utils"), "get_file", refuse)


def test_registered_with_spaces_that_match_the_builders():
    assert set(NEW_FAMILIES) <= set(FAMILIES.names())
    assert set(NEW_POLICIES) <= set(POLICIES.names())
    for name in NEW_FAMILIES + ("resnet18",):
        entry = FAMILIES.get(name)
        space = builtin_space("family", name)
        space.check_names(entry.parameters(), name)
        assert "weights" not in space.hyperparameters  # a fixed option, never tuned
        assert entry.min_image_size == 32
    for name in NEW_POLICIES:
        builtin_space("augment", name).check_names(POLICIES.get(name).parameters(), name)
    for name in APPLICATIONS:  # --weights: a keyword-only argument, None by default
        entry = FAMILIES.get(name)
        assert entry.parameters()["weights"] is None
        assert set(entry.builder.pretrained_fixed) <= set(entry.parameters())
    assert "weights" not in FAMILIES.get("resnet").parameters()


def test_resnet18_is_resnet_at_depth_18():
    params = {"width": 0.25, "dropout": 0.1, "weight_decay": 1e-5}
    assert FAMILIES.get("resnet18").parameters() == {"width": 0.5, "dropout": 0.0,
                                                     "weight_decay": 1e-5}
    a = features("resnet18", (32, 32, 1), **params)
    b = features("resnet", (32, 32, 1), depth=18, **params)
    assert a.count_params() == b.count_params()
    with pytest.raises(OptionError, match="depth"):
        features("resnet", (32, 32, 1), depth=50)


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_tunables_change_the_architecture(family):
    small = features(family, (32, 32, 1), **SMALL[family])
    large = features(family, (32, 32, 1), **LARGER[family])
    assert len(small.output.shape) == 2
    assert large.count_params() > small.count_params()


@pytest.mark.parametrize("family", APPLICATIONS)
def test_one_and_three_channel_inputs_build(family):
    grey = features(family, (32, 32, 1), **SMALL[family])
    rgb = features(family, (32, 32, 3), **SMALL[family])
    assert grey.output.shape == rgb.output.shape
    assert rgb.count_params() > grey.count_params()  # only the stem's kernel differs
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    assert np.all(np.isfinite(np.asarray(rgb(x))))


def _named_weights(model):
    return {layer.name: layer.get_weights() for layer in model.layers
            if layer.weights and not isinstance(layer, keras.layers.Normalization)}


@pytest.mark.parametrize("family", APPLICATIONS)
def test_local_weights_file_loads_without_network(family, tmp_path, no_network):
    module = importlib.import_module(f"autopneumo.families.{family}")
    source = module.backbone(input_shape=(32, 32, 3), **SMALL[family])
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    saved = _named_weights(source)

    model = features(family, (32, 32, 1), weights=str(path), **SMALL[family])
    (rgb,) = [la for la in model.layers if la.name.endswith("_rgb")]
    assert isinstance(rgb, keras.layers.Concatenate) and rgb.output.shape[-1] == 3
    loaded = _named_weights(model)
    assert set(saved) <= set(loaded)
    for name, arrays in saved.items():
        for a, b in zip(arrays, loaded[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    fresh = _named_weights(features(family, (32, 32, 3), **SMALL[family]))
    assert any(not np.array_equal(a, b) for name in saved
               for a, b in zip(saved[name], fresh[name], strict=True))


def test_legacy_h5_file_like_keras_imagenet_files_loads(tmp_path, no_network):
    """Keras' ImageNet "notop" files are legacy .h5 files, loaded by layer order."""
    h5py = pytest.importorskip("h5py")
    legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    from autopneumo.families import mobilenet_v3_small as module

    small = SMALL["mobilenet_v3_small"]
    source = module.backbone(input_shape=(32, 32, 3), **small)
    path = tmp_path / "notop.h5"
    with h5py.File(path, "w") as f:
        legacy.save_weights_to_hdf5_group(f, source)
    model = features("mobilenet_v3_small", (32, 32, 1), weights=str(path), **small)
    loaded = _named_weights(model)
    for name, arrays in _named_weights(source).items():
        for a, b in zip(arrays, loaded[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    with pytest.raises(OptionError, match="does not fit"):
        features("mobilenet_v3_small", (32, 32, 1), weights=str(path), alpha=0.75)


def test_efficientnet_with_weights_normalises_like_imagenet_and_round_trips(tmp_path,
                                                                           no_network):
    from autopneumo.families import efficientnet_b0 as module

    small = SMALL["efficientnet_b0"]
    path = tmp_path / "b.weights.h5"
    module.backbone(input_shape=(32, 32, 3), **small).save_weights(path)
    model = build_model(FAMILIES.get("efficientnet_b0"), POLICIES.get("none"), (32, 32, 1),
                        {**small, "weights": str(path)})
    norm = next(la for la in model.layers if isinstance(la, keras.layers.Normalization))
    np.testing.assert_allclose(np.ravel(norm.mean), [0.485, 0.456, 0.406], rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.ravel(norm.variance)), [0.229, 0.224, 0.225],
                               rtol=1e-6)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    before = np.asarray(model(x, training=False))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), before, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weights_that_do_not_fit_are_a_clear_error(tmp_path, no_network):
    from autopneumo.families import densenet121 as module

    path = tmp_path / "other.weights.h5"
    module.backbone(input_shape=(32, 32, 3), blocks="2-2-2-2").save_weights(path)
    with pytest.raises(OptionError, match="does not fit family densenet121") as info:
        features("densenet121", (32, 32, 1), blocks="2-4-8-4", weights=str(path))
    assert "the architecture it pins (blocks 6-12-24-16)" in str(info.value)
    with pytest.raises(OptionError, match="no such file"):
        features("densenet121", (32, 32, 1), weights=str(tmp_path / "missing.h5"))


IMAGES = np.random.default_rng(3).random((6, 32, 32, 1)).astype("float32")


def test_erasing_changes_pixels_in_training_only():
    layer = RandomErase(probability=1.0, max_area=0.3, seed=1)
    out = np.asarray(layer(IMAGES, training=True))
    changed = (out != IMAGES).reshape(len(IMAGES), -1).mean(axis=1)
    assert np.all(changed > 0.005) and np.all(changed < 0.35)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(np.asarray(layer(IMAGES, training=False)), IMAGES)
    np.testing.assert_array_equal(np.asarray(layer(IMAGES)), IMAGES)
    assert RandomErase.from_config(layer.get_config()).get_config() == layer.get_config()
    assert POLICIES.get("erasing").builder(probability=0.0) == []


@pytest.mark.parametrize("channels", [1, 3])
def test_randaugment_changes_images_in_training_only(channels):
    x = np.repeat(IMAGES, channels, axis=-1)
    layer = RandAugment(num_ops=2, magnitude=0.5, seed=2)
    out = np.asarray(layer(x, training=True))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not np.allclose(out, x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    assert RandAugment.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize("magnitude, fewest_bits", [(0.1, 8), (0.5, 6), (1.0, 4)])
def test_randaugment_posterize_keeps_at_least_the_bits_its_magnitude_says(magnitude,
                                                                          fewest_bits):
    """Posterize keeps between 8 - 4 * magnitude (at least 4) and 8 bits of each image;
    Keras reads a single int k as 1 to k-1 bits, down to 2 grey levels at any magnitude."""
    from autopneumo.augment.randaugment import operations

    [posterize] = [op for op in operations(magnitude)
                   if type(op).__name__ == "RandomPosterization"]
    ramp = np.tile(np.arange(256, dtype=np.float32) / 255, (64, 16, 1))[..., None]  # 64 images
    out = np.asarray(posterize(ramp, training=True))
    levels = {len(np.unique(np.round(image * 255))) for image in out}
    assert min(levels) == 2 ** fewest_bits and max(levels) <= 256, sorted(levels)


def test_augmentation_layers_are_inactive_in_a_model_at_inference():
    for name in ("randaugment", "erasing", "combined"):
        model = build_model(FAMILIES.get("base_cnn"), POLICIES.get(name), (32, 32, 1),
                            {"depth": 2, "width": 0.5})
        x = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
        np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("policy", ["flip", "geometric", "photometric", "combined"])
def test_the_model_called_without_training_does_not_augment(policy, tmp_path):
    """Keras' random layers default to training=True: in a plain Sequential, ``model(x)``
    on a saved model, and ``model.export()``'s serving graph, flipped, rotated or
    re-exposed what they scored (review 21). Only ``training=True`` (fit) augments."""
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get(policy), (32, 32, 1),
                        {"depth": 2, "width": 0.5}, {}, training={"epochs": 1})
    x = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 1)).astype("uint8")
    probe = keras.Model(model.inputs, model.get_layer("augmentation").output)
    plain = np.asarray(probe(x, training=False))
    for _ in range(3):
        np.testing.assert_allclose(np.asarray(probe(x)), plain, atol=1e-6)
    assert np.abs(np.asarray(probe(x, training=True)) - plain).max() > 0.01  # it augments
    model.save(tmp_path / "model.keras")
    from autopneumo.hypermodel import load_trained_model

    loaded = load_trained_model(tmp_path / "model.keras")
    expected = np.asarray(model.predict_on_batch(x))
    for _ in range(3):
        np.testing.assert_allclose(np.asarray(loaded(x)), expected, atol=1e-6)


def test_a_savedmodel_export_serves_unaugmented_predictions(tmp_path):
    """``model.export()`` (TF Serving, TFLite) traces ``model.__call__`` without training:
    the flip was baked into the serving graph, different on every call (review 21)."""
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("SavedModel export needs the TensorFlow backend")
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("flip"), (32, 32, 1),
                        {"depth": 2, "width": 0.5}, {}, training={"epochs": 1})
    x = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 1)).astype("uint8")
    expected = np.asarray(model.predict_on_batch(x))
    model.export(str(tmp_path / "served"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "served"))
    for _ in range(3):
        np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(), expected, atol=1e-5)


def two_images():
    x = np.stack([np.zeros((16, 16, 1), np.uint8), np.full((16, 16, 1), 255, np.uint8)])
    return x, np.array([0, 1], dtype=np.uint8)


def test_mixup_blends_images_and_labels_alike():
    x, y = two_images()
    rng = np.random.default_rng(0)
    mixed_any = False
    for _ in range(20):
        xm, ym = mixup_batch(x, y, alpha=0.4, probability=1.0, rng=rng)
        assert xm.dtype == np.uint8 and ym.dtype == np.float32
        assert np.all((ym >= 0) & (ym <= 1))
        # each image is uniform; its brightness share is its label
        np.testing.assert_allclose(xm.reshape(2, -1).mean(axis=1) / 255, ym, atol=1 / 255)
        mixed_any |= bool(np.any((ym > 0.01) & (ym < 0.99)))
    assert mixed_any
    xm, ym = mixup_batch(x, y, alpha=0.4, probability=0.0, rng=rng)
    np.testing.assert_array_equal(xm, x)
    np.testing.assert_array_equal(ym, y)


def test_cutmix_mixes_labels_by_the_pasted_area():
    x, y = two_images()
    rng = np.random.default_rng(1)
    mixed_any = False
    for _ in range(20):
        xm, ym = cutmix_batch(x, y, alpha=1.0, probability=1.0, rng=rng)
        assert xm.dtype == np.uint8 and np.all((ym >= 0) & (ym <= 1))
        np.testing.assert_allclose((xm == 255).reshape(2, -1).mean(axis=1), ym, atol=1e-6)
        mixed_any |= bool(np.any((ym > 0) & (ym < 1)))
    assert mixed_any


def test_batch_policies_give_no_layers_but_a_transform():
    for name in ("mixup", "cutmix"):
        policy = POLICIES.get(name)
        built = policy.builder(**builtin_space("augment", name).defaults())
        assert isinstance(built, BatchPolicy) and not built  # build_model adds no block
        assert callable(batch_transform(built))
    assert batch_transform(POLICIES.get("combined").builder()) is None


def test_mixed_batches_train_a_model_with_interpolated_class_weights():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 32, 32, 1), dtype=np.uint8)
    y = np.array([0] * 15 + [1] * 5, dtype=np.uint8)
    weights = class_weights(y)
    transform = batch_transform(POLICIES.get("mixup").builder(alpha=0.4))
    data = MixedBatches(x, y, 8, transform, class_weight=weights, seed=1)
    assert len(data) == 3
    xb, yb, wb = data[0]
    assert xb.shape == (8, 32, 32, 1) and xb.dtype == np.uint8
    np.testing.assert_allclose(wb, (1 - yb) * weights[0] + yb * weights[1], rtol=1e-6)
    again = MixedBatches(x, y, 8, transform, class_weight=weights, seed=1)[0]
    np.testing.assert_array_equal(again[0], xb)  # repeatable from the seed
    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("mixup"), (32, 32, 1),
                        {"depth": 2, "width": 0.5})
    model.run_eagerly = True  # three small steps: tracing would cost more
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_saved_models_with_custom_layers_load_in_a_fresh_process(tmp_path):
    """Policies with registered custom layers load where nothing imported them yet."""
    import subprocess
    import sys

    from autopneumo.hypermodel import build_model
    from autopneumo.registry import FAMILIES, POLICIES

    model = build_model(FAMILIES.get("base_cnn"), POLICIES.get("erasing"), (32, 32, 1),
                        {"width": 0.25, "depth": 2, "dense_units": "8"})
    model.save(tmp_path / "m.keras")
    code = ("from autopneumo.hypermodel import load_trained_model; "
            f"m = load_trained_model({str(tmp_path / 'm.keras')!r}); print(m.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "base_cnn__erasing" in out.stdout


def test_weights_option_pins_the_pretrained_architecture(tmp_path):
    from autopneumo.errors import OptionError
    from autopneumo.tuning import SearchConfig, resolve_spaces

    weights = tmp_path / "imagenet_notop.h5"
    weights.write_bytes(b"not read here")
    resolved = resolve_spaces(SearchConfig("mobilenet_v3_small", "none", image_size=64,
                                           weights=weights))
    values = resolved["spaces"]["family"].defaults()
    assert values["weights"] == str(weights.resolve())
    for key, value in FAMILIES.get("mobilenet_v3_small").builder.pretrained_fixed.items():
        assert values[key] == value
    # the backbone expects a [0, 1] image: per-image standardisation is fixed off
    standardize = resolved["spaces"]["training"].hyperparameters["standardize"]
    assert standardize.type == "fixed" and standardize.value is False
    plain = resolve_spaces(SearchConfig("mobilenet_v3_small", "none", image_size=64))
    assert plain["spaces"]["training"].hyperparameters["standardize"].type != "fixed"
    with pytest.raises(OptionError, match="cannot load pretrained weights"):
        resolve_spaces(SearchConfig("base_cnn", "none", image_size=64, weights=weights))
    with pytest.raises(OptionError, match="file not found"):
        resolve_spaces(SearchConfig("densenet121", "none", image_size=64,
                                    weights=tmp_path / "missing.h5"))


def test_pretrained_rows_are_marked(tmp_path):
    import json

    import autopneumo
    from autopneumo.report import write_report
    from tests.records import write_record

    path = write_record(tmp_path / "runs", "densenet121", "none", "0", 0.3)
    record = json.loads(path.read_text())
    record["hyperparameters"]["model.weights"] = "/models/densenet121_notop.h5"
    path.write_text(json.dumps(record))
    write_record(tmp_path / "runs", "base_cnn", "none", "0", 0.2, seed=4)
    frame = autopneumo.leaderboard(tmp_path / "runs")
    assert frame.set_index("family")["pretrained"].to_dict() == {"densenet121": True,
                                                                  "base_cnn": False}
    write_report(tmp_path / "runs", tmp_path / "out", pixels=False)
    assert '<span class="tag">pretrained</span>' in (tmp_path / "out" / "index.html").read_text()


def test_builder_defaults_are_their_search_spaces_defaults():
    """Building a family or policy directly (tests, helpers, the Python API) gives the
    network its search space starts from; densenet121's blocks default to the real
    DenseNet-121 (what ImageNet weights fit), its space to a smaller one."""
    from autopneumo.spaces import load_space

    differ = []
    for registry in (FAMILIES, POLICIES):
        for name in registry.names():
            entry = registry.get(name)
            space = load_space(entry.space_file).defaults()
            differ += [(name, k, v, space[k]) for k, v in entry.parameters().items()
                       if k in space and space[k] != v and k != "weights"]
    assert differ == [("densenet121", "blocks", "6-12-24-16", "2-4-8-4")]


@pytest.mark.slow
def test_a_family_and_a_policy_from_outside_the_package_run_end_to_end(tmp_path):
    """The extensibility review's Q2: a pip-installed autopneumo had no way to add a family
    (no entry points, no plugin path, and the space file had to sit in a full copy of
    search_spaces/). An installed package's entry point adds a family, AUTOPNEUMO_PLUGINS a
    module on the path; each names its own space file; the CLI sees both."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import make_kermany

    site = tmp_path / "site"
    info = site / "vggplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vggplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[autopneumo.families]\nvgg_tiny = vggplug\n")
    (site / "vggplug.py").write_text(
        "from pathlib import Path\n"
        "from keras import layers\n"
        "from autopneumo.families import register_family\n\n"
        "@register_family('vgg_tiny', description='two conv blocks',\n"
        "                 space=Path(__file__).with_name('vgg_tiny.yaml'))\n"
        "def vgg_tiny(x, *, filters: int = 8):\n"
        "    x = layers.Conv2D(filters, 3, activation='relu')(x)\n"
        "    return layers.GlobalAveragePooling2D()(x)\n")
    (site / "vgg_tiny.yaml").write_text(
        "kind: family\nname: vgg_tiny\nhyperparameters:\n"
        "  filters: {type: choice, values: [4, 8], default: 4}\n")
    (site / "gammaplug.py").write_text(
        "from pathlib import Path\n"
        "from keras import layers\n"
        "from autopneumo.augment import register_policy\n\n"
        "@register_policy('brighter', description='random brightness',\n"
        "                 space=Path(__file__).with_name('brighter.yaml'))\n"
        "def brighter(*, factor: float = 0.1):\n"
        "    return [layers.RandomBrightness(factor, value_range=(0, 1))]\n")
    (site / "brighter.yaml").write_text(
        "kind: augment\nname: brighter\nhyperparameters:\n"
        "  factor: {type: fixed, value: 0.1}\n")
    data = make_kermany(tmp_path / "data")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[1])]),
           "AUTOPNEUMO_PLUGINS": "gammaplug", "AUTOPNEUMO_CACHE": str(tmp_path / "cache")}
    env.pop("AUTOPNEUMO_SPACES", None)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "autopneumo", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=600)

    listed = cli("families")
    assert listed.returncode == 0 and "vgg_tiny" in listed.stdout, listed.stderr
    assert "(missing)" not in listed.stdout
    assert "brighter" in cli("policies").stdout
    runs = tmp_path / "runs"
    searched = cli("search", "--family", "vgg_tiny", "--augment", "brighter", "--data", data,
                   "--tuner", "random", "--max-trials", "1", "--epochs", "1", "--image-size",
                   "32", "--runs-dir", runs)
    assert searched.returncode == 0, searched.stderr[-2000:]
    exported = cli("export", "--runs-dir", runs, "--out", tmp_path / "exp")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "exp" / "model_card.json").is_file()


def test_augmentation_previews_are_repeatable_for_a_seed():
    """The previews (the report's augmentation figure, ``augment preview``) built Keras'
    layers unseeded: the same seed drew other rotations on every run (review 21)."""
    import random

    from autopneumo.report.pixels import augment_previews

    image = np.random.default_rng(0).integers(0, 255, (32, 32, 1)).astype("uint8")
    hps = {"augment.rotation": 0.1, "augment.zoom": 0.2, "augment.translation": 0.1}
    state = (random.getstate(), np.random.get_state()[1].copy())
    first, _ = augment_previews(image, {"geometric": hps}, draws=3, seed=0)
    second, _ = augment_previews(image, {"geometric": hps}, draws=3, seed=0)
    other, _ = augment_previews(image, {"geometric": hps}, draws=3, seed=1)
    np.testing.assert_array_equal(first[0][1], second[0][1])
    assert not np.array_equal(first[0][1], other[0][1])
    assert random.getstate() == state[0]  # the caller's generators given back
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])
    # and TensorFlow's global seed is not left set (a caller's unseeded draws would repeat)
    tf = pytest.importorskip("tensorflow")
    draws = []
    for _ in range(2):
        augment_previews(image, {"flip": {}}, draws=1, seed=0)
        draws.append(tf.random.uniform([8]).numpy())
    assert not np.array_equal(draws[0], draws[1])


def test_randaugment_equalize_treats_each_image_on_its_own():
    """RandAugment's equalize was keras.layers.Equalization, one histogram over the whole
    batch: an image's result changed with its batch mates, by up to 0.25 (review 21)."""
    from autopneumo.augment.randaugment import operations

    rng = np.random.default_rng(0)
    a = (rng.random((1, 16, 16, 1)) * 0.3 + 0.2).astype("float32")  # low contrast
    b = (rng.random((1, 16, 16, 1)) * 0.9).astype("float32")
    equalize = operations(0.5)[-1]
    alone = np.asarray(equalize(a, training=True))[0]
    together = np.asarray(equalize(np.concatenate([a, b]), training=True))[0]
    np.testing.assert_allclose(alone, together, atol=1e-6)
    assert alone.min() == 0.0 and alone.max() == 1.0  # stretched over the whole range
    ranks = np.argsort(np.argsort(a.ravel(), kind="stable"), kind="stable")
    assert np.all(np.diff(alone.ravel()[np.argsort(ranks)]) >= 0)  # order kept


def test_a_model_saved_with_a_plain_sequential_augmentation_loads_without_it_on(tmp_path):
    """Models saved before the Augmentation layer hold a plain Sequential, on when called
    without training; loaded by autopneumo it is an Augmentation, weights unchanged
    (diff review 21)."""
    from autopneumo.hypermodel import load_trained_model
    from autopneumo.preprocessing import Augmentation

    inputs = keras.Input((32, 32, 1), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                          keras.layers.RandomRotation(0.2)], name="augmentation")(x)
    x = keras.layers.Conv2D(2, 3)(x)
    x = keras.layers.Flatten()(x)
    old = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="pneumonia")(x))
    old.save(tmp_path / "model.keras")
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 1)).astype("uint8")
    expected = np.asarray(old.predict_on_batch(images))
    assert max(np.abs(np.asarray(old(images)) - expected).max() for _ in range(3)) > 1e-3
    for data in (None, (tmp_path / "model.keras").read_bytes()):
        loaded = load_trained_model(tmp_path / "model.keras", data)
        assert isinstance(loaded.get_layer("augmentation"), Augmentation)
        for _ in range(3):
            np.testing.assert_allclose(np.asarray(loaded(images)), expected, atol=1e-6)
        probe = keras.Model(loaded.inputs, loaded.get_layer("augmentation").output)
        assert np.abs(np.asarray(probe(images, training=True))
                      - np.asarray(probe(images))).max() > 0.01  # still augments in training
