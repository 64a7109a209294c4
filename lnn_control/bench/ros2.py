"""``lnn-control bench ros2``: the camera -> policy -> TwistStamped loop over Zenoh vs the same loop in simulation.

Measures, on this machine, with the same policy and loop settings, each loop in its own
``lnn-control run`` process (as on a robot; this process only watches):

- **ros2**: our camera publisher in its own process (``lnn-control ros2 camera-pub --synthetic``,
  ``sensor_msgs/msg/Image`` 64x128 rgb8 + ``nav_msgs/msg/Odometry`` at ``rate_hz``) feeds
  :class:`~lnn_control.runtime.ros2.robot.Ros2Robot` over Zenoh on loopback (peer to peer, TCP on
  127.0.0.1) in ``lnn-control run``; the loop publishes ``geometry_msgs/msg/TwistStamped``. Sense->act latency =
  ``write()`` done - the frame's capture (its header stamp, on the monotonic clock).
- **sim**: the loop on the clocked simulator robot (lane keeping, PyBullet, ``rate_hz``).
- the difference of the two (target: p99 within 2 ms);
- transport on the way: frame stamp -> arrival, and command source timestamp -> arrival, seen by a
  probe node in this process (wall clock; same computer);
- the robot-side watchdog: the camera process is interrupted mid-run; time from the last frame's
  arrival to the zero ``TwistStamped``'s arrival at the probe (target: one camera period + 5 ms).

The policy is ``--policy`` or the shipped lane bundle (it reads the ``speed`` extra: the odometry).
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

SHIPPED_POLICY = "lane_keeping_ncp19"


@dataclass(frozen=True)
class Ros2BenchSettings:
    """duration_s: each timed loop run (s); rate_hz: camera and loop rate; policy: bundle (None:
    the shipped lane policy); image_type: camera message; watchdog_trials: camera stops measured;
    sim_backend: the simulator of the comparison run."""

    duration_s: float = 30.0
    rate_hz: float = 50.0
    policy: str | None = None
    image_type: Literal["Image", "CompressedImage"] = "Image"
    watchdog_trials: int = 3
    sim_backend: str = "pybullet"

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or not 0 < self.rate_hz <= 200:
            raise ValueError(f"duration_s must be > 0 and rate_hz in (0, 200], got {self.duration_s}, {self.rate_hz}")
        if self.watchdog_trials < 0:
            raise ValueError(f"watchdog_trials must be >= 0, got {self.watchdog_trials}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_camera_process(port: int, rate_hz: float, image_type: str = "Image", duration_s: float | None = None,
                         domain_id: int = 0) -> subprocess.Popen[bytes]:
    """``lnn-control ros2 camera-pub --synthetic`` (64x128 + odometry at 1.5 m/s) in a child process,
    listening on ``tcp/127.0.0.1:<port>``; SIGINT ends it after the current frame."""
    command = [sys.executable, "-m", "lnn_control", "ros2", "camera-pub", "--synthetic", "--rate", str(rate_hz),
               "--type", image_type, "--size", "64x128", "--odometry", "/odom", "--speed", "1.5",
               "--domain", str(domain_id), "--listen", f"tcp/127.0.0.1:{port}", "--connect", "none"]
    if duration_s is not None:
        command += ["--duration", str(duration_s)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGINT, then SIGKILL if it does not exit within ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Probe:
    """A node in this process that watches the camera and the commands (arrival times, transport delays).
    It connects to ``connect`` and listens on ``listen``: the robot connects to it directly, so its
    commands do not depend on the camera process being alive (peers route nothing for others)."""

    def __init__(self, connect: tuple[str, ...], listen: tuple[str, ...], image_type: str, domain_id: int = 0) -> None:
        from lnn_control.runtime.ros2.config import ZenohConfig
        from lnn_control.runtime.ros2.node import Ros2Node
        from lnn_control.runtime.ros2.zenoh_wire import DEFAULT_QOS, SENSOR_DATA_QOS

        self.node = Ros2Node(ZenohConfig(connect=connect, listen=listen), domain_id, "lnn_bench_probe")
        self.node.open()
        self.lock = threading.Lock()
        self.image_msgtype = f"sensor_msgs/msg/{image_type}"
        self.frames: list[tuple[float, float]] = []  # (arrival monotonic, stamp -> arrival s)
        self.commands: list[tuple[float, float, bool]] = []  # (arrival monotonic, sent -> arrival s, is zero)
        self.node.subscription("/camera/image_raw", self.image_msgtype, SENSOR_DATA_QOS, self._frame)
        self.node.subscription("/cmd_vel", "geometry_msgs/msg/TwistStamped", DEFAULT_QOS, self._command)

    def _frame(self, received: Any) -> None:
        from lnn_control.runtime.ros2.messages import from_cdr, header_ns

        stamp = header_ns(from_cdr(received.payload, self.image_msgtype))
        with self.lock:
            self.frames.append((received.arrival_monotonic, (received.arrival_wall_ns - stamp) / 1e9))

    def _command(self, received: Any) -> None:
        from lnn_control.runtime.ros2.messages import TWIST_STAMPED, from_cdr, twist_from_message

        twist = twist_from_message(from_cdr(received.payload, TWIST_STAMPED))
        sent = received.attachment.source_timestamp_ns if received.attachment else received.arrival_wall_ns
        zero = not any(twist.linear) and not any(twist.angular)
        with self.lock:
            self.commands.append((received.arrival_monotonic, (received.arrival_wall_ns - sent) / 1e9, zero))

    def reset(self) -> None:
        with self.lock:
            self.frames.clear()
            self.commands.clear()

    def close(self) -> None:
        self.node.close()


def _ms(values: list[float] | np.ndarray) -> dict[str, float]:
    arr = np.asarray(values, np.float64) * 1e3
    if arr.size == 0:
        return {"count": 0}
    return {"count": int(arr.size), "median": float(np.median(arr)), "p99": float(np.percentile(arr, 99)),
            "max": float(arr.max())}


def _loop_report(summary: dict[str, Any]) -> dict[str, Any]:
    """The parts of a ``--stats-json`` loop summary this bench reports, times in ms."""
    ms = lambda d: {k: (v * 1e3 if k != "count" else v) for k, v in d.items()}  # noqa: E731
    return {
        "steps": summary["steps"], "policy_steps": summary["policy_steps"], "hold_steps": summary["hold_steps"],
        "stop_steps": summary["stop_steps"], "deadline_misses": summary["deadline_misses"],
        "watchdog_trips": summary["watchdog_trips"],
        "latency_ms": ms(summary["latency_s"]), "compute_ms": ms(summary["compute_s"]),
        "abs_period_jitter_ms": ms(summary["abs_period_jitter_s"]),
    }


def ros2_launch(settings: Ros2BenchSettings, connect: tuple[str, ...], odometry_timeout_s: float = 0.5) -> dict[str, Any]:
    """The ``robot.kind: ros2`` launch file of the bench (as a dict): our synthetic camera + odometry."""
    return {
        "policy": settings.policy or SHIPPED_POLICY, "rate_hz": settings.rate_hz,
        "robot": {"kind": "ros2", "ros2": {
            "zenoh": {"connect": list(connect), "listen": []},
            "camera": {"topic": "/camera/image_raw", "type": settings.image_type, "rate_hz": settings.rate_hz,
                       "first_frame_timeout_s": 60.0},
            "odometry": {"topic": "/odom", "timeout_s": odometry_timeout_s},
            "extras": ["speed"],
        }},
        "watchdog": {"max_frame_age_s": 0.1}, "loop": {"live_stats_interval_s": 0.0}, "log": {"dir": None},
    }


def sim_launch(settings: Ros2BenchSettings) -> dict[str, Any]:
    """The same loop on the clocked simulator robot (lane keeping)."""
    env_kwargs = {"backend": settings.sim_backend, "control_rate_hz": settings.rate_hz, "road_length": 100.0}
    return {
        "policy": settings.policy or SHIPPED_POLICY, "rate_hz": settings.rate_hz,
        "robot": {"kind": "sim", "sim": {"env_id": "lnn_control/LaneKeeping-v0", "env_kwargs": env_kwargs}},
        "watchdog": {"max_frame_age_s": 0.1}, "loop": {"live_stats_interval_s": 0.0}, "log": {"dir": None},
    }


def start_run_process(launch: dict[str, Any], folder: Path, name: str, duration_s: float) -> tuple[subprocess.Popen[bytes], Path]:
    """``lnn-control run`` of ``launch`` (written to ``folder/name.yaml``) in a child process, no log;
    returns it and the path its ``--stats-json`` goes to."""
    import yaml

    launch_file = folder / f"{name}.yaml"
    launch_file.write_text(yaml.safe_dump(launch), encoding="utf-8")
    stats = folder / f"{name}_stats.json"
    command = [sys.executable, "-m", "lnn_control", "run", "--launch", str(launch_file), "--duration", str(duration_s),
               "--quiet", "--no-log", "--stats-json", str(stats)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), stats


def _finish_run(process: subprocess.Popen[bytes], stats: Path, timeout_s: float) -> dict[str, Any]:
    import json

    try:
        _, error = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        _, error = process.communicate()
    if process.returncode != 0 or not stats.is_file():
        raise RuntimeError(f"lnn-control run exited with {process.returncode}: {error.decode(errors='replace')[-2000:]}")
    return dict(json.loads(stats.read_text(encoding="utf-8")))


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"{what}: the child process exited ({process.returncode}): {error[-2000:]}")
        time.sleep(0.02)
    raise RuntimeError(f"{what}: nothing within {timeout_s} s")


def _watchdog_trial(settings: Ros2BenchSettings, folder: Path) -> dict[str, Any]:
    """Camera process interrupted while the loop drives: last frame arrival -> zero TwistStamped arrival."""
    cam_port, probe_port = free_port(), free_port()
    camera = start_camera_process(cam_port, settings.rate_hz, settings.image_type)
    probe = Probe((f"tcp/127.0.0.1:{cam_port}",), (f"tcp/127.0.0.1:{probe_port}",), settings.image_type)
    run = None
    try:
        _wait_for(lambda: len(probe.frames) >= 5, camera, "camera process")
        # the odometry stops with the camera (one process): a long timeout keeps the run going
        launch = ros2_launch(settings, (f"tcp/127.0.0.1:{cam_port}", f"tcp/127.0.0.1:{probe_port}"), 60.0)
        run, stats = start_run_process(launch, folder, "watchdog", 6.0)  # long after the camera stops
        _wait_for(lambda: sum(1 for _, _, zero in probe.commands if not zero) >= 25, run, "lnn-control run (ros2)")
        time.sleep(0.5)
        camera.send_signal(signal.SIGINT)
        _finish_run(run, stats, 120.0)
        with probe.lock:
            last_frame = max(t for t, _ in probe.frames)
            zeros = [t for t, _, zero in probe.commands if zero and t > last_frame]
            moving_after = sum(1 for t, _, zero in probe.commands if not zero and zeros and zeros[0] < t)
        return {"zero_after_last_frame_ms": (zeros[0] - last_frame) * 1e3 if zeros else None,
                "drive_commands_after_the_zero": moving_after}
    finally:
        probe.close()
        stop_process(camera)
        if run is not None:
            stop_process(run)


def run_ros2_bench(settings: Ros2BenchSettings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the benchmark (module docstring); returns the JSON-ready report (times in ms). Each loop
    runs in its own ``lnn-control run`` process, as on a robot; this process only watches."""
    import tempfile

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count()},
        "rate_hz": settings.rate_hz, "duration_s": settings.duration_s, "policy": settings.policy or SHIPPED_POLICY,
        "camera": f"sensor_msgs/msg/{settings.image_type} 64x128 + nav_msgs/msg/Odometry, own process",
    }
    timeout = settings.duration_s + 180.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        progress(f"ros2 loop: camera process -> Zenoh (loopback) -> lnn-control run (Ros2Robot) -> TwistStamped, "
                 f"{settings.duration_s:g} s")
        cam_port, probe_port = free_port(), free_port()
        camera = start_camera_process(cam_port, settings.rate_hz, settings.image_type)
        probe = Probe((f"tcp/127.0.0.1:{cam_port}",), (f"tcp/127.0.0.1:{probe_port}",), settings.image_type)
        try:
            _wait_for(lambda: len(probe.frames) >= 5, camera, "camera process")
            probe.reset()
            run, stats = start_run_process(
                ros2_launch(settings, (f"tcp/127.0.0.1:{cam_port}", f"tcp/127.0.0.1:{probe_port}")), folder, "ros2",
                settings.duration_s)
            try:
                report["ros2"] = _loop_report(_finish_run(run, stats, timeout))
            finally:
                stop_process(run)
            with probe.lock:
                commands = list(probe.commands)
                report["ros2"]["camera_transport_ms"] = _ms([d for _, d in probe.frames])
            report["ros2"]["command_transport_ms"] = _ms([d for _, d, _ in commands])
            report["ros2"]["commands_seen_by_probe"] = len(commands)
            last_drive = max((t for t, _, zero in commands if not zero), default=-np.inf)
            # zero twists between drive commands: the robot-side watchdog saw a frame come late
            report["ros2"]["zero_twists_mid_run"] = sum(1 for t, _, zero in commands if zero and t < last_drive)
        finally:
            probe.close()
            stop_process(camera)
        progress(f"sim loop: lnn-control run, clocked {settings.sim_backend} lane keeping, {settings.duration_s:g} s")
        run, stats = start_run_process(sim_launch(settings), folder, "sim", settings.duration_s)
        try:
            report["sim"] = _loop_report(_finish_run(run, stats, timeout))
        finally:
            stop_process(run)
        ros2_latency, sim_latency = report["ros2"]["latency_ms"], report["sim"]["latency_ms"]
        report["difference_ms"] = {"median": ros2_latency["median"] - sim_latency["median"],
                                   "p99": ros2_latency["p99"] - sim_latency["p99"], "target_p99": 2.0}
        trials = []
        for trial in range(settings.watchdog_trials):
            progress(f"watchdog trial {trial + 1}/{settings.watchdog_trials}: camera process interrupted mid-run")
            trials.append(_watchdog_trial(settings, folder))
    delays = [t["zero_after_last_frame_ms"] for t in trials if t["zero_after_last_frame_ms"] is not None]
    report["watchdog"] = {
        "trials": trials,
        "median_ms": float(np.median(delays)) if delays else None,
        "max_ms": float(max(delays)) if delays else None,
        "target_ms": 1e3 / settings.rate_hz + 5.0,
    }
    return report


def format_ros2_report(report: dict[str, Any]) -> str:
    lines = [f"camera -> policy -> TwistStamped at {report['rate_hz']:g} Hz, {report['duration_s']:g} s per loop, "
             f"policy {report['policy']}; camera: {report['camera']}"]
    for key, label in (("ros2", "ros2 (Zenoh, loopback)"), ("sim", "sim (clocked)")):
        r = report[key]
        lines.append(f"  {label:<24} sense->act p50 {r['latency_ms']['median']:.2f} ms  p99 {r['latency_ms']['p99']:.2f} ms"
                     f"  | misses {r['deadline_misses']} of {r['steps']} steps, holds {r['hold_steps']}, "
                     f"watchdog trips {r['watchdog_trips']}"
                     + (f", zero twists mid-run {r['zero_twists_mid_run']}" if "zero_twists_mid_run" in r else ""))
    diff = report["difference_ms"]
    lines.append(f"  difference               p50 {diff['median']:+.2f} ms  p99 {diff['p99']:+.2f} ms  "
                 f"(target p99 within {diff['target_p99']:g} ms)")
    ros2 = report["ros2"]
    for key, label in (("camera_transport_ms", "frame stamp -> arrival"), ("command_transport_ms", "command -> arrival")):
        t = ros2.get(key, {})
        if t.get("count"):
            lines.append(f"  {label:<24} p50 {t['median']:.3f} ms  p99 {t['p99']:.3f} ms  ({t['count']} messages)")
    w = report["watchdog"]
    if w["median_ms"] is not None:
        lines.append(f"  camera stops -> zero twist {w['median_ms']:.2f} ms median, {w['max_ms']:.2f} ms max after the "
                     f"last frame's arrival ({len(w['trials'])} trials; target <= {w['target_ms']:.0f} ms)")
    return "\n".join(lines)
