"""``build_core(config)``: rebuild any recurrent core from its ``config()`` dict, dispatching on ``"type"``.

Built-in types are resolved lazily (importing this module imports no core). Another core type
registers itself with ``register_core("name", factory)`` where ``factory(config) -> core``;
to make a type available without an explicit import, add it to :data:`CORE_TYPES` as
``"module:Class.method"`` (one :class:`~lnn_control.registry.LazyRegistry`, like every lookup by name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from lnn_control.registry import LazyRegistry

CoreFactory = Callable[[Mapping[str, Any]], nn.Module]

CORE_TYPES = LazyRegistry("core type", {
    "ltc": "lnn_control.nn.ltc:LTC.from_config",
    "cfc": "lnn_control.nn.cfc:CfC.from_config",
    "lstm": "lnn_control.nn.baselines:build_baseline",
    "gru": "lnn_control.nn.baselines:build_baseline",
    "ctrnn": "lnn_control.nn.baselines:build_baseline",
    "feedforward": "lnn_control.nn.baselines:build_baseline",
    "wired_ctrnn": "lnn_control.nn.wired_ctrnn:WiredCTRNN.from_config",
})
"""Core type → factory ``factory(config) -> core``, imported when first built."""


def register_core(kind: str, factory: CoreFactory) -> None:
    """Make ``build_core`` build ``{"type": kind, ...}`` configs with ``factory``."""
    if not callable(factory):
        raise ValueError(f"factory for core type {kind!r} must be callable")
    CORE_TYPES.register(kind, factory)


def core_types() -> list[str]:
    """Every type ``build_core`` knows."""
    return CORE_TYPES.names()


def build_core(config: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised core with the architecture in ``config`` (``config["type"]`` picks the class)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"core config must be a mapping with a 'type' key, got {type(config).__name__}")
    return CORE_TYPES.get(config.get("type"))(config)
