"""Search-space files: the built-in ones load and apply; every error names file, key, line."""

from __future__ import annotations

import math
import re
import tempfile
import textwrap
from pathlib import Path
from typing import Annotated

import keras_tuner as kt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autopneumo.errors import SpaceError
from autopneumo.paths import spaces_dir
from autopneumo.spaces import RATE, SearchSpace, builtin_space, in_range, load_space

BUILTIN = sorted(spaces_dir().rglob("*.yaml"))
PREFIX = {"family": "model", "augment": "augment", "training": "train"}


def test_builtin_spaces_are_found():
    names = {p.relative_to(spaces_dir()).as_posix() for p in BUILTIN}
    assert "training.yaml" in names
    assert "families/base_cnn.yaml" in names
    assert "augment/none.yaml" in names
    assert len(BUILTIN) >= 5


def _expected_default(spec: dict):
    kind = spec["type"]
    if kind == "fixed":
        return spec["value"]
    if kind == "boolean":
        return spec.get("default", False)
    if kind == "choice":
        return spec.get("default", spec["values"][0])
    return spec.get("default", spec["min"])  # int / float: keras-tuner starts at min


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.relative_to(spaces_dir()).as_posix())
def test_builtin_space_loads_and_applies_defaults(path):
    raw = yaml.safe_load(path.read_text())
    space = load_space(path)
    assert isinstance(space, SearchSpace)
    assert space.kind == raw["kind"] and space.name == raw["name"]
    assert space.path == path
    assert list(space.hyperparameters) == list(raw.get("hyperparameters") or {})
    # the file name is the space's name, and builtin_space finds it
    assert path.stem == space.name
    again = builtin_space(space.kind, space.name)
    assert again.hyperparameters == space.hyperparameters

    hp = kt.HyperParameters()
    values = space.apply(hp)
    expected = {
        name: _expected_default(spec) for name, spec in (raw.get("hyperparameters") or {}).items()
    }
    assert values.keys() == expected.keys()
    for name, value in expected.items():
        assert values[name] == pytest.approx(value), name
        assert type(values[name]) in (type(value), float), name
        assert hp.values[f"{PREFIX[space.kind]}.{name}"] == values[name]
    assert len(hp.values) == len(expected)
    assert space.defaults() == values


def test_apply_conditional_hyperparameters(tmp_path):
    path = _write(tmp_path, """\
        kind: family
        name: cond
        hyperparameters:
          deep: {type: boolean, default: false}
          units: {type: int, min: 32, max: 256, step: 32, default: 64, when: {deep: [true]}}
          width: {type: choice, values: [1, 2.5], default: 1}
        """)
    space = load_space(path)
    values = space.apply(kt.HyperParameters())
    assert values == {"deep": False, "width": 1.0}  # units inactive
    assert isinstance(values["width"], float)  # mixed int/float choices become floats
    hp = kt.HyperParameters()
    hp.values["model.deep"] = True
    assert space.apply(hp) == {"deep": True, "units": 64, "width": 1.0}


def test_with_fixed_overrides_values(tmp_path):
    space = builtin_space("training", "training").with_fixed(epochs=2, batch_size=8)
    values = space.apply(kt.HyperParameters())
    assert values["epochs"] == 2 and values["batch_size"] == 8


def test_space_name_mismatch(tmp_path, monkeypatch):
    folder = tmp_path / "spaces" / "families"
    folder.mkdir(parents=True)
    (folder / "other.yaml").write_text("kind: family\nname: base_cnn\nhyperparameters: {}\n")
    monkeypatch.setenv("AUTOPNEUMO_SPACES", str(tmp_path / "spaces"))
    with pytest.raises(SpaceError, match="expected family 'other'"):
        builtin_space("family", "other")


# ---------------------------------------------------------------------------- errors


def _write(folder: Path, text: str, name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _line_of(path: Path, needle: str) -> int:
    """1-based number of the only line containing ``needle``."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def _error(path: Path) -> str:
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message  # one line for the CLI
    return message


def _assert_line(message: str, line: int) -> None:
    found = re.findall(r"line (\d+)", message)
    assert found == [str(line)], message


HEADER = """\
    kind: family
    name: demo
    description: a test space
    hyperparameters:
"""


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = _write(tmp_path, HEADER + """\
      width: {type: int, min: 1, max: 4}
      depth: type: int
      dropout: {type: float, min: 0.0, max: 0.5}
    """)
    message = _error(path)
    assert "invalid YAML" in message
    _assert_line(message, _line_of(path, "depth:"))


def test_invalid_yaml_unclosed_flow_mapping(tmp_path):
    path = _write(tmp_path, HEADER + """\
      width: {type: int, min: 1, max: 4
      depth: {type: int, min: 1, max: 4}
    """)
    message = _error(path)
    assert "invalid YAML" in message
    assert re.search(r"line \d+", message)


def test_unknown_hyperparameter_type(tmp_path):
    path = _write(tmp_path, HEADER + """\
      width: {type: int, min: 1, max: 4}
      depth: {type: integer, min: 1, max: 4}
    """)
    message = _error(path)
    assert "hyperparameters.depth" in message
    assert "unknown hyperparameter type 'integer'" in message
    _assert_line(message, _line_of(path, "depth:"))


def test_missing_type(tmp_path):
    path = _write(tmp_path, HEADER + """\
      width: {type: int, min: 1, max: 4}
      depth: {min: 1, max: 4}
    """)
    message = _error(path)
    assert "hyperparameters.depth" in message and "missing 'type'" in message
    _assert_line(message, _line_of(path, "depth:"))


@pytest.mark.parametrize("kind", ["int", "float"])
def test_min_greater_than_max(tmp_path, kind):
    path = _write(tmp_path, HEADER + f"""\
      width: {{type: choice, values: [1, 2]}}
      depth:
        type: {kind}
        min: 5
        max: 2
    """)
    message = _error(path)
    assert "hyperparameters.depth" in message
    assert re.search(r"min \(5(\.0)?\) > max \(2(\.0)?\)", message), message
    _assert_line(message, _line_of(path, "depth:"))


@pytest.mark.parametrize("kind", ["int", "float"])
def test_log_sampling_step_must_be_a_factor(tmp_path, kind):
    path = _write(tmp_path, HEADER + f"""\
      units: {{type: {kind}, min: 16, max: 256, sampling: log, step: 1}}
    """)
    message = _error(path)
    assert "hyperparameters.units" in message and "step" in message
    _assert_line(message, _line_of(path, "units:"))


def test_log_sampling_applies_with_and_without_step(tmp_path):
    path = _write(tmp_path, HEADER + """\
      a: {type: int, min: 16, max: 256, sampling: log}
      b: {type: int, min: 16, max: 256, sampling: log, step: 2, default: 64}
      c: {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log}
    """)
    space = load_space(path)
    hp = kt.HyperParameters()
    assert space.apply(hp) == {"a": 16, "b": 64, "c": pytest.approx(1e-4)}
    assert hp.get_config()["space"][1]["config"]["step"] == 2
    # b takes the powers-of-two grid 16, 32, ..., 256
    b = hp.space[1]
    grid = sorted({b.prob_to_value(i / 50) for i in range(50)})
    assert grid == [16, 32, 64, 128, 256]


def test_a_stepless_log_int_never_goes_past_its_max(tmp_path):
    """Review 22: keras-tuner maps a stepless log Int's top probability (1.0, where the
    bayesian tuner's optimiser lands on its bound) to max + 1: a base_cnn depth of 2 to
    4, checked value by value against the builder's range, trained and recorded depth 5.
    The trial's value (what its record keeps) is max."""
    path = _write(tmp_path, HEADER + """\
      a: {type: int, min: 2, max: 4, sampling: log}
      b: {type: int, min: 2, max: 4, sampling: log, when: {a: [4]}}
    """)
    space = load_space(path)
    hp = kt.HyperParameters()
    space.apply(hp)
    assert hp.space[0].prob_to_value(1.0) == 5  # keras-tuner's own mapping
    hp.values["model.a"] = hp.values["model.b"] = 5  # as the oracle sets them from 1.0
    assert space.apply(hp) == {"a": 4, "b": 4}
    assert hp.values == {"model.a": 4, "model.b": 4}
    hp.values["model.a"] = 3  # b inactive: None, and nothing else changes
    assert space.apply(hp) == {"a": 3} and hp.values["model.a"] == 3


def test_a_reverse_log_stepped_default_on_keras_tuners_grid_loads():
    """keras-tuner draws a stepped reverse_log float from max + min - min * step ** k:
    0.1, 0.0991, 0.0901 and 0.0001 for this range; the file's default is one of them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "base_cnn.yaml"
        path.write_text("kind: family\nname: base_cnn\nhyperparameters:\n"
                        "  cd: {type: float, min: 1.0e-4, max: 1.0e-1, sampling: reverse_log, "
                        "step: 10, default: 0.0901}\n")
        space = load_space(path)
    hp = kt.HyperParameters()
    assert space.apply(hp) == {"cd": pytest.approx(0.0901)}
    grid = sorted({hp.space[0].prob_to_value(i / 50) for i in range(50)})
    assert grid == pytest.approx([1e-4, 0.0901, 0.0991, 0.1])


def test_default_outside_range(tmp_path):
    path = _write(tmp_path, HEADER + """\
      depth: {type: int, min: 1, max: 4, default: 9}
    """)
    message = _error(path)
    assert "hyperparameters.depth" in message and "default 9" in message
    _assert_line(message, _line_of(path, "depth:"))


def test_log_sampling_needs_positive_min(tmp_path):
    path = _write(tmp_path, HEADER + """\
      lr: {type: float, min: 0.0, max: 0.1, sampling: log}
    """)
    message = _error(path)
    assert "hyperparameters.lr" in message and "min > 0" in message
    _assert_line(message, _line_of(path, "lr:"))


def test_empty_choice_list(tmp_path):
    path = _write(tmp_path, HEADER + """\
      depth: {type: int, min: 1, max: 4}
      width:
        type: choice
        values: []
    """)
    message = _error(path)
    assert "hyperparameters.width.values" in message
    _assert_line(message, _line_of(path, "values:"))


def test_choice_default_not_in_values(tmp_path):
    path = _write(tmp_path, HEADER + """\
      width: {type: choice, values: [1, 2], default: 3}
    """)
    message = _error(path)
    assert "hyperparameters.width" in message and "not one of the values" in message
    _assert_line(message, _line_of(path, "width:"))


def test_condition_on_undefined_parameter(tmp_path):
    path = _write(tmp_path, HEADER + """\
      deep: {type: boolean}
      units:
        type: int
        min: 32
        max: 64
        when:
          deeper: [true]
    """)
    message = _error(path)
    assert "units" in message and "'deeper'" in message and "undefined" in message
    assert "hyperparameters.units.when.deeper" in message
    _assert_line(message, _line_of(path, "deeper:"))


def test_condition_on_later_parameter(tmp_path):
    path = _write(tmp_path, HEADER + """\
      units: {type: int, min: 32, max: 64, when: {deep: [true]}}
      deep: {type: boolean}
    """)
    message = _error(path)
    assert "hyperparameters.units" in message and "before" in message
    _assert_line(message, _line_of(path, "units:"))


def test_condition_on_two_parameters_is_rejected(tmp_path):
    path = _write(tmp_path, HEADER + """\
      deep: {type: boolean}
      wide: {type: boolean}
      units:
        type: int
        min: 32
        max: 64
        when: {deep: [true], wide: [true]}
    """)
    message = _error(path)
    assert "hyperparameters.units.when" in message
    _assert_line(message, _line_of(path, "when:"))


def test_unknown_key_with_did_you_mean(tmp_path):
    path = _write(tmp_path, HEADER + """\
      width: {type: choice, values: [1, 2]}
      depth:
        type: int
        min: 1
        max: 4
        defualt: 2
    """)
    message = _error(path)
    assert "hyperparameters.depth.defualt" in message
    assert "unknown key" in message
    assert "did you mean 'default'" in message
    _assert_line(message, _line_of(path, "defualt:"))


def test_unknown_top_level_key(tmp_path):
    path = _write(tmp_path, """\
        kind: family
        name: demo
        hyperparamters:
          width: {type: int, min: 1, max: 2}
        """)
    message = _error(path)
    assert "hyperparamters" in message and "did you mean 'hyperparameters'" in message
    _assert_line(message, 3)


def test_unknown_kind(tmp_path):
    path = _write(tmp_path, "kind: familly\nname: demo\n")
    message = _error(path)
    assert "kind" in message
    _assert_line(message, 1)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_not_a_mapping(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    assert "expected a mapping" in _error(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "missing.yaml"
    message = _error(path)
    assert "not found" in message


def test_unsafe_yaml_tags_are_refused(tmp_path):
    path = _write(tmp_path, "kind: !!python/object/apply:os.system ['true']\nname: x\n")
    assert "invalid YAML" in _error(path)


# ---------------------------------------------------------------------------- check_names


def test_check_names_rejects_unknown_builder_argument(tmp_path):
    from autopneumo.registry import FAMILIES

    entry = FAMILIES.get("base_cnn")
    original = load_space(spaces_dir() / "families" / "base_cnn.yaml")
    original.check_names(entry.parameters(), "family base_cnn")  # the shipped file is fine

    text = (spaces_dir() / "families" / "base_cnn.yaml").read_text()
    assert "\n  width:" in text
    path = tmp_path / "base_cnn.yaml"
    path.write_text(text.replace("\n  width:", "\n  widht:"))
    space = load_space(path)  # valid as a file ...
    with pytest.raises(SpaceError) as info:  # ... but not for this builder
        space.check_names(entry.parameters(), "family base_cnn")
    message = str(info.value)
    assert str(path) in message
    assert "hyperparameters.widht" in message
    assert "did you mean 'width'" in message
    assert "family base_cnn" in message
    _assert_line(message, _line_of(path, "widht:"))


def test_check_names_without_close_match(tmp_path):
    path = _write(tmp_path, HEADER + "      zzz: {type: boolean}\n")
    space = load_space(path)
    with pytest.raises(SpaceError) as info:
        space.check_names({"width": 1.0, "depth": 4}, "family demo")
    message = str(info.value)
    assert "did you mean" not in message
    assert "known: depth, width" in message
    _assert_line(message, _line_of(path, "zzz:"))


# ---------------------------------------------------------------------------- property


@st.composite
def numeric_specs(draw):
    kind = draw(st.sampled_from(["int", "float"]))
    if kind == "int":
        lo = draw(st.integers(-1000, 1000))
        hi = lo + draw(st.integers(0, 1000))
        spec = {"type": "int", "min": lo, "max": hi}
        log = lo > 0 and draw(st.booleans())
        if log:
            spec["sampling"] = "log"
        if draw(st.booleans()):  # with log sampling the step is a factor > 1
            spec["step"] = step = draw(st.integers(2 if log else 1, 50))
            if not log:  # max and default on the grid min + k * step
                spec["max"] = hi = lo + spec["step"] * ((hi - lo) // spec["step"])
            else:  # on the grid min * step ** k
                spec["max"] = hi = lo * step ** int(math.log(hi / lo, step) + 1e-9)
        if draw(st.booleans()):
            spec["default"] = draw(st.integers(lo, hi))
            if "step" in spec and not log:
                spec["default"] = lo + spec["step"] * ((spec["default"] - lo) // spec["step"])
            elif "step" in spec:
                spec["default"] = lo * step ** draw(st.integers(0, round(math.log(hi / lo, step))))
    else:
        finite = {"allow_nan": False, "allow_infinity": False}
        lo = draw(st.floats(-1e3, 1e3, **finite))
        hi = lo + draw(st.floats(0, 1e3, **finite))
        spec = {"type": "float", "min": lo, "max": hi}
        log = lo >= 1e-3 and draw(st.booleans())  # (a subnormal min overflows the grid's k)
        if log:
            spec["sampling"] = draw(st.sampled_from(["log", "reverse_log"]))
        if draw(st.booleans()):
            low = 1.0 + 1e-6 if log else 1e-3
            spec["step"] = step = draw(st.floats(low, 10, **finite))
            if not log:  # max and default on the grid min + k * step
                spec["max"] = hi = lo + step * ((hi - lo) // step)
            else:  # log: on the grid min * step ** k; reverse_log: min on max + min - min * step ** k
                spec["max"] = hi = lo * step ** int(math.log(hi / lo, step) + 1e-9)
        if draw(st.booleans()):
            spec["default"] = draw(st.floats(lo, hi, **finite))
            if "step" in spec and not log:
                spec["default"] = min(hi, lo + step * ((spec["default"] - lo) // step))
            elif "step" in spec:
                top = round(math.log(hi / lo, step))
                k = draw(st.integers(0, top))
                spec["default"] = (min(hi, lo * step ** k) if spec["sampling"] == "log"
                                   else min(hi, max(lo, hi + lo - lo * step ** k)))
    return spec


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(numeric_specs(), min_size=1, max_size=4))
def test_random_valid_numeric_specs_load_and_apply_within_range(specs):
    doc = {
        "kind": "augment",
        "name": "random",
        "hyperparameters": {f"p{i}": spec for i, spec in enumerate(specs)},
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        space = load_space(path)
    hp = kt.HyperParameters()
    values = space.apply(hp)
    assert list(values) == list(doc["hyperparameters"])
    for name, spec in doc["hyperparameters"].items():
        value = values[name]
        tidy = 1e-9 * max(1.0, abs(spec["max"]))  # a stepped float is rounded to its grid
        assert spec["min"] - tidy <= value <= spec["max"] + tidy, (name, spec, value)
        assert value == pytest.approx(spec.get("default", spec["min"]), abs=tidy)
        if spec["type"] == "int":
            assert isinstance(value, int)
        assert hp.values[f"augment.{name}"] == value


@settings(max_examples=40, deadline=None)
@given(lo=st.integers(-100, 100), gap=st.integers(1, 100))
def test_random_inverted_ranges_are_rejected_with_line(lo, gap):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bad.yaml"
        path.write_text(
            f"kind: augment\nname: bad\nhyperparameters:\n  a: {{type: boolean}}\n"
            f"  b: {{type: int, min: {lo + gap}, max: {lo}}}\n"
        )
        with pytest.raises(SpaceError) as info:
            load_space(path)
    message = str(info.value)
    assert "hyperparameters.b" in message and "(line 5)" in message


@pytest.mark.parametrize(("key", "spec", "message"), [
    ("optimizer", "{type: choice, values: [adam, adamm], default: adam}",
     "'adamm' is not accepted by training (line 5); it must be one of adam, adamw, sgd"),
    ("batch_size", "{type: choice, values: [0, -4], default: 0}",
     "0 is not accepted by training (line 5); it must be a positive integer"),
    ("epochs", "{type: fixed, value: ten}", "'ten' is not accepted by training"),
    ("learning_rate", "{type: float, min: 0.0, max: 0.1, default: 0.01}",
     "0.0 is not accepted by training"),
    ("balance", "{type: fixed, value: undersample}",
     "'undersample' is not accepted by training (line 5); it must be one of class_weights, "
     "oversample, none"),
    ("patience", "{type: fixed, value: 0}",  # Keras would stop exactly as at patience 1
     "0 is not accepted by training (line 5); it must be a whole number >= 1"),
])
def test_training_values_the_code_does_not_accept_are_refused(tmp_path, key, spec, message):
    """A value the training code would silently replace (an unknown optimizer trained as
    Adam) or crash on (batch size 0) is refused when the file is read, naming the key."""
    from autopneumo.tuning import SearchConfig, resolve_spaces

    path = _write(tmp_path, f"""\
        kind: training
        name: training
        hyperparameters:
          {"learning_rate" if key != "learning_rate" else "batch_size"}: {{type: fixed, value: 1}}
          {key}: {spec}
        """)
    config = SearchConfig("base_cnn", "flip", spaces=[path])
    with pytest.raises(SpaceError, match=re.escape(f"{path}: hyperparameters.{key}: {message}")):
        resolve_spaces(config)


def test_a_policy_value_outside_its_literal_choices_is_refused(tmp_path):
    from autopneumo.tuning import SearchConfig, resolve_spaces

    path = _write(tmp_path, """\
        kind: augment
        name: flip
        hyperparameters:
          mode: {type: fixed, value: diagonal}
        """)
    with pytest.raises(SpaceError, match="'diagonal' is not accepted by policy flip .*"
                                         "horizontal, vertical, horizontal_and_vertical"):
        resolve_spaces(SearchConfig("base_cnn", "flip", spaces=[path]))
    from autopneumo.registry import FAMILIES, POLICIES

    for family in FAMILIES.names():  # every shipped file passes
        resolve_spaces(SearchConfig(family, "none", image_size=224))
    for policy in POLICIES.names():
        resolve_spaces(SearchConfig("base_cnn", policy))


def test_every_stepped_value_a_shipped_file_names_can_be_sampled():
    """The extensibility review's B1: keras-tuner counts a float grid as (max - min) // step
    + 1, and (0.7 - 0.3) // 0.1 is 3.0 in floats: 0.7 (base_cnn's dense_dropout default)
    and 14 other shipped maxima were never drawn, by any tuner."""
    files = sorted(spaces_dir().rglob("*.yaml"))
    stepped = 0
    for path in files:
        space = load_space(path)
        hp = kt.HyperParameters()
        space.apply(hp)
        for name, spec in space.hyperparameters.items():
            if spec.type != "float" or spec.step is None or spec.sampling != "linear":
                continue
            stepped += 1
            [declared] = [h for h in hp.space if h.name == f"{space.prefix}.{name}"]
            drawn = {declared.random_sample(seed) for seed in range(400)}
            grid = round((spec.max - spec.min) / spec.step) + 1
            assert len(drawn) == grid, (path.name, name, sorted(drawn))
            assert max(drawn) == pytest.approx(spec.max), (path.name, name)
            hp.values[declared.name] = max(drawn)  # 0.15000000000000002 reaches the builder
            assert space.apply(hp)[name] == spec.max  # as the file writes it: 0.15
    assert stepped >= 20


@pytest.mark.parametrize(("body", "message"), [
    # the extensibility review's B2-B4, B10, B11, U1, S1-S3: each was a traceback after the
    # data loaded, or a file accepted that meant something else
    ("depth: {type: int, min: 2, max: 4, when: {depth: [3]}}",
     "hyperparameters.depth.when.depth: hyperparameter 'depth': a condition on itself (line 4)"),
    ("depth: {type: int, min: 2, max: 4}\n"
     "  width: {type: choice, values: [0.5, 1.0], when: {depth: [2]}}\n"
     "  cd: {type: float, min: 0.0, max: 0.4, step: 0.1, when: {width: [0.5]}}",
     "hyperparameters.cd.when.width: hyperparameter 'cd': its parent 'width' is itself "
     "conditional (nested conditions are not supported) (line 6)"),
    ("depth: {type: int, min: 2, max: 4}\n"
     "  cd: {type: float, min: 0.0, max: 0.4, step: 0.1, when: {depth: ['3']}}",
     "hyperparameters.cd.when.depth: hyperparameter 'cd': '3' is not a value 'depth' can take "
     "(the condition would never hold) (line 5)"),
    ("depth: {type: int, min: 2, max: 4}\n  cd: {type: fixed, value: 1, when: {depth: [7]}}",
     "7 is not a value 'depth' can take"),
    ("flag: {type: boolean}\n  cd: {type: fixed, value: 1, when: {flag: [1]}}",
     "1 is not a value 'flag' can take"),
    ("cd: {type: float, min: .nan, max: 0.4}",
     "hyperparameters.cd.min: Input should be a finite number (line 4)"),
    ("cd: {type: fixed, value: .inf}",
     "hyperparameters.cd.value: must be a finite number, got inf (line 4)"),
    ("cd: {type: fixed, value: null}",
     "hyperparameters.cd.value: must be a number, a string or true/false, got null (line 4)"),
    ("cd: {type: fixed, value: 1}\n  cd: {type: fixed, value: 2}",
     "invalid YAML: duplicate key 'cd' (line 5)"),
    ("cd: {type: choice, values: [1, 1.0, 2]}",
     "hyperparameters.cd: choice values must be distinct (1 and 1.0 are one value) (line 4)"),
    ("cd: {type: choice, values: [1, 2], default: true}",
     "hyperparameters.cd: default True is not one of the values (line 4)"),
    ("cd: {type: float, min: 0.0, max: 0.4, step: 0.3}",
     "hyperparameters.cd: max 0.4 is not min + a whole number of steps (0.0 + k * 0.3): it "
     "could never be sampled (line 4)"),
    ("cd: {type: int, min: 2, max: 8, step: 2, default: 5}",
     "hyperparameters.cd: default 5 is not on the grid 2 + k * 2 (line 4)"),
    ("cd: {type: int, min: 16, max: 200, sampling: log, step: 2}",
     "hyperparameters.cd: max 200 is not min times a whole power of step (16 * 2 ** k): it "
     "could never be sampled (line 4)"),
    ("cd: {type: float, min: 1.0e-4, max: 1.0e-1, sampling: log, step: 10, default: 5.0e-3}",
     "hyperparameters.cd: default 0.005 is not on the grid 0.0001 * 10.0 ** k (line 4)"),
    # keras-tuner's reverse_log grid runs down from max: max + min - min * step ** k
    # (0.05, 0.0491, 0.0401 here: min is never drawn)
    ("cd: {type: float, min: 1.0e-4, max: 5.0e-2, sampling: reverse_log, step: 10}",
     "hyperparameters.cd: min 0.0001 is not max + min - min * step ** k (0.05 + 0.0001 - "
     "0.0001 * 10.0 ** k): it could never be sampled (line 4)"),
    ("cd: {type: float, min: 1.0e-4, max: 1.0e-1, sampling: reverse_log, step: 10, "
     "default: 1.0e-2}",
     "hyperparameters.cd: default 0.01 is not on the grid 0.1 + 0.0001 - 0.0001 * 10.0 ** k "
     "(line 4)"),
    ("cd: " + "[" * 5000 + "]" * 5000, "invalid YAML: nested too deeply"),
    # review 21 #10: the number of steps overflowed, round(inf) raised OverflowError,
    # which pydantic does not turn into a validation error: a traceback
    ("cd: {type: float, min: 0.0, max: 0.1, step: 1.0e-320, default: 0.0}",
     "hyperparameters.cd: step 1e-320 is too small for the range [0.0, 0.1]: the number of "
     "steps overflows (line 4)"),
    ("cd: {type: float, min: -1.0e308, max: 1.0e308, step: 1.0e300}",
     "hyperparameters.cd: step 1e+300 is too small for the range [-1e+308, 1e+308]: the "
     "number of steps overflows (line 4)"),
    ("cd: {type: float, min: 1.0e-320, max: 1.0e300, sampling: log, step: 2.0}",
     "the number of steps overflows (line 4)"),
    ("cd: {type: int, min: 0, max: 1" + "0" * 400 + ", step: 1}",
     "the number of steps overflows (line 4)"),  # int / int past a float: OverflowError
])
def test_space_files_that_could_not_mean_what_they_say_are_one_line_errors(tmp_path, body,
                                                                             message):
    path = tmp_path / "base_cnn.yaml"
    path.write_text(f"kind: family\nname: base_cnn\nhyperparameters:\n  {body}\n")
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value) == f"{path}: {message}" or (
        message in str(info.value) and str(info.value).startswith(f"{path}: "))
    assert "\n" not in str(info.value)


def test_a_condition_on_a_value_its_parent_can_take_is_applied():
    import textwrap as tw

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "base_cnn.yaml"
        path.write_text(tw.dedent("""\
            kind: family
            name: base_cnn
            hyperparameters:
              depth: {type: int, min: 2, max: 4, default: 2}
              conv_dropout: {type: float, min: 0.0, max: 0.4, step: 0.1, when: {depth: [3, 4]}}
              deep: {type: boolean, default: true}
              units: {type: choice, values: [8, 16], when: {deep: [true]}}
            """))
        space = load_space(path)
    assert space.defaults() == {"depth": 2, "deep": True, "units": 8}  # conv_dropout inactive


@pytest.mark.parametrize(("training", "message"), [
    # the extensibility review's B7: tested for truth, the string 'false' switched EMA on
    ("  ema: {type: fixed, value: 'false'}",
     "hyperparameters.ema: 'false' is not accepted by training (line 7); it must be true or "
     "false"),
    ("  standardize: {type: choice, values: ['no', 'yes']}",
     "hyperparameters.standardize: 'no' is not accepted by training"),
    # U1: a string in range read "must be in [0, 1)"; true counted as crop 1.0
    ("  label_smoothing: {type: fixed, value: '0.1'}",
     "hyperparameters.label_smoothing: '0.1' is not accepted by training (line 7); it must "
     "be a number in [0, 1)"),
    ("  crop: {type: fixed, value: true}",
     "hyperparameters.crop: True is not accepted by training (line 7); it must be a number "
     "in (0, 1]"),
    # B6: no code default, a KeyError traceback after the data loaded
    ("", "hyperparameters: epochs is required (every training space names learning_rate, "
         "batch_size, epochs; --epochs gives epochs)"),
])
def test_training_settings_the_code_would_misread_are_refused(tmp_path, training, message):
    from autopneumo.tuning import SearchConfig, resolve_spaces

    path = tmp_path / "training.yaml"
    path.write_text("kind: training\nname: training\nhyperparameters:\n"
                    "  learning_rate: {type: fixed, value: 0.001}\n"
                    "  batch_size: {type: fixed, value: 8}\n"
                    f"  patience: {{type: fixed, value: 2}}\n{training}\n")
    with pytest.raises(SpaceError, match="^" + re.escape(f"{path}: {message}")):
        resolve_spaces(SearchConfig("base_cnn", "flip", spaces=[path]))
    if not training:  # --epochs gives the cap
        resolve_spaces(SearchConfig("base_cnn", "flip", spaces=[path], epochs=2))


def test_a_value_of_the_wrong_kind_for_the_builders_annotation_is_refused(tmp_path):
    """The extensibility review's B5: depth '2' (a string for ``depth: int``) was a 60-line
    traceback from inside keras-tuner's tuner construction."""
    from autopneumo.tuning import SearchConfig, resolve_spaces

    for spec, message in (
            ("depth: {type: choice, values: ['2', '4']}",
             "hyperparameters.depth: '2' is not accepted by family base_cnn (line 4); it must "
             "be an integer"),
            ("depth: {type: float, min: 2, max: 4}",
             "hyperparameters.depth: 2.0 is not accepted by family base_cnn"),
            ("width: {type: boolean}", "hyperparameters.width: True is not accepted by family "
                                       "base_cnn (line 4); it must be a number")):
        path = tmp_path / "base_cnn.yaml"
        path.write_text(f"kind: family\nname: base_cnn\nhyperparameters:\n  {spec}\n")
        with pytest.raises(SpaceError, match="^" + re.escape(f"{path}: {message}")):
            resolve_spaces(SearchConfig("base_cnn", "flip", spaces=[path]))


def test_a_builder_argument_that_is_not_keyword_only_is_named(tmp_path, monkeypatch):
    """The extensibility review's U2: "known: none" for a builder written without `*`."""
    from autopneumo.registry import Entry
    from autopneumo.tuning import SearchConfig, resolve_spaces

    def plain(x, blocks: int = 2):
        return x

    entry = Entry("base_cnn", plain, "", "family", 8)
    import autopneumo.registry as registry

    monkeypatch.setattr(registry.FAMILIES, "get", lambda name: entry)
    path = tmp_path / "base_cnn.yaml"
    path.write_text("kind: family\nname: base_cnn\nhyperparameters:\n"
                    "  blocks: {type: fixed, value: 2}\n")
    with pytest.raises(SpaceError, match=re.escape(
            "hyperparameters.blocks: unknown hyperparameter for family base_cnn (it is a "
            "positional argument of the builder: tunable ones are keyword-only, after `*` in "
            "its signature) (line 4)")):
        resolve_spaces(SearchConfig("base_cnn", "flip", spaces=[path]))


GOOD_FAMILY = ("from {package} import REG\n@REG.register('good', description='')\n"
               "def good(x, *, width: float = 1.0):\n    return x\n")
BROKEN_MODULE = "import not_installed_anywhere\n"


def _plugin_registry(tmp_path, monkeypatch, package: str, modules: dict[str, str]):
    """The family Registry (``REG``) of a package ``package`` made of ``modules`` (file
    stem -> source, ``{package}`` filled in), importable for this test."""
    import importlib

    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("from autopneumo.registry import Registry\n"
                                        f"REG = Registry('family', '{package}', '--family')\n")
    for stem, source in modules.items():
        (folder / f"{stem}.py").write_text(source.format(package=package))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(package).REG


def test_a_broken_or_duplicate_module_leaves_the_other_families_working(tmp_path, monkeypatch):
    """The extensibility review's B8: one module that failed to import (or registered a
    name twice) was a traceback for every command, unrelated families' searches too."""
    import sys

    from autopneumo.errors import AutopneumoWarning, OptionError

    registry = _plugin_registry(tmp_path, monkeypatch, "plugpkg", {
        "a_good": GOOD_FAMILY, "b_broken": BROKEN_MODULE,
        "c_dup": "from plugpkg import REG\n@REG.register('good', description='')\n"
                 "def again(x):\n    return x\n"})
    with pytest.warns(AutopneumoWarning) as said:
        assert registry.names() == ["good"]
    assert [str(w.message) for w in said] == [
        "plugpkg.b_broken not loaded (ModuleNotFoundError: No module named "
        "'not_installed_anywhere')",
        "plugpkg.c_dup not loaded (ValueError: family 'good' is registered twice: by "
        "plugpkg.a_good and by plugpkg.c_dup)"]
    with pytest.raises(OptionError, match=re.escape(
            "unknown --family 'broken'; known: good; plugpkg.b_broken did not load "
            "(ModuleNotFoundError")):
        registry.get("broken")
    for name in [m for m in sys.modules if m.startswith("plugpkg")]:
        monkeypatch.delitem(sys.modules, name)


def test_yaml_merge_keys_and_conditions_on_a_stepped_float_work(tmp_path):
    """The diff review's B2 and B3: the duplicate-key loader refused `<<: *anchor`, and a
    condition on a stepped float parent never held (keras-tuner compares its grid value
    0.30000000000000004 with the listed 0.3)."""
    path = tmp_path / "base_cnn.yaml"
    path.write_text(textwrap.dedent("""\
        kind: family
        name: base_cnn
        hyperparameters:
          conv_dropout: {type: float, min: 0.0, max: 0.4, step: 0.1, default: 0.0}
          width: {type: choice, values: [0.5, 1.0], when: {conv_dropout: [0.3]}}
          depth: &depth {type: int, min: 2, max: 4}
          dense_dropout:
            <<: {type: float, min: 0.3, max: 0.7}
            step: 0.1
        """))
    space = load_space(path)
    assert space.hyperparameters["dense_dropout"].step == 0.1
    declared = kt.HyperParameters()
    space.apply(declared)
    [parent] = [h for h in declared.space if h.name == "model.conv_dropout"]
    active = 0
    for seed in range(60):
        hp = kt.HyperParameters()
        hp.values["model.conv_dropout"] = value = parent.random_sample(seed)
        values = space.apply(hp)
        assert ("width" in values) == (round(value, 1) == 0.3), value
        active += "width" in values
    assert active > 0
    path.write_text("kind: family\nname: base_cnn\nhyperparameters:\n"
                    "  conv_dropout: {type: float, min: 0.0, max: 0.4}\n"
                    "  width: {type: fixed, value: 1.0, when: {conv_dropout: [0.3]}}\n")
    with pytest.raises(SpaceError, match="a float drawn from a continuous or log range, which "
                                         "never equals a listed value"):
        load_space(path)


def test_a_condition_on_a_stepped_float_parent_holds_at_the_parents_default(tmp_path):
    """The mutation review's BUG-1: apply() maps the listed 0.3 to keras-tuner's grid value
    0.30000000000000004 only, but keras-tuner's default is the default as written (0.3):
    at the defaults (defaults(), a grid search's first trial) the condition does not
    hold and `width` is missing."""
    path = tmp_path / "base_cnn.yaml"
    path.write_text(textwrap.dedent("""\
        kind: family
        name: base_cnn
        hyperparameters:
          conv_dropout: {type: float, min: 0.0, max: 0.4, step: 0.1, default: 0.3}
          width: {type: choice, values: [0.5, 1.0], when: {conv_dropout: [0.3]}}
        """))
    assert load_space(path).defaults() == {"conv_dropout": 0.3, "width": 0.5}


def test_a_condition_on_a_log_stepped_int_parent_off_its_grid_is_refused(tmp_path):
    """The mutation review's BUG-2: _in_domain checks the grid of linear steps only; an int with log sampling
    and step 2 takes 16, 32, 64, 128, 256, so `when: {units: [17]}` never holds, yet the
    file loads."""
    import pytest

    from autopneumo.errors import SpaceError

    path = tmp_path / "base_cnn.yaml"
    path.write_text(textwrap.dedent("""\
        kind: family
        name: base_cnn
        hyperparameters:
          units: {type: int, min: 16, max: 256, sampling: log, step: 2}
          width: {type: choice, values: [0.5, 1.0], when: {units: [17]}}
        """))
    with pytest.raises(SpaceError, match="17 is not a value 'units' can take"):
        load_space(path)


def test_a_broken_first_family_does_not_hide_a_broken_policy(tmp_path, monkeypatch):
    """The mutation review's BUG-3: check_spaces paired every policy with families[0];
    resolve_spaces checks the family's file first, so a broken base_cnn.yaml was the one
    problem reported for every policy pair and no policy file was checked at all."""
    import shutil

    from autopneumo.paths import spaces_dir
    from autopneumo.registry import FAMILIES, POLICIES
    from autopneumo.tuning import check_spaces

    folder = tmp_path / "spaces"
    shutil.copytree(spaces_dir(), folder)
    family, policy = FAMILIES.names()[0], POLICIES.names()[1]
    (folder / "families" / f"{family}.yaml").write_text(
        f"kind: family\nname: {family}\nhyperparameters:\n  widht: {{type: fixed, value: 1}}\n")
    (folder / "augment" / f"{policy}.yaml").write_text(
        f"kind: augment\nname: {policy}\nhyperparameters:\n  nope: {{type: fixed, value: 1}}\n")
    monkeypatch.setenv("AUTOPNEUMO_SPACES", str(folder))
    problems = check_spaces()
    assert any(f"{policy}.yaml" in p for p in problems), problems


def test_a_default_written_with_more_digits_than_its_grid_reaches_the_builder_as_declared(tmp_path):
    """The mutation review's BUG-4 (a flaky property test): hypothesis found this example for
    test_random_valid_numeric_specs_load_and_apply_within_range during the review (it was
    then replayed from .hypothesis/ on every run). A default written with more digits
    than min and step was rounded to their places for the builder while keras-tuner kept
    it as written, so `hp.values[...] == value` failed; the default is declared rounded."""
    import yaml

    spec = {"type": "float", "min": -128.909573324775, "max": 0.0904266752249896,
            "step": 1.0, "default": -0.9095733247750104}
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump({"kind": "augment", "name": "random",
                                    "hyperparameters": {"p0": spec}}, sort_keys=False))
    hp = kt.HyperParameters()
    values = load_space(path).apply(hp)
    assert hp.values["augment.p0"] == values["p0"], (hp.values, values)


def test_spaces_build_builds_every_family_and_policy_past_a_broken_first_policy(tmp_path,
                                                                               monkeypatch):
    """The diff review's 4: with the first policy's file broken, `spaces --build` built no
    family and skipped the second policy. Each family is now built with a policy that
    passes, each policy with a family that builds."""
    import shutil

    import autopneumo.tuning as tuning
    from autopneumo.registry import FAMILIES, POLICIES

    folder = tmp_path / "spaces"
    shutil.copytree(spaces_dir(), folder)
    first = POLICIES.names()[0]
    (folder / "augment" / f"{first}.yaml").write_text(
        f"kind: augment\nname: {first}\nhyperparameters:\n  nope: {{type: fixed, value: 1}}\n")
    monkeypatch.setenv("AUTOPNEUMO_SPACES", str(folder))
    built = []
    monkeypatch.setattr(tuning, "_build_at_defaults", lambda resolved, size: built.append(
        (resolved["family"].name, resolved["policy"].name)))
    problems = tuning.check_spaces(build=True)
    assert len(problems) == 1 and f"{first}.yaml" in problems[0]
    assert {f for f, _ in built} == set(FAMILIES.names())
    assert {p for _, p in built} == set(POLICIES.names()) - {first}
    assert len(built) == len(set(built))  # nothing built twice


def test_warnings_made_errors_leave_the_registry_complete(tmp_path, monkeypatch):
    """The diff review's 5: with warnings made errors (as the README suggests a Python
    caller may), the first broken module's warning stopped the loading: the modules after
    it were never imported, and later calls listed fewer names without a word."""
    import sys
    import warnings

    from autopneumo.errors import AutopneumoWarning

    registry = _plugin_registry(tmp_path, monkeypatch, "plugerr",
                                {"a_broken": BROKEN_MODULE, "b_good": GOOD_FAMILY})
    with warnings.catch_warnings():
        warnings.simplefilter("error", AutopneumoWarning)
        with pytest.raises(AutopneumoWarning, match="plugerr.a_broken not loaded"):
            registry.names()
    assert registry.names() == ["good"]  # every module was imported all the same
    for name in [m for m in sys.modules if m.startswith("plugerr")]:
        monkeypatch.delitem(sys.modules, name)


def test_spaces_build_past_a_first_policy_that_loads_but_does_not_build(tmp_path,
                                                                        monkeypatch):
    """The re-review's 3: the anchor pair was chosen without building it; a first policy
    whose file loads but whose layers fail to build was then reported once per family,
    and no other policy was built."""
    import autopneumo.tuning as tuning
    from autopneumo.errors import SpaceError
    from autopneumo.registry import FAMILIES, POLICIES

    first = POLICIES.names()[0]
    built = []

    def build(resolved, size):
        pair = (resolved["family"].name, resolved["policy"].name)
        if pair[1] == first:
            raise SpaceError(f"policy {first} cannot be built")
        built.append(pair)

    monkeypatch.setattr(tuning, "_build_at_defaults", build)
    assert tuning.check_spaces(build=True) == [f"policy {first} cannot be built"]
    assert {f for f, _ in built} == set(FAMILIES.names())
    assert {p for _, p in built} == set(POLICIES.names()) - {first}
    assert len(built) == len(set(built))


def test_base_cnn_conv_dropout_is_inactive_at_depth_2_where_it_cannot_act():
    """base_cnn adds conv dropout after blocks 3 and 4 only: at depth 2 every value built
    the same network, yet the tuner drew it (review 21)."""
    keras = pytest.importorskip("keras")
    import keras_tuner as kt

    from autopneumo.registry import FAMILIES

    def dropout_rates(depth, conv_dropout):
        x = keras.Input((32, 32, 1))
        out = FAMILIES.get("base_cnn").builder(x, width=0.5, depth=depth,
                                               conv_dropout=conv_dropout,
                                               dense_units="128", dense_dropout=0.3)
        return [layer.get_config()["rate"] for layer in keras.Model(x, out).layers
                if isinstance(layer, keras.layers.Dropout)]

    assert dropout_rates(2, 0.0) == dropout_rates(2, 0.4)  # the premise
    assert dropout_rates(3, 0.0) != dropout_rates(3, 0.4)
    space = builtin_space("family", "base_cnn")
    for depth, active in ((2, False), (3, True), (4, True)):
        hp = kt.HyperParameters()
        space.apply(hp)
        hp.values["model.depth"] = depth
        values = space.apply(hp)
        assert ("conv_dropout" in values) is active
        assert hp.is_active("model.conv_dropout") is active


def test_two_space_files_of_one_kind_are_refused(tmp_path):
    """Session 22: a second --space file of a kind silently replaced the first (the help
    says one per kind), so a search ran with only the later file's values."""
    from autopneumo.errors import OptionError
    from autopneumo.tuning import SearchConfig, resolve_spaces

    first = _write(tmp_path, "kind: family\nname: base_cnn\nhyperparameters:\n"
                             "  width: {type: fixed, value: 0.5}\n", "a.yaml")
    second = _write(tmp_path, "kind: family\nname: base_cnn\nhyperparameters:\n"
                              "  width: {type: fixed, value: 0.25}\n", "b.yaml")
    with pytest.raises(OptionError, match=re.escape(
            f"--space {second}: a second family space (--space {first} is one)")):
        resolve_spaces(SearchConfig("base_cnn", "none", spaces=[first, second]))
    training = _write(tmp_path, builtin_space("training", "training").path.read_text(),
                      "training.yaml")
    resolved = resolve_spaces(SearchConfig("base_cnn", "none", spaces=[first, training]))
    assert resolved["spaces"]["family"].defaults() == {"width": 0.5}


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    """Session 22: PyYAML reads YAML 1.1, where 1e-3 (no dot, as YAML 1.2, JSON and
    Python write it) is a string: a range bound took it (pydantic converts), but a fixed
    or choice learning rate of 1e-3 was refused as "'1e-3' ... must be a positive
    number", and a builder with no annotation got the string."""
    path = _write(tmp_path, """\
        kind: training
        name: training
        hyperparameters:
          learning_rate: {type: choice, values: [1e-4, 3E-4, 1.0e3, -2e+1, +5e0], default: 3E-4}
          label_smoothing: {type: fixed, value: 1e-1}
          batch_size: {type: fixed, value: 32}
          optimizer: {type: fixed, value: "1e-3"}
        """)
    space = load_space(path)
    assert space.hyperparameters["learning_rate"].values == [1e-4, 3e-4, 1e3, -20.0, 5.0]
    assert space.defaults() == {"learning_rate": 3e-4, "label_smoothing": 0.1,
                                "batch_size": 32, "optimizer": "1e-3"}  # quoted: a string


@pytest.mark.parametrize("text", ["0x_", "0b_", "-0b__", "+0x__"])
def test_a_base_prefix_without_a_digit_is_a_string_not_a_traceback(tmp_path, text):
    """Review 22: PyYAML's own int resolver takes '0x_' and '0b_', which its int constructor
    cannot convert (no digit after the prefix): the ValueError traceback the exponent
    resolver's '._e3' was, from `autopneumo spaces` or `search --space`. Such a value stays
    a string, which a rule then names with its line."""
    path = _write(tmp_path, f"kind: family\nname: x\nhyperparameters:\n"
                            f"  depth: {{type: fixed, value: {text}}}\n"
                            f"  width: {{type: choice, values: [0x1F, 0b11, -0x_a]}}\n")
    space = load_space(path)
    assert space.hyperparameters["depth"].value == text
    assert space.hyperparameters["width"].values == [31, 3, -10]  # with digits: ints


@pytest.mark.parametrize("text", ["._e3", "-._1e2", "._e-1"])
def test_a_dot_then_no_digit_before_the_exponent_is_a_string_not_a_traceback(tmp_path, text):
    """Review 22: the exponent resolver took a dot followed by '_' ('._e3'), which PyYAML's
    float constructor could not convert: a ValueError traceback from `autopneumo spaces`
    or `search --space`. PyYAML's own floats need a digit after a leading dot."""
    path = _write(tmp_path, f"kind: family\nname: x\nhyperparameters:\n"
                            f"  depth: {{type: fixed, value: {text}}}\n")
    assert load_space(path).hyperparameters["depth"].value == text


@pytest.mark.parametrize("field, body", [
    ("min", "{type: int, min: true, max: 4}"),
    ("max", "{type: float, min: 0.0, max: true}"),
    ("step", "{type: int, min: 2, max: 4, step: true}"),
    ("default", "{type: float, min: 0.0, max: 1.0, default: false}"),
])
def test_true_or_false_is_not_a_range_number(tmp_path, field, body):
    """Session 22: a range's min, max, step or default of true or false was taken as 1 or
    0 (pydantic's lax numbers), where the values, fixed values and conditions never count
    true as 1: `min: true` searched from 1."""
    path = _write(tmp_path, f"kind: family\nname: x\nhyperparameters:\n  depth: {body}\n")
    message = _error(path)
    assert f"hyperparameters.depth.{field}: must be a number, got " in message
    _assert_line(message, 4)


@pytest.mark.parametrize("kind, name, spec, bad, wanted", [
    ("family", "base_cnn", "depth: {type: int, min: 2, max: 6}", "6", "an integer from 0 to 4"),
    ("family", "base_cnn", "width: {type: choice, values: [-1.0, 1.0]}", "-1.0", "a number > 0"),
    ("family", "base_cnn", "dense_units: {type: choice, values: ['128', '0-64']}", "'0-64'",
     "positive units per dense layer"),
    ("family", "resnet18", "weight_decay: {type: float, min: -1.0e-3, max: 1.0e-3}", "-0.001",
     "a number >= 0"),
    ("family", "resnet", "depth: {type: choice, values: [18, 50]}", "50", "one of 18, 34"),
    # review 22: an int range was checked at its ends only, which for resnet's two depths
    # passed 18 to 34, and every trial drawing 19 to 33 failed
    ("family", "resnet", "depth: {type: int, min: 18, max: 34}", "19", "one of 18, 34"),
    ("family", "densenet121", "blocks: {type: fixed, value: '6-12'}", "'6-12'",
     "four positive counts"),
    ("family", "efficientnet_b0", "dropout: {type: float, min: 0.0, max: 1.0, step: 0.5}", "1.0",
     r"a number in \[0, 1\)"),
    ("augment", "geometric", "rotation: {type: fixed, value: -0.1}", "-0.1",
     r"a number in \[0, 1\]"),
    ("augment", "randaugment", "magnitude: {type: float, min: 0.0, max: 0.5, step: 0.1}", "0.0",
     r"a number in \(0, 1\]"),
    # review 22: a noise stddev above 1 passed the check, and every trial drawing it failed
    # on Keras' GaussianNoise ("Expected a float value between 0 and 1")
    ("augment", "photometric", "noise: {type: choice, values: [0.02, 1.5]}", "1.5",
     r"a number in \[0, 1\]"),
    ("augment", "combined", "noise: {type: float, min: 0.0, max: 2.0}", "2.0",
     r"a number in \[0, 1\]"),
])
def test_a_value_outside_what_the_builder_takes_is_refused(tmp_path, kind, name, spec, bad,
                                                          wanted):
    """Session 22: the builders' ranges were unchecked: a base_cnn depth of 5 to 7 built
    depth 4 (and -1 depth 3), a negative width, dropout, weight decay or augmentation
    strength built as the floor or as none, all recorded as the value drawn; others (a
    dropout of 1, blocks '6-12') failed every trial they were drawn in. Now each is the
    one line before the search."""
    from autopneumo.tuning import SearchConfig, resolve_spaces

    path = _write(tmp_path, f"kind: {kind}\nname: {name}\nhyperparameters:\n  {spec}\n")
    config = SearchConfig(name if kind == "family" else "base_cnn",
                          name if kind == "augment" else "none", image_size=64, spaces=[path])
    key = spec.split(":")[0]
    with pytest.raises(SpaceError, match=f"^{re.escape(str(path))}: hyperparameters.{key}: "
                                         f"{re.escape(bad)} is not accepted by .* \\(line 4\\); "
                                         f"it must be {wanted}"):
        resolve_spaces(config)


def test_a_plugin_builder_states_its_range_with_annotated():
    from autopneumo.spaces import literal_choices

    def builder(x, *, rate: Annotated[float, RATE] = 0.1,
                blocks: Annotated[int, in_range(1, 3, integer=True)] = 2, width: float = 1.0,
                count: Annotated[int, in_range(1, 8)] = 2,
                note: Annotated[str, "documentation only"] = ""):
        return x

    rules = literal_choices(builder)
    assert [rules["rate"].check(v) for v in (0.0, 0.99, 1.0, -0.1, True)] == [
        True, True, False, False, False]
    assert [rules["count"].check(v) for v in (1, 8, 2.5, 2.0, 0)] == [
        True, True, False, False, False]  # review 22: the int went unchecked, 2.5 passed
    assert rules["count"].wanted == "an integer in [1, 8]"
    assert [rules["blocks"].check(v) for v in (1, 3, 4, 2.0)] == [True, True, False, False]
    assert rules["blocks"].wanted == "an integer from 1 to 3"
    assert rules["width"].wanted == "a number" and rules["note"].wanted == "a string"


@pytest.mark.parametrize("number, name", enumerate(["vgg_ü", "../escape", "a b", "", "_helper",
                                                  "a/b"]))
def test_a_name_that_cannot_name_a_folder_and_a_model_is_refused_on_registration(
        tmp_path, monkeypatch, number, name):
    """Session 22: any name registered: 'vgg_ü' was listed and searched, and every trial
    failed on TensorFlow's model-name rule after the data loaded; '../escape' wrote its
    project folder outside --runs-dir. Now the module is not loaded, with the reason."""
    import sys

    import autopneumo.registry
    from autopneumo.errors import AutopneumoWarning, OptionError

    monkeypatch.setattr(autopneumo.registry, "_FAILED", {})
    package = f"namepkg{number}"  # a package of its own: the registry imports it once
    source = GOOD_FAMILY.replace("'good'", repr(name))
    registry = _plugin_registry(tmp_path, monkeypatch, package, {"odd": source})
    with pytest.warns(AutopneumoWarning, match=re.escape(
            f"{package}.odd not loaded (ValueError: family name {name!r}: use ASCII letters, "
            "digits, '_', '-' and '.', starting with a letter or digit)")):
        assert registry.names() == []
    with pytest.raises(OptionError, match=f"{package}.odd did not load"):
        registry.get(name)
    for module in [m for m in sys.modules if m.startswith(package)]:
        monkeypatch.delitem(sys.modules, module)


@pytest.mark.parametrize("key", ["learning_rate", "batch_size", "epochs"])
def test_a_required_training_hyperparameter_cannot_be_conditional(tmp_path, key):
    """Session 22: a conditional epochs was a KeyError traceback before the search; a
    conditional learning rate or batch size failed every trial where its condition did not
    hold (or the search, as 'cannot be built', where it did not at the defaults)."""
    from autopneumo.tuning import SearchConfig, resolve_spaces

    lines = ["kind: training", "name: training", "hyperparameters:",
             "  optimizer: {type: choice, values: [sgd, adam]}",
             "  learning_rate: {type: fixed, value: 0.001}",
             "  batch_size: {type: fixed, value: 32}",
             "  epochs: {type: fixed, value: 2}"]
    number = next(i for i, line in enumerate(lines, 1) if line.startswith(f"  {key}:"))
    lines[number - 1] = lines[number - 1][:-1] + ", when: {optimizer: [sgd]}}"
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(SpaceError, match=re.escape(
            f"{path}: hyperparameters.{key}: cannot be conditional (when): every trial needs "
            f"it (line {number})")):
        resolve_spaces(SearchConfig("base_cnn", "none", spaces=[path]))
    if key == "epochs":  # --epochs replaces it: nothing conditional is left
        resolved = resolve_spaces(SearchConfig("base_cnn", "none", spaces=[path], epochs=1))
        assert resolved["spaces"]["training"].defaults()["epochs"] == 1


def test_a_long_choice_loads_in_linear_time(tmp_path):
    """Session 22: the distinct-values check compared every pair: 5,000 choices took 31 s
    to load on a 2-core machine and 10,000 took 81 s (parsing them: 0.5 s)."""
    import time

    values = ", ".join(f"'{i}'" for i in range(1, 20_001))
    path = _write(tmp_path, "kind: family\nname: base_cnn\nhyperparameters:\n"
                            f"  dense_units: {{type: choice, values: [{values}]}}\n")
    start = time.perf_counter()
    assert len(load_space(path).hyperparameters["dense_units"].values) == 20_000
    assert time.perf_counter() - start < 10
    again = _write(tmp_path, "kind: family\nname: base_cnn\nhyperparameters:\n"
                             f"  dense_units: {{type: choice, values: [{values}, '7']}}\n")
    assert "choice values must be distinct" in _error(again)
