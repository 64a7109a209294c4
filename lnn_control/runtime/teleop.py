"""Drive a launch file's robot by hand (``lnn-control teleop``), and build the input devices that
``teleop`` and ``run --takeover`` use.

Teleop runs the robot of any run launch file (sim or hardware) at its ``rate_hz`` through the same
loop and safety layer as ``run`` (clamp, slew limit, watchdog, e-stop, stop on exit), with a human
input in place of the policy: the launch file's policy is not loaded, the action spec comes from the
robot. The run log records every step's source and the human input (``mode: teleop``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

from lnn_control.config import ConfigError
from lnn_control.runtime.core.arbiter import ControlMode, HumanInput
from lnn_control.runtime.core.robot import Robot
from lnn_control.runtime.launch import LaunchConfig, resolve_policy_path
from lnn_control.runtime.session import RunResult, drive_robot

InputKind = Literal["keyboard", "gamepad", "expert"]
INPUT_KINDS: tuple[InputKind, ...] = ("keyboard", "gamepad", "expert")


def make_human_input(kind: str, config: LaunchConfig, mode: ControlMode, terminal_fd: int | None = None) -> HumanInput:
    """The (not yet opened) input device ``kind`` with the launch file's ``teleop`` settings.

    terminal_fd: the keyboard's terminal (default: stdin). In takeover mode the keyboard's space key
    latches the e-stop, as in ``run`` (the policy drives while no key is held)."""
    if kind == "keyboard":
        from lnn_control.runtime.inputs.keyboard import KeyboardInput

        fd = sys.stdin.fileno() if terminal_fd is None else terminal_fd
        return KeyboardInput(config.teleop.keyboard, fd, takeover_mode=mode == ControlMode.TAKEOVER)
    if kind == "gamepad":
        from lnn_control.runtime.inputs.gamepad import GamepadInput

        return GamepadInput(config.teleop.gamepad)
    if kind == "expert":
        raise ValueError("the expert input needs the robot: use teleop_launch(..., expert=True), not make_human_input")
    raise ValueError(f"input kind {kind!r} is not known; allowed: {list(INPUT_KINDS)}")


def policy_image_shape(policy: str) -> tuple[int, int]:
    """(height, width) of a policy's camera input, read from its spec without loading weights."""
    path = resolve_policy_path(policy)
    if path.suffix == ".onnx":
        from lnn_control.export.onnx_policy import OnnxPolicy

        shape = OnnxPolicy(path).observation_spec.image_shape
    else:
        from lnn_control.policies.bundle import read_bundle_config

        shape = read_bundle_config(path)["policy"]["observation_spec"]["image_shape"]
    return int(shape[0]), int(shape[1])


def teleop_image_shape(config: LaunchConfig, source: str) -> tuple[int, int]:
    """The frame size hardware cameras deliver in teleop: ``teleop.image_shape``, else the launch
    file's policy's (so the recorded frames fit it). Simulators render their own size."""
    if config.teleop.image_shape is not None:
        return config.teleop.image_shape
    if config.robot.kind == "sim":
        return (0, 0)  # unused: the env renders its own frames
    try:
        return policy_image_shape(config.policy)
    except (ValueError, ImportError, OSError, KeyError) as exc:
        raise ConfigError(
            f"{source}: teleop records camera frames at the policy's image size, but policy {config.policy!r} "
            f"cannot be read ({exc}); set teleop.image_shape: [height, width]"
        ) from exc


def teleop_launch(
    config: LaunchConfig,
    source: str,
    human: HumanInput,
    duration_s: float | None = None,
    log_path: Path | None = None,
    handle_signals: bool = True,
    max_steps: int | None = None,
    live_stream: TextIO | None = None,
    attach: Callable[[Robot], None] | None = None,
    human_label: str | None = None,
) -> RunResult:
    """Drive the launch file's robot with ``human`` (not yet opened; see :func:`make_human_input`)
    until its quit control, a stop signal or the duration; the stop command is sent at the end.
    attach: called with the robot before it connects. human_label: who drove, for the log's metadata."""
    metadata: dict[str, Any] = {"policy": None, "engine": None}
    if human_label is not None:
        metadata["human"] = human_label
    return drive_robot(
        config, source, None, human, ControlMode.TELEOP, teleop_image_shape(config, source), duration_s,
        log_path, live_stream, handle_signals, True, max_steps, metadata, attach=attach,
    )


def expert_teleop_launch(config: LaunchConfig, source: str, **options: Any) -> RunResult:
    """:func:`teleop_launch` (same keyword options) with the task's privileged expert at a virtual
    gamepad (:mod:`~lnn_control.runtime.inputs.expert_pad`): a benchmark stand-in for a human, sim only."""
    from lnn_control.runtime.inputs.expert_pad import ExpertGamepad

    if config.robot.kind != "sim" or config.robot.sim is None or config.robot.sim.pacing != "lockstep":
        raise ConfigError(
            f"{source}: --input expert drives a simulated robot stepped in the loop; set robot.kind: sim and "
            "robot.sim.pacing: lockstep"
        )
    expert = ExpertGamepad(config.teleop.gamepad)
    try:
        return teleop_launch(config, source, expert.input, attach=expert.attach,
                             human_label="expert (privileged, through the gamepad input path)", **options)
    finally:
        expert.close()
