"""Name -> builder registries for model families and augmentation policies (after timm).

A new family or policy is one decorated function in its own module plus one
search-space file; the CLI, the report and the tests discover it here.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OptionError
from .paths import spaces_dir


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    description: str
    kind: str  # "family" or "augment"
    min_image_size: int = 8

    @property
    def space_file(self) -> Path:
        folder = "families" if self.kind == "family" else "augment"
        return spaces_dir() / folder / f"{self.name}.yaml"

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


class Registry:
    def __init__(self, kind: str, package: str, option: str):
        self.kind = kind
        self._package = package
        self._option = option
        self._entries: dict[str, Entry] = {}
        self._broken: dict[str, str] = {}  # module -> why it did not import
        self._loaded = False

    def register(self, name: str, *, description: str, min_image_size: int = 8):
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                first = self._entries[name].builder.__module__
                raise ValueError(f"{self.kind} {name!r} is registered twice: by {first} "
                                 f"and by {fn.__module__}")
            self._entries[name] = Entry(name, fn, description, self.kind, min_image_size)
            return fn

        return decorator

    def _load(self) -> None:
        """Import every module of the package. One that fails (a missing import, a name
        registered twice) is left out with a one-line warning: the other families or
        policies still work, and asking for one of its names says why it is missing."""
        if not self._loaded:
            self._loaded = True
            package = importlib.import_module(self._package)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    module = f"{self._package}.{info.name}"
                    try:
                        importlib.import_module(module)
                    except Exception as exc:  # noqa: BLE001 - someone's module: say, go on
                        why = str(exc).splitlines()[0] if str(exc) else ""
                        self._broken[module] = f"{type(exc).__name__}: {why}"
                        print(f"warning: {module} not loaded ({self._broken[module]})",
                              file=sys.stderr)

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(self.names())
            broken = "".join(f"; {module} did not load ({why})"
                             for module, why in self._broken.items())
            raise OptionError(f"unknown {self._option} {name!r}{hint}; known: {known}{broken}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


FAMILIES = Registry("family", "autopneumo.families", "--family")
POLICIES = Registry("augment", "autopneumo.augment", "--augment")
register_family = FAMILIES.register
register_policy = POLICIES.register
