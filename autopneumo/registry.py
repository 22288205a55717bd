"""Name -> builder registries for model families and augmentation policies (after timm).

A new family or policy is one decorated function in its own module plus one
search-space file; the CLI, the report and the tests discover it here. Modules outside
the package join through entry points (``[project.entry-points."autopneumo.families"]``
or ``"autopneumo.policies"`` in their own ``pyproject.toml``) or ``AUTOPNEUMO_PLUGINS``
(comma-separated module names), and name their own search-space file with ``space=``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import os
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OptionError, warn
from .paths import spaces_dir


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    description: str
    kind: str  # "family" or "augment"
    min_image_size: int = 8
    space: Path | None = None  # a plugin's own search-space file

    @property
    def space_file(self) -> Path:
        """The spaces folder's file for this name (``AUTOPNEUMO_SPACES`` may replace the
        folder); a plugin's own ``space`` where the folder has none."""
        folder = "families" if self.kind == "family" else "augment"
        path = spaces_dir() / folder / f"{self.name}.yaml"
        return self.space if self.space is not None and not path.exists() else path

    def positional(self) -> tuple[str, ...]:
        """The builder's arguments that are not keyword-only (never hyperparameters)."""
        return tuple(p.name for p in inspect.signature(self.builder).parameters.values()
                     if p.kind is not p.KEYWORD_ONLY)

    def parameters(self) -> dict[str, Any]:
        """The builder's tunable keyword arguments and their defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.builder).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        }


PLUGINS_ENV = "AUTOPNEUMO_PLUGINS"
# a name is a project folder's (runs/<family>__<policy>) and the Keras model's, which
# TensorFlow takes only in ASCII: 'vgg_ü' failed every trial, '../x' left --runs-dir
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FAILED: dict[str, str] = {}  # module -> why it did not import (for every registry)


class Registry:
    def __init__(self, kind: str, package: str, option: str, group: str | None = None):
        self.kind = kind
        self._package = package
        self._option = option
        self._group = group  # the entry-point group plugins register their modules in
        self._entries: dict[str, Entry] = {}
        self._broken: dict[str, str] = {}  # module -> why it did not import
        self._loaded = False

    def register(self, name: str, *, description: str, min_image_size: int = 8,
                 space: str | Path | None = None):
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"{self.kind} name {name!r}: use ASCII letters, digits, '_', '-' "
                             "and '.', starting with a letter or digit")

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                first = self._entries[name].builder.__module__
                raise ValueError(f"{self.kind} {name!r} is registered twice: by {first} "
                                 f"and by {fn.__module__}")
            self._entries[name] = Entry(name, fn, description, self.kind, min_image_size,
                                        Path(space) if space is not None else None)
            return fn

        return decorator

    def _load(self) -> None:
        """Import every module of the package. One that fails (a missing import, a name
        registered twice) is left out with a one-line warning: the other families or
        policies still work, and asking for one of its names says why it is missing."""
        if not self._loaded:
            package = importlib.import_module(self._package)  # its failure: raised again
            self._loaded = True
            failed = []  # said once all are imported: a warning made an error (-W error)
            for info in pkgutil.iter_modules(package.__path__):  # must not stop the loading
                if not info.name.startswith("_"):
                    failed += self._import(f"{self._package}.{info.name}")
            for module in self._plugins():
                failed += self._import(module)
            for module in failed:
                warn(f"{module} not loaded ({self._broken[module]})")

    def _plugins(self) -> list[str]:
        """Plugin modules: the entry points of this registry's group (installed packages),
        then ``AUTOPNEUMO_PLUGINS`` (modules on the path, not installed)."""
        modules = []
        if self._group:
            from importlib.metadata import entry_points

            modules += [ep.value.split(":")[0] for ep in entry_points(group=self._group)]
        modules += [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
        return list(dict.fromkeys(modules))

    def _import(self, module: str) -> list[str]:
        """Import ``module``; ``[module]`` where it failed for the first time (to be said)."""
        if module in _FAILED:  # a plugin both registries list: tried, and said, once
            self._broken[module] = _FAILED[module]
            return []
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - someone's module: say so, go on
            why = str(exc).splitlines()[0] if str(exc) else ""
            self._broken[module] = _FAILED[module] = f"{type(exc).__name__}: {why}"
            return [module]
        return []

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str, option: str | None = None) -> Entry:
        """The entry registered as ``name``; an OptionError naming ``option`` (default the
        search's: --family, --augment) where there is none."""
        self._load()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(self.names())
            broken = "".join(f"; {module} did not load ({why})"
                             for module, why in self._broken.items())
            raise OptionError(f"unknown {option or self._option} {name!r}{hint}; known: "
                              f"{known}{broken}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


FAMILIES = Registry("family", "autopneumo.families", "--family", "autopneumo.families")
POLICIES = Registry("augment", "autopneumo.augment", "--augment", "autopneumo.policies")
register_family = FAMILIES.register
register_policy = POLICIES.register
