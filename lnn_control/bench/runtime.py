"""``lnn-control bench runtime``: loop timing of a sim-in-the-loop run and per-step engine latency.

Measures, on this machine:

- the control loop driving ``LockstepSimRobot(env_id)`` with a policy for ``duration_s`` at ``rate_hz``:
  sense->act latency, |period jitter|, wake lateness, deadline misses — once with the default
  busy-wait before each slot and once sleeping only, to show what the spin buys;
- how long after a stalled camera's last frame went stale the stop command was written
  (a real video file through ``VideoFileCamera`` that ends);
- ``policy.act`` latency at batch 1 for the torch engine and, when onnxruntime is installed, the
  exported ONNX engine (same weights), and the ratio.

The policy is ``--policy`` (a bundle), else the shipped bundle of the env's task, else an untrained
perception CNN + NCP19 LTC core (or a 19-unit CT-RNN where the liquid cores are not installed);
the report states which. Timing does not depend on the weights.
"""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.runtime.core.loop import LoopStats
from lnn_control.runtime.core.robot import Observation, Robot
from lnn_control.runtime.hardware.cameras import Camera
from lnn_control.runtime.launch import (
    LaunchConfig,
    LoopSettings,
    RobotConfig,
    RunLogSettings,
    SimConfig,
    WatchdogConfig,
)
from lnn_control.spec import ActionSpec, ObservationSpec


def _shipped_bundle(env_id: str) -> Path | None:
    """The shipped bundle of the task whose env is ``env_id`` (task table), if it is installed."""
    from importlib import resources

    from lnn_control.tasks import TASKS

    root = resources.files("lnn_control.policies") / "pretrained"
    for task in TASKS.values():
        entry = root / task.shipped_policy
        if task.env_id == env_id and task.shipped_policy and (entry / "config.json").is_file():
            return Path(str(entry))
    return None


def _fallback_policy(
    image_shape: tuple[int, int, int], extras: tuple[str, ...], action_size: int
) -> tuple[Any, str]:
    """An untrained CNN + NCP19 (LTC) policy for the env's specs when the presets and LTC core are
    installed, else CNN + CT-RNN(19); returns (policy, description)."""
    from lnn_control.spec import ActionSpec, ObservationSpec

    height, width, channels = image_shape
    obs_spec = ObservationSpec((height, width, channels), extras, tuple("" for _ in extras))
    act_spec = ActionSpec(
        tuple(f"action_{i}" for i in range(action_size)),
        tuple(-1.0 for _ in range(action_size)),
        tuple(1.0 for _ in range(action_size)),
        tuple("" for _ in range(action_size)),
    )
    preset = {1: "ncp19_car", 4: "ncp19_drone"}.get(action_size)
    if preset is not None:
        try:
            from lnn_control.policies.presets import build_policy

            policy = build_policy(preset, core="ltc", observation_spec=obs_spec, action_spec=act_spec,
                                  control_rate_hz=50.0)
            return policy.eval(), f"untrained perception CNN + {preset} (LTC)"
        except (ImportError, ValueError):
            pass
    return _ctrnn_policy(image_shape, extras, action_size), "untrained perception CNN + CT-RNN(19 units)"


def _ctrnn_policy(image_shape: tuple[int, int, int], extras: tuple[str, ...], action_size: int) -> Any:
    import torch

    from lnn_control.nn.baselines import BASELINE_CORES
    from lnn_control.nn.perception import PerceptionConfig
    from lnn_control.policies.policy import Policy, PolicyConfig
    from lnn_control.spec import ActionSpec, ObservationSpec

    torch.manual_seed(0)
    height, width, channels = image_shape
    perception = PerceptionConfig(image_height=height, image_width=width)
    core = BASELINE_CORES["ctrnn"](perception.features + len(extras), 19, action_size)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=ObservationSpec((height, width, channels), extras, tuple("" for _ in extras)),
        action_spec=ActionSpec(
            tuple(f"action_{i}" for i in range(action_size)),
            tuple(-1.0 for _ in range(action_size)),
            tuple(1.0 for _ in range(action_size)),
            tuple("" for _ in range(action_size)),
        ),
        control_rate_hz=50.0,
    )
    return Policy(config, core=core).eval()


def _engine_latency(policy: Any, steps: int) -> dict[str, float]:
    spec = policy.observation_spec
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, tuple(spec.image_shape), dtype=np.uint8) for _ in range(8)]
    extras = {name: np.ones(1, np.float32) for name in spec.extras}
    policy.reset()
    for k in range(10):
        policy.act({"image": frames[k % 8], **extras}, 0.02)
    times = []
    for k in range(steps):
        start = time.perf_counter()
        policy.act({"image": frames[k % 8], **extras}, 0.02)
        times.append(time.perf_counter() - start)
    arr = np.asarray(times) * 1e3
    return {"steps": steps, "median_ms": float(np.median(arr)), "p99_ms": float(np.percentile(arr, 99)),
            "mean_ms": float(arr.mean())}


def _loop_report(stats: LoopStats) -> dict[str, Any]:
    s = stats.summary()
    ms = lambda d: {k: (v * 1e3 if k != "count" else v) for k, v in d.items()}  # noqa: E731
    return {
        "steps": s["steps"],
        "deadline_misses": s["deadline_misses"],
        "watchdog_trips": s["watchdog_trips"],
        "latency_ms": ms(s["latency_s"]),
        "abs_period_jitter_ms": ms(s["abs_period_jitter_s"]),
        "lateness_ms": ms(s["lateness_s"]),
        "compute_ms": ms(s["compute_s"]),
        "stale_frame_steps": s["hold_steps"],
    }


class _RecordingCameraRobot(Robot):
    """Bench harness: a real camera as sensor, an actuator that records commands and stops."""

    def __init__(self, camera: Camera, image_shape: tuple[int, int, int], action_spec: ActionSpec) -> None:
        self.camera = camera
        height, width, channels = image_shape
        self.observation_spec = ObservationSpec((height, width, channels))
        self.action_spec = action_spec
        self._connected = False

    def connect(self) -> None:
        self.camera.open()
        self._connected = True

    def read(self) -> Observation:
        frame = self.camera.read()
        return Observation(frame.image, frame.timestamp, {})

    def write(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, np.float32)

    def stop(self) -> None:
        pass

    def disconnect(self) -> None:
        self.camera.close()
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected


class _StepTimes:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def write_step(self, record: Any) -> None:
        self.records.append(record)

    def write_event(self, event: Any) -> None:
        pass


def watchdog_stop_delay(rate_hz: float, max_frame_age_s: float, trials: int) -> dict[str, Any]:
    """Play a 0.3 s video file through a real-time VideoFileCamera until it stalls; per trial,
    the time from the frame going stale (last capture + max age) to the stop command's write."""
    import cv2

    from lnn_control.runtime.core.loop import ControlLoop, LoopConfig, StepState
    from lnn_control.runtime.core.safety import CommandLimiter, EventLog, Watchdog
    from lnn_control.runtime.hardware.cameras import VideoFileCamera

    class _Steady:
        observation_spec = ObservationSpec((32, 48, 3))
        action_spec = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",))

        def reset(self) -> None: ...

        def act(self, observation: dict[str, np.ndarray], dt: float) -> np.ndarray:
            return np.zeros(1, np.float32)

    delays = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "stall.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (48, 32))
        for k in range(9):
            writer.write(np.full((32, 48, 3), 20 * k, np.uint8))
        writer.release()
        for _ in range(trials):
            policy = _Steady()
            robot = _RecordingCameraRobot(VideoFileCamera(clip), (32, 48, 3), policy.action_spec)
            events = EventLog()
            sink = _StepTimes()
            with robot:
                loop = ControlLoop(robot, policy, LoopConfig(rate_hz=rate_hz, live_stats_interval_s=0.0),
                                   CommandLimiter(policy.action_spec, None, events),
                                   Watchdog(max_frame_age_s, events), sink=sink, events=events)
                loop.run(duration_s=0.3 + max_frame_age_s + 3.0 / rate_hz)
            last_capture = max(r.frame_timestamp for r in sink.records)
            stops = [r for r in sink.records if r.state == StepState.WATCHDOG]
            if stops:
                delays.append(stops[0].write_time - (last_capture + max_frame_age_s))
    arr = np.asarray(delays) * 1e3
    return {
        "trials": trials,
        "tripped": len(delays),
        "period_ms": 1e3 / rate_hz,
        "max_frame_age_ms": max_frame_age_s * 1e3,
        "stop_after_stale_ms_median": float(np.median(arr)) if arr.size else None,
        "stop_after_stale_ms_max": float(arr.max()) if arr.size else None,
        "target_ms": 1e3 / rate_hz + 5.0,
    }


def run_runtime_bench(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    policy_path: str | None = None,
    duration_s: float = 60.0,
    rate_hz: float = 50.0,
    no_spin_duration_s: float | None = None,
    engine_steps: int = 300,
    log: bool = True,
    watchdog_trials: int = 5,
    loop_engine: str = "torch",
    sim_pacing: Literal["clocked", "lockstep"] = "clocked",
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready report (times in milliseconds).

    sim_pacing: ``clocked`` (the simulator in its own process) or ``lockstep`` (inside ``read()``);
    see :class:`~lnn_control.runtime.launch.SimConfig`."""
    import torch

    from lnn_control.runtime.session import load_engine, run_launch
    from lnn_control.runtime.sim.lockstep import LockstepSimRobot

    torch.set_num_threads(1)
    path = Path(policy_path) if policy_path else _shipped_bundle(env_id)
    if path is not None:
        from lnn_control.runtime.launch import Engine

        policy = load_engine(str(path), Engine.TORCH, threads=1)
        policy_desc = {"source": str(path), "core": dict(policy.config.core).get("type")}
    else:
        with LockstepSimRobot(env_id, env_kwargs) as probe:
            obs_spec, act_spec = probe.observation_spec, probe.action_spec
        policy, description = _fallback_policy(obs_spec.image_shape, tuple(obs_spec.extras), act_spec.size)
        policy_desc = {"source": description, "core": dict(policy.config.core).get("type")}
    config = LaunchConfig(
        policy=str(path) if path else "<in-memory>",
        rate_hz=rate_hz,
        robot=RobotConfig(kind="sim", sim=SimConfig(env_id=env_id, env_kwargs=dict(env_kwargs or {}), pacing=sim_pacing)),
        watchdog=WatchdogConfig(max_frame_age_s=0.1),
        loop=LoopSettings(live_stats_interval_s=0.0),
        log=RunLogSettings(dir=None),
    )
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpu_count": __import__("os").cpu_count()},
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "rate_hz": rate_hz,
        "duration_s": duration_s,
        "sim_pacing": sim_pacing,
        "policy": policy_desc,
    }
    with tempfile.TemporaryDirectory() as tmp:
        engines: dict[str, Any] = {"torch": _engine_latency(policy, engine_steps)}
        onnx_policy = None
        try:
            import onnxruntime  # noqa: F401

            from lnn_control.export.onnx import export_onnx
            from lnn_control.export.onnx_policy import OnnxPolicy
        except ImportError as exc:
            engines["onnx"] = {"skipped": f"onnx engine unavailable: {exc}"}
        else:
            onnx_policy = OnnxPolicy(export_onnx(policy, Path(tmp) / "policy.onnx"), threads=1)
            engines["onnx"] = _engine_latency(onnx_policy, engine_steps)
            engines["onnx_speedup_vs_torch"] = engines["torch"]["median_ms"] / engines["onnx"]["median_ms"]
        if loop_engine == "onnx":
            if onnx_policy is None:
                raise ValueError("loop_engine onnx needs onnxruntime and the ONNX exporter; install onnxruntime")
            loop_policy = onnx_policy
        elif loop_engine == "torch":
            loop_policy = policy
        else:
            raise ValueError(f"loop_engine must be 'torch' or 'onnx', got {loop_engine!r}")
        report["loop_engine"] = loop_engine
        log_path = Path(tmp) / "bench.mcap" if log else None
        result = run_launch(config, "bench", duration_s=duration_s, log_path=log_path, policy=loop_policy,
                            handle_signals=False, keyboard_estop=False)
        report["loop"] = _loop_report(result.stats)
        report["loop"]["mcap_log"] = bool(log)
        # a simulation reset (new road / forest) blocks the loop for tens of ms: count them
        report["loop"]["sim_resets"] = result.sim_resets
        if result.sim_step_s:
            steps_ms = np.asarray(result.sim_step_s) * 1e3
            report["loop"]["sim_step_ms"] = {"median": float(np.median(steps_ms)),
                                             "p99": float(np.percentile(steps_ms, 99)), "max": float(steps_ms.max())}
        if no_spin_duration_s:
            # same length, no log, with and without the busy-wait: what the spin buys
            for key, busy_wait in (("loop_no_log_busy_wait", config.loop.busy_wait_s), ("loop_no_log_sleep_only", 0.0)):
                variant = replace(config, loop=replace(config.loop, busy_wait_s=busy_wait))
                result = run_launch(variant, "bench", duration_s=no_spin_duration_s, log_path=None,
                                    policy=loop_policy, handle_signals=False, keyboard_estop=False)
                report[key] = _loop_report(result.stats)
    report["engines"] = engines
    report["watchdog"] = watchdog_stop_delay(rate_hz, 0.05, watchdog_trials)
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"sim-in-the-loop {report['env_id']} at {report['rate_hz']:g} Hz for {report['duration_s']:g} s, "
             f"policy: {report['policy']['source']}, loop engine: {report['loop_engine']}, "
             f"sim pacing: {report.get('sim_pacing', 'lockstep')}"]
    for key, label in (
        ("loop", "default + MCAP log"),
        ("loop_no_log_busy_wait", "no log, busy-wait"),
        ("loop_no_log_sleep_only", "no log, sleep only"),
    ):
        if key in report:
            r = report[key]
            lines.append(
                f"  {label:<19} latency p50 {r['latency_ms']['median']:.2f} ms p99 {r['latency_ms']['p99']:.2f} ms | "
                f"|jitter| p50 {r['abs_period_jitter_ms']['median']:.3f} ms p99 {r['abs_period_jitter_ms']['p99']:.3f} ms"
                f" | misses {r['deadline_misses']} of {r['steps']} steps"
                + (f" | sim resets {r['sim_resets']}" if r.get("sim_resets") else "")
                + (f" | stale frames {r['stale_frame_steps']}" if r.get("stale_frame_steps") else "")
            )
            if "sim_step_ms" in r:
                lines.append(f"  {'':<19} simulator step (own process) median {r['sim_step_ms']['median']:.2f} ms "
                             f"p99 {r['sim_step_ms']['p99']:.2f} ms max {r['sim_step_ms']['max']:.2f} ms")
    for name in ("torch", "onnx"):
        e = report["engines"].get(name, {})
        if "median_ms" in e:
            lines.append(f"  engine {name:<6} act() median {e['median_ms']:.3f} ms  p99 {e['p99_ms']:.3f} ms")
        elif e:
            lines.append(f"  engine {name:<6} {e.get('skipped')}")
    if "onnx_speedup_vs_torch" in report["engines"]:
        lines.append(f"  onnx speed-up vs torch: {report['engines']['onnx_speedup_vs_torch']:.2f}x")
    w = report.get("watchdog")
    if w and w["tripped"]:
        lines.append(
            f"  watchdog: stalled camera -> stop {w['stop_after_stale_ms_median']:.2f} ms median, "
            f"{w['stop_after_stale_ms_max']:.2f} ms max after the frame went stale "
            f"({w['tripped']}/{w['trials']} trials; target <= {w['target_ms']:.0f} ms)"
        )
    return "\n".join(lines)
