"""Turn a :class:`~lnn_control.runtime.launch.LaunchConfig` into a running control loop.

``load_engine`` picks the policy engine (torch bundle or exported ONNX), ``make_robot`` builds the
robot the launch file names, ``run_launch`` wires robot + policy (+ a takeover input) + safety +
MCAP log into a :class:`~lnn_control.runtime.core.loop.ControlLoop` and runs it; ``drive_robot`` is
the part it shares with teleop (:mod:`lnn_control.runtime.teleop`).

Hardware robots plug in by module: ``robot.kind: serial_car`` imports
``lnn_control.runtime.hardware.serial_car.SerialCar``, ``mavlink_drone`` imports
``lnn_control.runtime.hardware.mavlink_drone.MavlinkDrone``; the launch file's ``robot.settings`` reach the
class through ``from_launch(settings, camera, source)`` if it defines one, else through its
constructor (see :func:`build_hardware_robot`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from lnn_control.config import ConfigError
from lnn_control.registry import LazyRegistry
from lnn_control.runtime.core.arbiter import ControlMode, HumanInput
from lnn_control.runtime.core.loop import (
    ControlLoop,
    LoopConfig,
    LoopStats,
    PolicyLike,
    install_stop_signals,
)
from lnn_control.runtime.core.robot import Robot, RobotError
from lnn_control.runtime.core.safety import (
    CommandLimiter,
    EStop,
    EventLog,
    KeyboardEStop,
    SafetyEventKind,
    Watchdog,
)
from lnn_control.runtime.hardware.cameras import make_camera
from lnn_control.runtime.launch import Engine, LaunchConfig, resolve_policy_path

HARDWARE_ROBOTS = LazyRegistry("hardware robot kind", {
    "serial_car": "lnn_control.runtime.hardware.serial_car:SerialCar",
    "mavlink_drone": "lnn_control.runtime.hardware.mavlink_drone:MavlinkDrone",
})


def load_engine(policy: str | Path, engine: Engine, threads: int = 1) -> Any:
    """Load the policy for ``engine``: a bundle directory (torch) or an exported ``.onnx`` file.

    threads: intra-op threads (torch: process-wide ``torch.set_num_threads``)."""
    path = resolve_policy_path(str(policy))
    if engine == Engine.ONNX:
        if path.suffix != ".onnx":
            candidate = path.parent / f"{path.stem if path.is_file() else path.name}.onnx"
            if not candidate.is_file():
                raise ConfigError(
                    f"engine onnx needs an exported model; run 'lnn-control export {path} --format onnx' "
                    f"(writes {candidate}) or set policy to an .onnx file"
                )
            path = candidate
        from lnn_control.export.onnx_policy import OnnxPolicy

        return OnnxPolicy(path, threads=threads)
    if path.suffix == ".onnx":
        raise ConfigError(f"policy {path} is an ONNX file: set engine: onnx (or --engine onnx)")
    import torch

    from lnn_control.policies.bundle import load_policy

    torch.set_num_threads(threads)
    return load_policy(path)


def warm_up(policy: PolicyLike, steps: int) -> None:
    """Run ``steps`` policy steps on a blank observation, then ``reset()`` (first calls are slow)."""
    if steps <= 0:
        return
    spec = policy.observation_spec
    blank = {"image": np.zeros(tuple(spec.image_shape), np.uint8)}
    blank.update({name: np.zeros(1, np.float32) for name in spec.extras})
    period = 1.0 / 50.0
    for _ in range(steps):
        policy.act(blank, period)
    policy.reset()


def make_robot(config: LaunchConfig, image_shape: tuple[int, int], source: str) -> Robot:
    """Build (not connect) the robot; cameras resize frames to ``image_shape`` (height, width)."""
    robot_config = config.robot
    if robot_config.kind == "sim":
        from lnn_control.extras import require

        require("gymnasium", "robot.kind sim")  # else the simulator process would fail on its own
        sim = robot_config.sim
        assert sim is not None  # RobotConfig requires it for kind sim
        if sim.pacing == "clocked":
            from lnn_control.runtime.sim.clocked import ClockedSimRobot

            return ClockedSimRobot(sim.env_id, sim.env_kwargs, seed=sim.seed, neutral_action=config.limits.neutral)
        from lnn_control.runtime.sim.lockstep import LockstepSimRobot

        return LockstepSimRobot(sim.env_id, sim.env_kwargs, seed=sim.seed, neutral_action=config.limits.neutral)
    if robot_config.kind == "ros2":
        from lnn_control.extras import require

        require("zenoh", "robot.kind ros2")  # the [ros2] extra: fail here, before anything is built
        require("rosbags", "robot.kind ros2")
        from lnn_control.runtime.ros2.robot import Ros2Robot

        assert robot_config.ros2 is not None  # RobotConfig requires it for kind ros2
        return Ros2Robot(robot_config.ros2, image_shape)
    try:
        robot_class = HARDWARE_ROBOTS.get(robot_config.kind)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{source}: robot.kind {robot_config.kind} needs {HARDWARE_ROBOTS.target(robot_config.kind)}, which this "
            f"installation lacks ({exc})"
        ) from exc
    assert robot_config.camera is not None  # RobotConfig requires it for hardware robots
    camera = make_camera(robot_config.camera, image_shape)
    return build_hardware_robot(robot_class, dict(robot_config.settings), camera, source)


def build_hardware_robot(robot_class: type, settings: dict[str, Any], camera: Any, source: str) -> Robot:
    """``robot_class.from_launch(settings, camera, source)`` if it has one; otherwise its constructor:
    a dataclass-typed ``config`` parameter is loaded strictly from ``settings`` (unknown keys named
    with ``source``), any other parameters are filled from ``settings`` by name, ``camera`` too."""
    import dataclasses
    import inspect
    import typing

    from lnn_control.config import load_dataclass

    if hasattr(robot_class, "from_launch"):
        return robot_class.from_launch(settings, camera, source)
    constructor = robot_class.__init__  # type: ignore[misc]  # the class's own constructor is what we fill
    parameters = inspect.signature(constructor).parameters
    try:
        config_hint = typing.get_type_hints(constructor).get("config")
    except (NameError, TypeError):  # unresolvable annotations: use what is there
        config_hint = getattr(parameters.get("config"), "annotation", None)
    kwargs: dict[str, Any] = {}
    if "camera" in parameters:
        kwargs["camera"] = camera
    if isinstance(config_hint, type) and dataclasses.is_dataclass(config_hint):
        kwargs["config"] = load_dataclass(config_hint, settings, source, "robot.settings")
    else:
        unknown = sorted(set(settings) - set(parameters))
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {unknown} in robot.settings; {robot_class.__name__} takes "
                f"{sorted(p for p in parameters if p not in ('self', 'camera'))}"
            )
        kwargs.update(settings)
    try:
        return robot_class(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{source}: robot.settings do not fit {robot_class.__name__}: {exc}") from exc


def check_robot_matches_policy(robot: Robot, policy: PolicyLike, strict: bool = True) -> None:
    """Image size, extras and actions must agree; raises ValueError saying what differs and what
    to do. ``strict`` (every hardware robot): extra units and the action names, units and frame
    too — the robot converts from exactly that frame. Simulators (``strict=False``) may be generic
    Gymnasium envs that name nothing: there the action size must agree, and a frame when both
    state one."""
    want, have = policy.observation_spec, robot.observation_spec
    problems = []
    if tuple(want.image_shape) != tuple(have.image_shape):
        problems.append(f"image shape: policy expects {tuple(want.image_shape)}, robot gives {tuple(have.image_shape)}")
    if tuple(want.extras) != tuple(have.extras):
        problems.append(
            f"extras: policy expects {tuple(want.extras)}, robot gives {tuple(have.extras)} "
            "(set the robot's extras in robot.settings)"
        )
    elif strict and tuple(want.extra_units) != tuple(have.extra_units):
        problems.append(f"extra units: policy expects {tuple(want.extra_units)}, robot gives {tuple(have.extra_units)}")
    act_want, act_have = policy.action_spec, robot.action_spec
    if act_want.size != act_have.size or strict and (
        tuple(act_want.names) != tuple(act_have.names) or tuple(act_want.units) != tuple(act_have.units)
    ):
        problems.append(
            f"actions: policy outputs {act_want.names} in {act_want.units}, robot takes {act_have.names} "
            f"in {act_have.units}"
        )
    frames = (getattr(act_want.frame, "value", None), getattr(act_have.frame, "value", None))
    if strict and frames[0] is None:
        problems.append(
            f"action frame: the policy states none, the robot converts from {frames[1]!r}; a bundle saved "
            'before frames were recorded was trained in the simulators\' FLU frame: add "frame": "flu" to '
            "policy.action_spec in its config.json (and re-export ONNX files)"
        )
    elif frames[0] != frames[1] and (strict or None not in frames):
        problems.append(f"action frame: policy acts in {frames[0]!r}, robot converts from {frames[1]!r}")
    if problems:
        raise ValueError("robot and policy do not fit together: " + "; ".join(problems))


class RobotConnectError(RobotError):
    """``connect()`` failed: the loop never ran and no policy command was sent."""


def preflight(
    robot: Robot, policy: PolicyLike | None, config: LaunchConfig, source: str, events: EventLog
) -> CommandLimiter:
    """Every check that needs no link: specs and frames (teleop: no policy to match), the robot's own
    settings against the rate, the command limits; returns the limiter. For hardware it runs before
    ``connect()``, so a configuration error never reaches the vehicle. Simulators state their specs
    only once connected, so for them it runs after."""
    simulated = config.robot.kind == "sim"
    try:
        if policy is not None:
            check_robot_matches_policy(robot, policy, strict=not simulated)
        robot.preflight(config.rate_hz)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}; nothing was sent to the robot") from exc
    if simulated:
        check_sim_runs_in_real_time(robot, config.rate_hz, source)
    limits = config.limits
    if limits.neutral is None and simulated:
        from lnn_control.runtime.sim.lockstep import SimulatedRobot

        held = robot.held_action if isinstance(robot, SimulatedRobot) else None  # known once connected
        if held is not None:
            limits = replace(limits, neutral=tuple(float(v) for v in held))
    try:
        return CommandLimiter(robot.action_spec, limits, events)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _policy_reference(policy: str) -> str:
    """The resolved policy path for the log (replay loads it), or the text as given."""
    try:
        return str(resolve_policy_path(policy))
    except ConfigError:
        return policy


def check_sim_runs_in_real_time(robot: Robot, rate_hz: float, source: str) -> None:
    """A LockstepSimRobot advances one env step per control period: both must last equally long."""
    sim_period = robot.control_period_s
    if sim_period is None:
        return
    if abs(sim_period - 1.0 / rate_hz) > 1e-9:
        raise ConfigError(
            f"{source}: the env simulates {sim_period:g} s per step but rate_hz {rate_hz:g} gives "
            f"{1.0 / rate_hz:g} s periods, so the simulation would not run in real time; set the env's "
            f"control rate to {rate_hz:g} Hz (e.g. robot.sim.env_kwargs.control_rate_hz) or change rate_hz"
        )


@dataclass
class RunResult:
    stats: LoopStats
    log_path: Path | None
    events: EventLog
    sim_resets: int | None = None  # sim robots only: episodes that ended and were reset (each a pause)
    sim_step_s: list[float] | None = None  # ClockedSimRobot only: seconds per simulator step, in its process


def default_log_path(config: LaunchConfig) -> Path | None:
    if config.log.dir is None:
        return None
    return Path(config.log.dir) / time.strftime("run-%Y%m%d-%H%M%S.mcap")


def run_launch(
    config: LaunchConfig,
    source: str,
    duration_s: float | None = None,
    log_path: Path | None = None,
    live_stream: TextIO | None = None,
    policy: PolicyLike | None = None,
    handle_signals: bool = True,
    keyboard_estop: bool = True,
    max_steps: int | None = None,
    takeover: HumanInput | None = None,
) -> RunResult:
    """Run ``config`` until its duration / ``duration_s`` / a stop signal; the stop command is
    always sent at the end. ``policy`` overrides the launch file's (already loaded). ``takeover``: a
    human input device (not yet opened, see :func:`lnn_control.runtime.teleop.make_human_input`)
    that takes over from the policy while its takeover control is held.

    Order: policy → robot object → :func:`preflight` (hardware: before any byte reaches it) → human
    input opened and bound → run log → ``connect()`` (a failure raises :class:`RobotConnectError`:
    nothing was commanded) → loop → stop command → disconnect."""
    loop_config_of(config, source)  # checked before anything reaches the robot
    if policy is None:
        policy = load_engine(config.policy, config.engine, config.loop.policy_threads)
    warm_up(policy, config.loop.warm_up_steps)
    height, width, _ = policy.observation_spec.image_shape
    mode = ControlMode.RUN if takeover is None else ControlMode.TAKEOVER
    return drive_robot(
        config, source, policy, takeover, mode, (height, width), duration_s, log_path, live_stream,
        handle_signals, keyboard_estop, max_steps,
        {"policy": _policy_reference(config.policy), "engine": config.engine.value},
    )


def drive_robot(
    config: LaunchConfig, source: str, policy: PolicyLike | None, human: HumanInput | None, mode: ControlMode,
    image_shape: tuple[int, int], duration_s: float | None, log_path: Path | None, live_stream: TextIO | None,
    handle_signals: bool, keyboard_estop: bool, max_steps: int | None, metadata: dict[str, Any],
    attach: Callable[[Robot], None] | None = None,
) -> RunResult:
    """The part :func:`run_launch` and teleop share: robot, safety, human input, log, loop (see
    :func:`run_launch` for the order). The log's action names are the policy's, else the robot's.
    ``attach`` is called with the robot before anything opens (e.g. to hook an expert pad to its frames)."""
    from lnn_control.runtime.logs.runlog import RunLogWriter

    loop_config = loop_config_of(config, source)
    robot = make_robot(config, image_shape, source)
    if attach is not None:
        attach(robot)
    events = EventLog()
    duration = duration_s if duration_s is not None else config.duration_s
    log_path = log_path if log_path is not None else default_log_path(config)
    limiter: CommandLimiter | None = None
    writer = None

    def prepare(limiter: CommandLimiter) -> None:  # once the specs are known: bind the input, open the log
        nonlocal writer
        if human is not None:
            try:
                human.bind(robot.action_spec, limiter.neutral)
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}; nothing was sent to the robot") from exc
        if log_path is not None:
            spec = (policy if policy is not None else robot).action_spec
            writer = RunLogWriter(log_path, spec.names, config.log.writer_config(), metadata={
                **metadata,
                "mode": "teleop" if mode == ControlMode.TELEOP else "run",
                "takeover": human.name if mode == ControlMode.TAKEOVER and human is not None else None,
                "launch_source": source,
                "rate_hz": config.rate_hz,
                "robot_kind": config.robot.kind,
                "action_units": list(spec.units),
            })

    try:
        if config.robot.kind != "sim":
            limiter = preflight(robot, policy, config, source, events)
        if human is not None:
            human.open()  # a missing device fails here, before the robot is connected
        if limiter is not None:
            prepare(limiter)
        try:
            robot.connect()
        except RobotError as exc:
            raise RobotConnectError(f"could not connect the robot: {exc}") from exc
        with robot:
            if limiter is None:
                limiter = preflight(robot, policy, config, source, events)
                prepare(limiter)
            try:
                stats = _run_loop(robot, policy, config, loop_config, limiter, events, writer, live_stream,
                                  handle_signals, keyboard_estop, duration, max_steps, human, mode)
            except RobotError as exc:
                exc.add_note(stop_outcome(events))
                raise
    finally:
        if human is not None:
            human.close()
        if writer is not None:
            writer.close()
    step_durations = robot.step_durations
    return RunResult(stats, log_path if writer is not None else None, events, robot.episodes_finished,
                     None if step_durations is None else list(step_durations))


def stop_outcome(events: EventLog) -> str:
    """Whether the last stop command went out, from the event log (for error messages)."""
    for event in reversed(events.events):
        if event.kind == SafetyEventKind.STOP_COMMAND:
            return event.detail  # "stop command sent (<why>)"
        if event.kind == SafetyEventKind.EXCEPTION and "robot.stop() failed" in event.detail:
            return f"the stop command could not be sent: {event.detail}"
    return "no stop command was sent"


def loop_config_of(config: LaunchConfig, source: str) -> LoopConfig:
    """The loop's settings from the launch file, validated (a ConfigError names the file)."""
    settings = config.loop
    try:
        return LoopConfig(
            rate_hz=config.rate_hz,
            busy_wait_s=settings.busy_wait_s,
            max_reconnect_attempts=settings.max_reconnect_attempts,
            reconnect_backoff_s=settings.reconnect_backoff_s,
            live_stats_interval_s=settings.live_stats_interval_s,
        )
    except ValueError as exc:
        raise ConfigError(f"{source}: loop settings: {exc}; nothing was sent to the robot") from exc


def _run_loop(
    robot: Robot, policy: PolicyLike | None, config: LaunchConfig, loop_config: LoopConfig, limiter: CommandLimiter,
    events: EventLog, writer: Any,
    live_stream: TextIO | None, handle_signals: bool, keyboard_estop: bool, duration: float | None,
    max_steps: int | None, human: HumanInput | None = None, mode: ControlMode = ControlMode.RUN,
) -> LoopStats:
    """Build the loop for a connected robot and run it, with signal and keyboard e-stops. With a
    human input the status line (:class:`~lnn_control.runtime.inputs.status.TeleopStatus`) replaces
    the loop's live timing line; a keyboard input handles the e-stop keys itself."""
    from lnn_control.runtime.inputs.status import StepSinks, TeleopStatus

    estop = EStop(events)
    status = None
    sink = writer
    if human is not None:
        names = (policy if policy is not None else robot).action_spec.names
        status = TeleopStatus(names, config.teleop.status_interval_s, writer, takeover=mode == ControlMode.TAKEOVER)
        sink = StepSinks(writer, status)
        live_stream = None
    loop = ControlLoop(
        robot,
        policy,
        loop_config,
        limiter,
        Watchdog(config.watchdog.max_frame_age_s, events),
        estop=estop,
        sink=sink,
        events=events,
        live_stream=live_stream,
        human=human,
        mode=mode,
    )
    if status is not None:
        status.stats = loop.stats
    keyboard = None
    restore_signals = None
    try:
        if handle_signals:
            restore_signals = install_stop_signals(loop)
            estop.install_signal()
        if keyboard_estop and (human is None or human.name != "keyboard"):
            keyboard = KeyboardEStop(estop)
            keyboard.start()
        return loop.run(duration_s=duration, max_steps=max_steps)
    finally:
        if keyboard is not None:
            keyboard.stop()
        if restore_signals is not None:
            restore_signals()
            estop.uninstall_signals()
