"""Point a launch file's camera at a calibration file, keeping the file as written.

Launch files are hand-written YAML with comments; loading and dumping them would drop the comments.
So one line, ``calibration: {file: ...}``, is inserted as the first key of the block mapping
``robot.camera``, at its indentation; the result must parse to the old data plus exactly that key
and validate as a launch file, else nothing is written. The write is atomic.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from lnn_control.config import ConfigError


def _camera_node(root: Any) -> Any:
    """The YAML node of ``robot.camera`` (a yaml.MappingNode), or None."""
    import yaml

    node = root
    for key in ("robot", "camera"):
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for k, value in node.value if getattr(k, "value", None) == key), None)
    return node


def reference_line(indent: int, calibration_file: str, mount_pitch_deg: float | None) -> str:
    """The inserted line (with newline)."""
    fields = [f"file: {json.dumps(calibration_file)}"]
    if mount_pitch_deg is not None:
        fields.append(f"mount_pitch_deg: {mount_pitch_deg:g}")
    return " " * indent + "calibration: {" + ", ".join(fields) + "}   # lnn-control camera calibrate\n"


def add_calibration_reference(launch_path: Path, calibration_file: str, mount_pitch_deg: float | None = None) -> bool:
    """Add ``robot.camera.calibration: {file: calibration_file}`` to ``launch_path`` (atomic);
    False when it already names that file. Errors as :func:`plan_calibration_reference`."""
    from lnn_control.atomic import atomic_write_text

    new_text = plan_calibration_reference(launch_path, calibration_file, mount_pitch_deg)
    if new_text is None:
        return False
    atomic_write_text(launch_path, new_text)
    return True


def plan_calibration_reference(
    launch_path: Path, calibration_file: str, mount_pitch_deg: float | None = None
) -> str | None:
    """The launch file's text with ``robot.camera.calibration: {file: calibration_file}`` added, or
    None when it already names that file (the calibration file itself is what changes). Writes
    nothing. A launch file without ``robot.camera``, one that references another calibration, or a
    flow-style camera section raises ConfigError saying what to edit by hand."""
    import yaml

    from lnn_control.config import load_dataclass
    from lnn_control.runtime.launch import LaunchConfig

    if not launch_path.is_file():
        raise ConfigError(f"launch file {launch_path} does not exist (give the path of your own launch file)")
    text = launch_path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{launch_path}: not valid YAML: {exc}") from exc
    camera = data.get("robot", {}).get("camera") if isinstance(data, dict) and isinstance(data.get("robot"), dict) else None
    if not isinstance(camera, dict):
        raise ConfigError(f"{launch_path} has no robot.camera section: only hardware robots' launch files have a camera")
    wanted: dict[str, Any] = {"file": calibration_file}
    if mount_pitch_deg is not None:
        wanted["mount_pitch_deg"] = float(mount_pitch_deg)
    existing = camera.get("calibration")
    if existing is not None:
        if isinstance(existing, dict) and existing.get("file") == calibration_file and (
            mount_pitch_deg is None or existing.get("mount_pitch_deg") == mount_pitch_deg
        ):
            return None
        raise ConfigError(
            f"{launch_path} already has robot.camera.calibration {existing!r}; edit it by hand to "
            f"{{file: {calibration_file}}} (nothing was changed)"
        )
    node = _camera_node(root)
    if node is None or not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        raise ConfigError(
            f"{launch_path}: robot.camera is not a block mapping; add 'calibration: {{file: {calibration_file}}}' "
            "to it by hand"
        )
    line, indent = node.start_mark.line, node.start_mark.column
    lines = text.splitlines(keepends=True)
    lines.insert(line, reference_line(indent, calibration_file, mount_pitch_deg))
    new_text = "".join(lines)
    expected = copy.deepcopy(data)
    expected["robot"]["camera"]["calibration"] = wanted
    try:
        if yaml.safe_load(new_text) != expected:
            raise ConfigError(f"{launch_path}: inserting the calibration line would change other keys")
    except yaml.YAMLError as exc:
        raise ConfigError(f"{launch_path}: could not insert the calibration line safely ({exc}); add it by hand") from exc
    load_dataclass(LaunchConfig, expected, str(launch_path))  # the result must still be a valid launch file
    return new_text
