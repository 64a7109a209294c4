"""Start training from a policy bundle (launch key ``init_from``) instead of fresh weights.

Decision: the recipe's ``policy`` section (preset, core, and the specs of the task or datasets)
describes the architecture, and the bundle supplies the weights. The two must describe the same
network: a bundle whose architecture differs anywhere (core type or settings, wiring, perception,
observation or action spec, control rate, output squash, extras scale) is refused with the
differences listed, never silently adapted. Loaded as the bundle has them: every weight, including
the output gain and bias (the fresh-policy output initialisation is skipped), and the label scale
of its training loss (``provenance.selection.label_std``, so the fine-tune measures errors in the
same units; a bundle without one: the scale of the new training data).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnn_control.config import ConfigError, load_dataclass

if TYPE_CHECKING:
    from lnn_control.policies.policy import Policy


@dataclass(frozen=True)
class InitBundle:
    """A bundle to start from: where it is, its architecture, hashes and label scale.

    given: the name or path as the launch file / command line wrote it.
    path: the resolved bundle directory or ``.zip``.
    policy_config: the bundle's ``config.json`` ``policy`` section (architecture, specs).
    model_sha256 / config_sha256: hex SHA-256 of ``model.safetensors`` and of ``config.json``.
    label_std: per action component, normalised units; ``None`` when the bundle has none.
    provenance: the bundle's own training provenance.
    """

    given: str
    path: Path
    policy_config: dict[str, Any]
    model_sha256: str
    config_sha256: str
    label_std: list[float] | None
    provenance: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """What the new bundle's provenance says about where its weights started."""
        return {
            "bundle": self.given,
            "path": str(self.path.resolve()),
            "model_sha256": self.model_sha256,
            "config_sha256": self.config_sha256,
            "dataset_hash": self.provenance.get("dataset_hash"),
            "command": self.provenance.get("command"),
            "label_std": self.label_std,
        }


def resolve_bundle(name_or_path: str) -> Path:
    """A bundle directory / ``.zip`` path, or the name of a shipped bundle in ``policies/pretrained``."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".onnx":
        raise ConfigError(f"init_from {name_or_path!r}: an ONNX export holds no training weights; "
                          "give the policy bundle folder or its .zip")
    if path.exists():
        return path
    shipped = resources.files("lnn_control.policies") / "pretrained"
    candidate = shipped / name_or_path
    if name_or_path and "/" not in name_or_path and candidate.is_dir():
        return Path(str(candidate))
    names = sorted(e.name for e in shipped.iterdir() if e.is_dir()) if shipped.is_dir() else []
    raise ConfigError(f"init_from {name_or_path!r}: no such bundle folder or .zip, and no shipped bundle of "
                      f"that name (shipped: {names or 'none'})")


def read_init_bundle(name_or_path: str) -> InitBundle:
    """Resolve and read the bundle's config (no weights yet); errors name the bundle and the problem."""
    from lnn_control.policies.bundle import CONFIG_FILE, PolicyBundleError, read_bundle_config

    path = resolve_bundle(name_or_path)
    try:
        config = read_bundle_config(path)
    except PolicyBundleError as exc:
        raise ConfigError(f"init_from {name_or_path!r}: {exc}") from None
    if path.is_dir():
        raw = (path / CONFIG_FILE).read_bytes()
    else:
        with zipfile.ZipFile(path) as archive:  # read_bundle_config has checked the archive
            raw = archive.read(CONFIG_FILE)
    provenance = dict(config["provenance"])
    action_size = len(config["policy"].get("action_spec", {}).get("names", []))
    label_std = (provenance.get("selection") or {}).get("label_std")
    if not (isinstance(label_std, list) and len(label_std) == action_size
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in label_std)):
        label_std = None
    return InitBundle(
        given=name_or_path, path=path, policy_config=config["policy"], model_sha256=config["model_sha256"],
        config_sha256=hashlib.sha256(raw).hexdigest(), provenance=provenance,
        label_std=None if label_std is None else [float(v) for v in label_std],
    )


def architecture_differences(recipe: Any, bundle: Any, where: str = "") -> list[str]:
    """``key.path: recipe X, bundle Y`` for every leaf where two JSON-like configs differ (large
    arrays such as wiring matrices are reported as differing, not printed; two mappings of another
    ``type``, such as an LTC and a CfC core, only by their type)."""
    if isinstance(recipe, dict) and isinstance(bundle, dict):
        if "type" in recipe and "type" in bundle and recipe["type"] != bundle["type"]:  # e.g. two core kinds:
            key = f"{where}.type" if where else "type"                                  # their settings differ anyway
            return [f"{key}: recipe {json.dumps(recipe['type'])}, bundle {json.dumps(bundle['type'])}"]
        found: list[str] = []
        for key in sorted(set(recipe) | set(bundle)):
            path = f"{where}.{key}" if where else str(key)
            if key not in bundle:
                found.append(f"{path}: only in the recipe")
            elif key not in recipe:
                found.append(f"{path}: only in the bundle")
            else:
                found.extend(architecture_differences(recipe[key], bundle[key], path))
        return found
    if recipe == bundle:
        return []
    shown = [json.dumps(v) for v in (recipe, bundle)]
    if any(len(s) > 80 for s in shown):
        return [f"{where}: differs"]
    return [f"{where}: recipe {shown[0]}, bundle {shown[1]}"]


def load_init_weights(policy: Policy, init: InitBundle) -> None:
    """Copy the bundle's weights into ``policy`` (built from the recipe) after checking that both
    describe the same architecture; a ``ConfigError`` lists the differences otherwise."""
    from lnn_control.policies.bundle import load_policy
    from lnn_control.policies.policy import PolicyConfig

    recipe = json.loads(json.dumps(policy.config.to_dict()))
    # the bundle's config as load_policy reads it: a key added since it was written (e.g.
    # perception.feature_norm, 2026-12-07) takes its default, which is what that bundle computes
    bundle_config = load_dataclass(PolicyConfig, init.policy_config, f"init_from {init.given!r} (policy)")
    differences = architecture_differences(recipe, json.loads(json.dumps(bundle_config.to_dict())))
    if differences:
        shown = "; ".join(differences[:8]) + (f"; and {len(differences) - 8} more" if len(differences) > 8 else "")
        raise ConfigError(
            f"init_from {init.given!r} ({init.path}): the bundle's architecture differs from the recipe's "
            f"(policy section, task or dataset specs): {shown}. Set the policy section to the bundle's "
            f"(core {init.policy_config.get('core', {}).get('type')!r}) and train on data with its specs"
        )
    source = load_policy(init.path)
    policy.load_state_dict(source.state_dict(), strict=True)
