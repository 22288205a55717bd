"""Declarative search spaces: YAML files validated on load, applied to keras-tuner.

A file looks like::

    kind: family            # family | augment | training
    name: base_cnn
    description: ...
    hyperparameters:
      width: {type: choice, values: [0.5, 1.0, 2.0], default: 1.0}
      dropout: {type: float, min: 0.0, max: 0.5, step: 0.1, default: 0.2}
      lr: {type: float, min: 1.0e-4, max: 3.0e-3, sampling: log}
      deep: {type: boolean, default: false}
      units: {type: int, min: 32, max: 256, step: 32, when: {deep: [true]}}
      epochs: {type: fixed, value: 10}

Every error names the file, the key, what is wrong and the line.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .errors import SpaceError
from .paths import spaces_dir

Scalar = bool | int | float | str


def _not_bool(value: Any) -> Any:
    """A range's number: true or false is not 1 or 0 here (pydantic's lax int and float
    take them), as it is not in values, fixed values and conditions."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {str(value).lower()}")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]


class _HP(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)
    when: dict[str, list[Scalar]] | None = None  # active only when a parent takes these values

    def declare(self, hp: Any, name: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class IntHP(_HP):
    type: Literal["int"]
    min: Int
    max: Int
    step: Int | None = Field(default=None, gt=0)
    sampling: Literal["linear", "log"] = "linear"
    default: Int | None = None

    @model_validator(mode="after")
    def _check(self):
        _check_range(self.min, self.max, self.default, self.sampling, self.step)
        return self

    def declare(self, hp, name):
        # step None: keras-tuner uses 1 for linear sampling, a continuous log scale otherwise
        value = hp.Int(name, self.min, self.max, step=self.step, sampling=self.sampling,
                       default=self.default)
        if value is not None and value > self.max:
            # its stepless log scale maps the top probability, where the bayesian tuner's
            # optimiser often lands, to max + 1: a base_cnn depth of 2 to 4 trained "5";
            # max is what the space (and the builder's range, checked before) says, and
            # the trial records it
            value = hp.values[name] = self.max
        return value


class FloatHP(_HP):
    type: Literal["float"]
    min: Float
    max: Float
    step: Float | None = Field(default=None, gt=0)
    sampling: Literal["linear", "log", "reverse_log"] = "linear"
    default: Float | None = None

    @model_validator(mode="after")
    def _check(self):
        _check_range(self.min, self.max, self.default, self.sampling, self.step)
        return self

    def declare(self, hp, name):
        high = self.max
        if self.step is not None and self.sampling == "linear":
            # keras-tuner counts the grid as (max - min) // step + 1 in floats, where
            # (0.7 - 0.3) // 0.1 is 3.0: 0.7 was never sampled. A hair above max keeps it.
            high = self.max + self.step * 1e-6
        places = _places(self.min, self.step) if self.sampling == "linear" else None
        default = self.default
        if default is not None and places is not None:  # as the builder gets a grid value
            default = round(default, places)
        value = hp.Float(name, self.min, high, step=self.step, sampling=self.sampling,
                         default=default)
        if value is not None and places is not None:  # 0.30000000000000004 -> 0.3
            value = round(value, places)
        return value


def _places(*numbers: float | None) -> int | None:
    """Decimal places enough to write a grid min + k * step (0.3 and 0.1: 1), or None
    where a number needs more than 12 (nothing to tidy then)."""
    import decimal

    if any(n is None for n in numbers):
        return None
    places = max(-min(0, decimal.Decimal(repr(float(n))).as_tuple().exponent) for n in numbers)
    return places if places <= 12 else None


class ChoiceHP(_HP):
    type: Literal["choice"]
    values: list[Scalar] = Field(min_length=1)
    default: Scalar | None = None

    @model_validator(mode="after")
    def _check(self):
        kinds = {type(v) for v in self.values}
        if len(kinds) > 1 and kinds != {int, float}:
            raise ValueError("choice values must all be of one type")
        if len({(_kind(v), v) for v in self.values}) < len(self.values):  # not each pair
            raise ValueError("choice values must be distinct (1 and 1.0 are one value)")
        if self.default is not None and not any(_same(self.default, v) for v in self.values):
            raise ValueError(f"default {self.default!r} is not one of the values")
        return self

    def declare(self, hp, name):
        values, default = self.values, self.default
        if {type(v) for v in values} == {int, float}:
            values = [float(v) for v in values]
            default = None if default is None else float(default)
        return hp.Choice(name, values, default=default)


class BooleanHP(_HP):
    type: Literal["boolean"]
    default: bool = False

    def declare(self, hp, name):
        return hp.Boolean(name, default=self.default)


class FixedHP(_HP):
    type: Literal["fixed"]
    value: Scalar

    def declare(self, hp, name):
        return hp.Fixed(name, self.value)


HyperParameter = Annotated[
    IntHP | FloatHP | ChoiceHP | BooleanHP | FixedHP, Field(discriminator="type")
]


class _LocatedValueError(ValueError):
    """A validation error that carries the key path it is about (a model validator's own
    location is the top level, which names no key and no line)."""

    def __init__(self, message: str, loc: tuple[str, ...]):
        super().__init__(message)
        self.loc = loc


class SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["family", "augment", "training"]
    name: str
    description: str = ""
    hyperparameters: dict[str, HyperParameter] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_conditions(self):
        names = list(self.hyperparameters)
        for name, spec in self.hyperparameters.items():
            when = spec.when or {}
            if len(when) > 1:  # apply() opens one conditional scope per hyperparameter
                raise _LocatedValueError(
                    f"hyperparameter {name!r}: a condition names one parameter, got {len(when)}",
                    ("hyperparameters", name, "when"),
                )
            for parent, values in when.items():
                loc = ("hyperparameters", name, "when", parent)
                if parent not in self.hyperparameters:
                    raise _LocatedValueError(
                        f"hyperparameter {name!r}: condition on undefined parameter {parent!r}",
                        loc,
                    )
                if parent == name:
                    raise _LocatedValueError(
                        f"hyperparameter {name!r}: a condition on itself", loc)
                if names.index(parent) > names.index(name):
                    raise _LocatedValueError(
                        f"hyperparameter {name!r}: define {parent!r} before it", loc
                    )
                if not values:
                    raise _LocatedValueError(
                        f"hyperparameter {name!r}: condition has no values", loc
                    )
                if self.hyperparameters[parent].when:
                    raise _LocatedValueError(
                        f"hyperparameter {name!r}: its parent {parent!r} is itself "
                        "conditional (nested conditions are not supported)", loc)
                parent_spec = self.hyperparameters[parent]
                if parent_spec.type == "float" and (parent_spec.step is None
                                                    or parent_spec.sampling != "linear"):
                    raise _LocatedValueError(
                        f"hyperparameter {name!r}: its parent {parent!r} is a float drawn "
                        "from a continuous or log range, which never equals a listed value "
                        "(give it a linear step, or make it a choice)", loc)
                bad = [v for v in values if not _in_domain(parent_spec, v)]
                if bad:
                    raise _LocatedValueError(
                        f"hyperparameter {name!r}: {bad[0]!r} is not a value {parent!r} can "
                        "take (the condition would never hold)", loc)
        return self


def _check_range(lo, hi, default, sampling, step=None) -> None:
    if lo > hi:
        raise ValueError(f"min ({lo}) > max ({hi})")
    if sampling != "linear" and lo <= 0:
        raise ValueError(f"{sampling} sampling needs min > 0")
    if sampling != "linear" and step is not None and step <= 1:
        raise ValueError(f"with {sampling} sampling, step is a factor and must be > 1")
    if default is not None and not lo <= default <= hi:
        raise ValueError(f"default {default} is outside [{lo}, {hi}]")
    if step is not None:  # the number of steps from min to max must be a float (not inf)
        try:
            steps = (hi - lo) / step if sampling == "linear" else \
                math.log(hi / lo) / math.log(step)
        except (OverflowError, ZeroDivisionError):  # ints past a float; log(1) from a hair > 1
            steps = math.inf
        if not math.isfinite(steps):
            raise ValueError(f"step {step} is too small for the range [{lo}, {hi}]: the "
                             "number of steps overflows")
    if step is not None and sampling == "linear":  # every value the file names can be drawn
        if not _on_grid(hi, lo, step):
            raise ValueError(f"max {hi} is not min + a whole number of steps ({lo} + k * "
                             f"{step}): it could never be sampled")
        if default is not None and not _on_grid(default, lo, step):
            raise ValueError(f"default {default} is not on the grid {lo} + k * {step}")
    if step is not None and sampling == "log":  # keras-tuner draws min * step ** k
        if not _on_log_grid(hi, lo, step):
            raise ValueError(f"max {hi} is not min times a whole power of step ({lo} * "
                             f"{step} ** k): it could never be sampled")
        if default is not None and not _on_log_grid(default, lo, step):
            raise ValueError(f"default {default} is not on the grid {lo} * {step} ** k")
    if step is not None and sampling == "reverse_log":  # max + min - min * step ** k
        if not _on_log_grid(hi, lo, step):
            raise ValueError(f"min {lo} is not max + min - min * step ** k ({hi} + {lo} - "
                             f"{lo} * {step} ** k): it could never be sampled")
        if default is not None and not _on_reverse_log_grid(default, lo, hi, step):
            raise ValueError(f"default {default} is not on the grid {hi} + {lo} - {lo} * "
                             f"{step} ** k")


def _grid_value(spec: Any, value: float) -> float:
    """A stepped float's value as keras-tuner computes it (min + k * step: 0.3 is
    0.30000000000000004 on the grid 0.0 + k * 0.1), which its conditions compare to."""
    return spec.min + round((value - spec.min) / spec.step) * spec.step


def _on_grid(value: float, lo: float, step: float) -> bool:
    return _whole(lambda: (value - lo) / step)


def _on_log_grid(value: float, lo: float, step: float) -> bool:
    return _whole(lambda: math.log(value / lo) / math.log(step))


def _whole(k) -> bool:
    """Is the number ``k()`` (steps along a grid) whole? Not where it overflows."""
    try:
        k = k()
        return math.isfinite(k) and abs(k - round(k)) < 1e-6
    except (OverflowError, ZeroDivisionError):
        return False


def _on_reverse_log_grid(value: float, lo: float, hi: float, step: float) -> bool:
    """keras-tuner's reverse_log grid runs down from max: max + min - min * step ** k."""
    return _on_log_grid(hi + lo - value, lo, step)


def _in_domain(spec: Any, value: Any) -> bool:
    """Whether a hyperparameter (a condition's parent) can take ``value``."""
    if spec.type == "boolean":
        return isinstance(value, bool)
    if spec.type == "fixed":
        return _same(value, spec.value)
    if spec.type == "choice":
        return any(_same(value, v) for v in spec.values)
    if not is_number(value) or not spec.min <= value <= spec.max:
        return False
    if spec.type == "int" and value != int(value):
        return False
    if spec.step is not None and spec.sampling == "linear":
        return _on_grid(value, spec.min, spec.step)
    if spec.step is not None and spec.sampling == "log":
        return _on_log_grid(value, spec.min, spec.step)
    return True


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "number" if is_number(value) else "str"


def _same(a: Any, b: Any) -> bool:
    """Equal and of one kind: numbers with numbers (1 and 1.0), never True with 1."""
    return _kind(a) == _kind(b) and a == b


@dataclass(frozen=True)
class SearchSpace:
    """A validated space: ``apply`` declares its hyperparameters on a keras-tuner ``hp``."""

    kind: str
    name: str
    description: str
    hyperparameters: dict[str, Any]
    path: Path

    @property
    def prefix(self) -> str:
        return {"family": "model", "augment": "augment", "training": "train"}[self.kind]

    def apply(self, hp: Any) -> dict[str, Any]:
        """Declare every hyperparameter under ``<prefix>.<name>``; return the active values."""
        values: dict[str, Any] = {}
        for name, spec in self.hyperparameters.items():
            full = f"{self.prefix}.{name}"
            if spec.when:
                ((parent, allowed),) = spec.when.items()
                parent_spec = self.hyperparameters[parent]
                if parent_spec.type == "float":  # keras-tuner compares its own grid value,
                    # and its default as declared (rounded as written: 0.3, not 0.3000...04)
                    allowed = list(dict.fromkeys(
                        x for v in allowed for x in (v, _grid_value(parent_spec, v))))
                with hp.conditional_scope(f"{self.prefix}.{parent}", allowed):
                    value = spec.declare(hp, full)
                if value is not None:
                    values[name] = value
            else:
                values[name] = spec.declare(hp, full)
        return values

    def defaults(self) -> dict[str, Any]:
        """The values a fresh ``HyperParameters`` gives (each default, or the first choice)."""
        import keras_tuner as kt

        return self.apply(kt.HyperParameters())

    def with_fixed(self, **values: Any) -> SearchSpace:
        hps = dict(self.hyperparameters)
        for key, value in values.items():
            hps[key] = FixedHP(type="fixed", value=value)
        return SearchSpace(self.kind, self.name, self.description, hps, self.path)

    def where(self, name: str) -> str:
        """`` (line N)``: where the file names hyperparameter ``name`` ('' if unknown)."""
        line = _key_lines(self.path).get(("hyperparameters", name))
        return f" (line {line})" if line else ""

    def check_names(self, allowed: dict[str, Any], owner: str,
                    positional: tuple[str, ...] = ()) -> None:
        """Every hyperparameter must be a keyword-only argument of the builder (catches
        typos); ``positional``: the builder's other arguments, named in the error."""
        for name in self.hyperparameters:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                if name in positional:
                    hint = (" (it is a positional argument of the builder: tunable ones are "
                            "keyword-only, after `*` in its signature)")
                where = self.where(name)
                raise SpaceError(
                    f"{self.path}: hyperparameters.{name}: unknown hyperparameter for {owner}"
                    f"{hint}{where}; known: {', '.join(sorted(allowed)) or 'none'}"
                )


    def check_values(self, rules: dict[str, ValueRule], owner: str) -> None:
        """Every value a hyperparameter can take must be one the code accepts (``rules``:
        name -> ``ValueRule``). A float range is checked at its ends; an int range at each
        value it can take (up to ``EVERY_INT``; its ends beyond), since a rule need not be
        a range: resnet's ``Literal[18, 34]`` depth from 18 to 34 failed every other trial."""
        for name, spec in self.hyperparameters.items():
            rule = rules.get(name)
            if rule is None:
                continue
            if spec.type == "choice":
                values = list(spec.values)
            elif spec.type == "fixed":
                values = [spec.value]
            elif spec.type == "int" and spec.max - spec.min <= EVERY_INT:
                values = [spec.min, spec.max, *(v for v in range(spec.min + 1, spec.max)
                                                 if _in_domain(spec, v))]
            elif spec.type in ("int", "float"):
                values = [spec.min, spec.max]
            else:  # boolean
                values = [True, False]
            bad = [v for v in values if not rule.check(v)]
            if bad:
                where = self.where(name)
                raise SpaceError(f"{self.path}: hyperparameters.{name}: {bad[0]!r} is not accepted "
                                 f"by {owner}{where}; it must be {rule.wanted}")


EVERY_INT = 10_000  # an int range's values check_values checks one by one, at most


class ValueRule(NamedTuple):
    """What a hyperparameter's values must satisfy, and how an error describes it."""

    check: Callable[[Any], bool]
    wanted: str  # "a positive integer", "one of adam, adamw, sgd"


def one_of(*allowed: Any) -> ValueRule:
    return ValueRule(lambda v: v in allowed, "one of " + ", ".join(map(str, allowed)))


def is_number(value: Any) -> bool:
    """A number, and not true/false (which Python counts as 1 and 0)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value: Any) -> bool:
    return is_integer(value) and value >= 1


def in_range(low: float | None = None, high: float | None = None, *, integer: bool = False,
             low_open: bool = False, high_open: bool = False) -> ValueRule:
    """A number (``integer``: a whole one) from ``low`` to ``high`` (None: no bound; open
    ends excluded), for a builder's ``Annotated[float, in_range(0, 1, high_open=True)]``."""
    def check(v: Any) -> bool:
        if not (is_integer(v) if integer else is_number(v)):
            return False
        return ((low is None or (v > low if low_open else v >= low))
                and (high is None or (v < high if high_open else v <= high)))

    noun = "an integer" if integer else "a number"
    if high is None:
        wanted = f"{noun} {'>' if low_open else '>='} {low}"
    elif integer and not (low_open or high_open):
        wanted = f"{noun} from {low} to {high}"
    else:
        wanted = f"{noun} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return ValueRule(check, wanted)


RATE = in_range(0, 1, high_open=True)  # a dropout rate: Keras refuses 1, below 0 acts as 0
POSITIVE = in_range(0, low_open=True)
NON_NEGATIVE = in_range(0)


_KINDS = {
    int: ValueRule(is_integer, "an integer"),
    float: ValueRule(is_number, "a number"),
    bool: ValueRule(lambda v: isinstance(v, bool), "true or false"),
    str: ValueRule(lambda v: isinstance(v, str), "a string"),
}


def literal_choices(builder: Any) -> dict[str, ValueRule]:
    """The rules a family's or policy's builder states by its annotations: name -> the
    ``ValueRule`` of an ``Annotated[..., rule]`` (a range: ``in_range``), the
    ``Literal[...]`` values, or ``int``, ``float``, ``bool``, ``str`` (what ``check_values``
    enforces for their space file: a string '4' for an int was a traceback inside
    keras-tuner, a base_cnn depth of 7 built depth 4; other annotations are not checked)."""
    import typing

    try:
        hints = typing.get_type_hints(builder, include_extras=True)
    except (NameError, TypeError):  # an annotation that does not resolve: nothing to check
        return {}
    rules = {}
    for name, hint in hints.items():
        stated = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, ValueRule)]
        if typing.get_origin(hint) is Annotated:
            hint = typing.get_args(hint)[0]
        if typing.get_origin(hint) is Literal:
            rules[name] = one_of(*typing.get_args(hint))
        elif hint in _KINDS:
            rules[name] = _KINDS[hint]
        if stated:  # and the type too: Annotated[int, in_range(1, 8)] took 2.5
            rules[name] = _both(rules[name], stated[0]) if name in rules else stated[0]
    return rules


def _both(kind: ValueRule, stated: ValueRule) -> ValueRule:
    """``stated`` on values of the annotated ``kind`` (an int's range: 'an integer in ...')."""
    wanted = stated.wanted
    if kind is _KINDS[int] and wanted.startswith("a number"):
        wanted = "an integer" + wanted[len("a number"):]
    return ValueRule(lambda v: kind.check(v) and stated.check(v), wanted)


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate one search-space file (safe YAML loader)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpaceError(f"{path}: search-space file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read search-space file ({exc})") from exc
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(f"{path}: invalid YAML: {problem}{where}") from exc
    except RecursionError:
        raise SpaceError(f"{path}: invalid YAML: nested too deeply") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping with kind, name and hyperparameters")
    try:
        parsed = SpaceFile.model_validate(raw)
    except ValidationError as exc:
        raise SpaceError(_describe(path, text, exc)) from exc
    return SearchSpace(parsed.kind, parsed.name, parsed.description, parsed.hyperparameters, path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML 1.2 calls it an
    error; PyYAML keeps the last, so a repeated hyperparameter silently replaced the
    first)."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged, may repeat
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class says so
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        """PyYAML's int, or the text where its resolver took what has no digit ('0x_', '0b_':
        a ValueError traceback from `autopneumo spaces` or `search --space`), as its floats
        without one ('._e3') stay strings."""
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)

# YAML 1.1 (PyYAML's) reads a float only with a dot and a signed exponent: 1e-3, 1.0e3 and
# 2E+1 were strings, which a range bound converted but a fixed or choice value kept (a
# learning rate of 1e-3 refused as not a number). YAML 1.2, JSON and Python: numbers. A
# digit follows a leading dot, as in PyYAML's own ('._e3' was a ValueError traceback).
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def builtin_space(kind: str, name: str) -> SearchSpace:
    """The space file of a registered family or policy (the spaces folder's, or a
    plugin's own), or the training space."""
    if kind == "training":
        path = spaces_dir() / "training.yaml"
    else:
        from .registry import FAMILIES, POLICIES

        registry = FAMILIES if kind == "family" else POLICIES
        path = (registry.get(name).space_file if name in registry
                else spaces_dir() / ("families" if kind == "family" else "augment")
                / f"{name}.yaml")
    space = load_space(path)
    if space.kind != kind or space.name != name:
        raise SpaceError(f"{path}: declares {space.kind} {space.name!r}, expected {kind} {name!r}")
    return space


def _describe(path: Path, text: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    located = (err.get("ctx") or {}).get("error")
    if isinstance(located, _LocatedValueError):
        loc = list(located.loc)
    # drop pydantic's union tags ("int", "float", ...) that follow a hyperparameter name
    if len(loc) >= 3 and loc[0] == "hyperparameters" and loc[2] in {
        "int", "float", "choice", "boolean", "fixed"
    }:
        loc.pop(2)
    msg = err["msg"].removeprefix("Value error, ")
    scalar = len(loc) >= 4 and loc[-1] in ("bool", "int", "float", "str") and any(
        k in loc for k in ("value", "values", "when"))
    if scalar:  # pydantic names the last member of the Scalar union it tried
        loc.pop()
        got = err.get("input")
        msg = ("must be a finite number" if isinstance(got, float)
               else "must be a number, a string or true/false")
        msg += f", got {'null' if got is None else repr(got)}"
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(loc[-1], allowed, n=1) if allowed else []
        if close:
            msg += f" (did you mean {close[0]!r}?)"
    elif err["type"] == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        msg = f"unknown hyperparameter type {tag!r}; use int, float, choice, boolean or fixed"
    elif err["type"] == "union_tag_not_found":
        msg = "missing 'type' (int, float, choice, boolean or fixed)"
    lines = _key_lines(path, text)
    line = None
    for depth in range(len(loc), 0, -1):
        line = lines.get(tuple(loc[:depth]))
        if line:
            break
    where = f" (line {line})" if line else ""
    return f"{path}: {key}: {msg}{where}"


def _allowed_keys(loc: list[str]) -> list[str]:
    if len(loc) == 1:
        return list(SpaceFile.model_fields)
    fields: set[str] = set()
    for model in (IntHP, FloatHP, ChoiceHP, BooleanHP, FixedHP):
        fields |= set(model.model_fields)
    return sorted(fields)


def _key_lines(path: Path, text: str | None = None) -> dict[tuple[str, ...], int]:
    """Map key paths (("hyperparameters", "width", "min")) to 1-based line numbers."""
    try:
        node = yaml.compose(text if text is not None else path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError):
        return {}
    out: dict[tuple[str, ...], int] = {}

    def walk(n, prefix):
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = prefix + (str(k.value),)
                out[key] = k.start_mark.line + 1
                walk(v, key)

    walk(node, ())
    return out


def default_space_dir() -> Path:
    return spaces_dir()
