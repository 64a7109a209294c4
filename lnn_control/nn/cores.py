"""``build_core(config)``: rebuild any recurrent core from its ``config()`` dict, dispatching on ``"type"``.

Built-in types are resolved lazily (importing this module imports no core). Another core type
registers itself with ``register_core("name", factory)`` where ``factory(config) -> core``;
to make a type available without an explicit import, add it to ``_BUILTIN`` as
``"module:Class.method"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

CoreFactory = Callable[[Mapping[str, Any]], nn.Module]

_BUILTIN: dict[str, str] = {
    "ltc": "lnn_control.nn.ltc:LTC.from_config",
    "cfc": "lnn_control.nn.cfc:CfC.from_config",
    "lstm": "lnn_control.nn.baselines:build_baseline",
    "gru": "lnn_control.nn.baselines:build_baseline",
    "ctrnn": "lnn_control.nn.baselines:build_baseline",
    "feedforward": "lnn_control.nn.baselines:build_baseline",
    "wired_ctrnn": "lnn_control.nn.wired_ctrnn:WiredCTRNN.from_config",
}
_REGISTRY: dict[str, CoreFactory] = {}


def register_core(kind: str, factory: CoreFactory) -> None:
    """Make ``build_core`` build ``{"type": kind, ...}`` configs with ``factory``."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if not callable(factory):
        raise ValueError(f"factory for core type {kind!r} must be callable")
    _REGISTRY[kind] = factory


def core_types() -> list[str]:
    """Every type ``build_core`` knows."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def _resolve(target: str) -> CoreFactory:
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def build_core(config: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised core with the architecture in ``config`` (``config["type"]`` picks the class)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"core config must be a mapping with a 'type' key, got {type(config).__name__}")
    kind = config.get("type")
    if kind not in _REGISTRY:
        if kind not in _BUILTIN:
            raise ValueError(f"unknown core type {kind!r}; known types: {core_types()}")
        _REGISTRY[kind] = _resolve(_BUILTIN[kind])
    return _REGISTRY[kind](config)
