"""Typed dataclass configs loaded strictly from dicts, JSON or YAML.

``load_dataclass(Cls, data, source)`` builds ``Cls`` from a mapping, recursing into nested
dataclasses, rejecting unknown keys and wrong types with a :class:`ConfigError` that names
the key, the expected type and the file it came from.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the key and the source."""


def load_dataclass(cls: type[T], data: Any, source: str = "<config>", path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown or missing keys raise :class:`ConfigError`."""
    where = f"{path}" if path else "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at {where}, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]  # checked by callers
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} at {where}; allowed keys: {sorted(fields)}"
        )
    kwargs = {}
    for name, field in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name not in data:
            no_default = (
                field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise ConfigError(f"{source}: missing required key '{key_path}'")
            continue
        kwargs[name] = _coerce(hints[name], data[name], source, key_path)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{source}: invalid value at {where}: {exc}") from exc


def _coerce(hint: Any, value: Any, source: str, key_path: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, source, key_path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1] if errors else f"{source}: invalid value for '{key_path}'")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{source}: '{key_path}' is {value!r}; allowed values: {list(args)}"
            )
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return load_dataclass(hint, value, source, key_path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = [m.value for m in hint]
            raise ConfigError(
                f"{source}: '{key_path}' is {value!r}; allowed values: {allowed}"
            ) from None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key_path}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(
                    f"{source}: '{key_path}' must have {len(args)} items, got {len(value)}"
                )
            return tuple(
                _coerce(a, v, source, f"{key_path}[{i}]") for i, (a, v) in enumerate(zip(args, value))
            )
        item = args[0] if args else Any
        items = [_coerce(item, v, source, f"{key_path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key_path}' must be a mapping, got {value!r}")
        value_type = args[1] if args else Any
        return {k: _coerce(value_type, v, source, f"{key_path}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key_path}' must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key_path}' must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key_path}' must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key_path}' must be a string, got {value!r}")
        return value
    return value


def load_yaml_dataclass(cls: type[T], path: str | Path) -> T:
    """Read a YAML file and build ``cls`` from it; errors name the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from exc
    return load_yaml_text_dataclass(cls, text, str(file))


def load_yaml_text_dataclass(cls: type[T], text: str, source: str) -> T:
    """Build ``cls`` from YAML ``text`` (e.g. a launch file's text recorded in a bundle or a study
    folder); errors name ``source``."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    return load_dataclass(cls, data, source)
