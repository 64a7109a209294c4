"""One way to look things up by name: a registry of ``"module:attribute.path"`` strings imported on
first use (naming a core, a backend or a robot costs no import of torch or a simulator), plus
objects registered at run time. Cores, compiled steppers, env backends and hardware robots use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any


class LazyRegistry:
    """Names → objects. ``what`` names the kind in errors ("core type", "lane-keeping backend").

    ``entries`` map a name to ``"module:attribute.path"``; :meth:`get` imports the module the first
    time and caches the object. A missing optional package surfaces as the ModuleNotFoundError
    itself (the CLI turns it into the extra to install)."""

    def __init__(self, what: str, entries: Mapping[str, str]) -> None:
        for name, target in entries.items():
            if ":" not in target:
                raise ValueError(f"{what} {name!r}: target {target!r} must be 'module:attribute'")
        self.what = what
        self._targets = dict(entries)
        self._resolved: dict[str, Any] = {}

    def names(self) -> list[str]:
        """Every name this registry knows, sorted."""
        return sorted(set(self._targets) | set(self._resolved))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._targets or name in self._resolved

    def register(self, name: str, obj: Any) -> None:
        """Make ``name`` resolve to ``obj`` (replacing a lazy entry of that name)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")
        self._resolved[name] = obj

    def target(self, name: str) -> str | None:
        """The ``"module:attribute"`` string of a lazy entry (None for a registered object)."""
        return self._targets.get(name)

    def get(self, name: object) -> Any:
        """The object for ``name``; ValueError naming the known names if there is none."""
        if not isinstance(name, str) or name not in self:
            raise ValueError(f"unknown {self.what} {name!r}; known: {self.names()}")
        if name not in self._resolved:
            module_name, _, attribute = self._targets[name].partition(":")
            obj: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                obj = getattr(obj, part)
            self._resolved[name] = obj
        return self._resolved[name]
