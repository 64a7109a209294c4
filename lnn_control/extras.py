"""Which optional extra brings which package, and the message that says what to install.

The base install (``pip install lnn-control``) is what a robot needs to run an exported policy:
numpy, OpenCV, onnxruntime, pyserial, pymavlink, mcap, PyYAML. Everything else is an extra; a
command that reaches for a missing one fails with :func:`missing_extra_message`'s text.
"""

from __future__ import annotations

import importlib.util

EXTRA_OF_PACKAGE: dict[str, str] = {
    "gymnasium": "sim",
    "mujoco": "sim",
    "pybullet": "sim",
    "torch": "train",
    "numba": "train",
    "safetensors": "train",
    "tqdm": "train",
    "matplotlib": "train",
    "onnx": "train",
    "ray": "ray",
    "evdev": "teleop",
    "zenoh": "ros2",
    "rosbags": "ros2",
    "xxhash": "ros2",
    "pyarrow": "lerobot",
    "av": "lerobot",
}
"""Top-level import name -> the extra of ``pyproject.toml`` that installs it."""


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """The install hint for a missing package of an extra; None for any other missing module
    (a real bug, which should surface as one)."""
    package = (error.name or "").split(".")[0]
    extra = EXTRA_OF_PACKAGE.get(package)
    if extra is None:
        return None
    return (
        f"this command needs {package}, which the [{extra}] extra installs: "
        f"pip install 'lnn-control[{extra}]' (or 'lnn-control[all]' for everything)"
    )


def require(package: str, what: str) -> None:
    """Raise ModuleNotFoundError (carrying ``package``) unless ``package`` is importable; ``what``
    says what needs it. For code that would otherwise fail later, in another process."""
    if importlib.util.find_spec(package) is None:
        raise ModuleNotFoundError(f"{what} needs {package}, which is not installed", name=package)
