"""`lnn-control run` / `replay` end to end with a real policy bundle on a real env through LockstepSimRobot."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lnn_runtime_testkit import DOT_ENV_ID, CameraRobot, H, W

from lnn_control.cli import main
from lnn_control.config import ConfigError
from lnn_control.nn.baselines import BASELINE_CORES
from lnn_control.nn.perception import PerceptionConfig
from lnn_control.policies.bundle import load_policy, save_policy
from lnn_control.policies.policy import Policy, PolicyConfig
from lnn_control.runtime.hardware.cameras import VideoFileCamera
from lnn_control.runtime.launch import LaunchConfig, load_launch, shipped_launch_files
from lnn_control.runtime.logs.runlog import read_run_log
from lnn_control.spec import ActionSpec, ObservationSpec

# "module:id": the clocked simulator process imports the module that registers the test env
CHILD_DOT_ENV = f"lnn_runtime_testkit:{DOT_ENV_ID}"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    perception = PerceptionConfig(
        image_height=H, image_width=W, conv_channels=(4, 4), kernel_sizes=(3, 3), strides=(2, 2), features=4
    )
    core = BASELINE_CORES["ctrnn"](5, 6, 1)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=ObservationSpec((H, W, 3), ("speed",), ("m/s",)),
        action_spec=ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",)),
        control_rate_hz=50.0,
    )
    policy = Policy(config, core=core).eval()
    return save_policy(policy, tmp_path_factory.mktemp("bundles") / "dot", {"command": "test fixture", "seed": 0})


def write_launch(path: Path, bundle: Path, **overrides) -> Path:
    data = {
        "policy": str(bundle),
        "rate_hz": 50,
        "robot": {"kind": "sim", "sim": {"env_id": CHILD_DOT_ENV, "seed": 2}},
        "watchdog": {"max_frame_age_s": 0.2},
        "limits": {"max_rate_per_s": [20.0]},
        "log": {"dir": str(path.parent / "runs"), "image_format": "png"},
        "loop": {"live_stats_interval_s": 0.2},
    }
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_run_then_replay_reproduces_the_commands(tmp_path: Path, bundle: Path, capsys) -> None:
    launch = write_launch(tmp_path / "dot.yaml", bundle)
    log_path = tmp_path / "run.mcap"
    stats_path = tmp_path / "stats.json"
    rc = main(["run", "--launch", str(launch), "--duration", "0.6", "--log", str(log_path),
               "--stats-json", str(stats_path)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "sense->act latency" in out.out and "step " in out.err  # final summary + live lines
    stats = json.loads(stats_path.read_text())
    assert 20 <= stats["steps"] + stats["deadline_misses"] <= 31 and stats["stop_reason"] == "duration 0.6 s reached"
    assert stats["latency_s"]["p99"] > 0
    log = read_run_log(log_path)
    assert log.complete and log.action_names == ("steering",)
    assert log.metadata["policy"] == str(bundle) and log.metadata["engine"] == "torch"
    assert len(log.topic("/policy/neurons")) == stats["policy_steps"]
    assert len(log.topic("/camera/image")) == stats["steps"]
    assert log.topic("/safety/events")[-1].payload["kind"] == "stop_command"

    plot, report = tmp_path / "replay.png", tmp_path / "replay.json"
    assert main(["replay", str(log_path), "--plot", str(plot), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["steps"] == stats["policy_steps"] and result["every_step_had_a_frame"]
    assert result["per_action"]["steering"]["max_abs_diff"] <= 1e-5  # PNG frames + logged dt: exact
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a different policy on the same frames gives different commands, and replay says by how much
    torch.manual_seed(5)
    policy = load_policy(bundle)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    changed = save_policy(policy, tmp_path / "changed", {"command": "perturbed"})
    assert main(["replay", str(log_path), "--policy", str(changed), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["per_action"]["steering"]["max_abs_diff"] > 1e-3


@pytest.mark.slow
def test_run_with_the_onnx_engine(tmp_path: Path, bundle: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    from lnn_control.export.onnx import export_onnx
    from lnn_control.policies.bundle import load_policy

    onnx_file = export_onnx(load_policy(bundle), tmp_path / "dot.onnx")
    launch = write_launch(tmp_path / "dot.yaml", onnx_file, engine="onnx")
    log_path = tmp_path / "onnx.mcap"
    assert main(["run", "--launch", str(launch), "--duration", "0.3", "--log", str(log_path), "--quiet"]) == 0
    log = read_run_log(log_path)
    assert log.metadata["engine"] == "onnx" and len(log.topic("/commands/sent")) >= 5
    # the torch engine on the same frames agrees with what the ONNX engine commanded
    report = tmp_path / "r.json"
    assert main(["replay", str(log_path), "--policy", str(bundle), "--engine", "torch", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["per_action"]["steering"]["max_abs_diff"] < 1e-4


def test_launch_validation_names_key_and_file(tmp_path: Path, bundle: Path, capsys) -> None:
    bad = write_launch(tmp_path / "bad.yaml", bundle, rate_hz=50, watchdog={"max_age": 0.1})
    assert main(["run", "--launch", str(bad), "--no-log"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "'max_age'" in err and "max_frame_age_s" in err
    bad = write_launch(tmp_path / "bad2.yaml", bundle, engine="tensorrt")
    with pytest.raises(ConfigError, match="bad2.yaml.*engine.*allowed values: \\['torch', 'onnx'\\]"):
        load_launch(bad)
    bad = write_launch(tmp_path / "pacing.yaml", bundle, robot={"kind": "sim", "sim": {"env_id": CHILD_DOT_ENV, "pacing": "fast"}})
    with pytest.raises(ConfigError, match="pacing.yaml.*robot.sim.pacing.*allowed values: \\['clocked', 'lockstep'\\]"):
        load_launch(bad)
    bad = write_launch(tmp_path / "bad3.yaml", bundle, robot={"kind": "serial_car"})
    with pytest.raises(ConfigError, match="robot.camera"):
        load_launch(bad)
    with pytest.raises(ConfigError, match="shipped:"):
        load_launch("no_such_launch")
    missing = write_launch(tmp_path / "missing.yaml", tmp_path / "nowhere")
    assert main(["run", "--launch", str(missing), "--no-log"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "none.mcap")]) == 2


def test_policy_and_robot_mismatch_is_reported(tmp_path: Path, bundle: Path, capsys) -> None:
    launch = write_launch(
        tmp_path / "mismatch.yaml", bundle,
        robot={"kind": "sim", "sim": {"env_id": CHILD_DOT_ENV, "env_kwargs": {}, "seed": 0}},
        limits={"max_rate_per_s": [1.0, 2.0]},
    )
    assert main(["run", "--launch", str(launch), "--no-log", "--duration", "0.1", "--quiet"]) == 2
    assert "limits.max_rate_per_s has 2 entries" in capsys.readouterr().err


def test_shipped_launch_files_validate() -> None:
    shipped = shipped_launch_files()
    for name in shipped:
        config = load_launch(name)
        assert isinstance(config, LaunchConfig)
        assert 20 <= config.rate_hz <= 50
    assert np.all([name.replace("_", "").isalnum() for name in shipped])


@pytest.mark.slow
def test_runtime_bench_reports_loop_and_engine_timings(tmp_path: Path, bundle: Path, capsys) -> None:
    from lnn_control.bench.runtime import format_report

    out = tmp_path / "bench.json"
    assert main([
        "bench", "runtime", "--env-id", CHILD_DOT_ENV, "--env-kwargs", "{}", "--policy", str(bundle),
        "--duration", "0.5", "--compare-duration", "0.2", "--engine-steps", "5", "--loop-engine", "onnx",
        "--json", str(out),
    ]) == 0
    assert "sim-in-the-loop" in capsys.readouterr().out
    report = json.loads(out.read_text())
    loop = report["loop"]
    assert 20 <= loop["steps"] + loop["deadline_misses"] <= 27 and loop["mcap_log"] is True  # slots in 0.5 s
    assert 0 < loop["latency_ms"]["median"] <= loop["latency_ms"]["p99"] <= loop["latency_ms"]["max"]
    assert loop["abs_period_jitter_ms"]["count"] >= loop["steps"] - 1 - loop["deadline_misses"]
    assert report["loop_no_log_sleep_only"]["steps"] >= 8
    assert report["engines"]["torch"]["steps"] == 5 and report["engines"]["torch"]["median_ms"] > 0
    assert report["loop_engine"] == "onnx" and report["engines"]["onnx"]["median_ms"] > 0
    assert report["engines"]["onnx_speedup_vs_torch"] > 0
    assert report["policy"]["source"] == str(bundle)
    dog = report["watchdog"]
    assert dog["tripped"] == dog["trials"] == 5
    # the stop goes out at the first period boundary after the frame went stale (plus that step's wake-up)
    assert 0 <= dog["stop_after_stale_ms_median"] <= dog["stop_after_stale_ms_max"] < dog["period_ms"] + 50
    assert "sim-in-the-loop" in format_report(report)


def untrained_bundle(directory: Path, observation_spec: ObservationSpec, action_spec: ActionSpec, rate: float) -> Path:
    """An untrained CNN + 19-unit CT-RNN policy with the given specs."""
    torch.manual_seed(1)
    height, width, _ = observation_spec.image_shape
    perception = PerceptionConfig(image_height=height, image_width=width)
    core = BASELINE_CORES["ctrnn"](perception.features + len(observation_spec.extras), 19, action_spec.size)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=observation_spec,
        action_spec=action_spec,
        control_rate_hz=rate,
    )
    return save_policy(Policy(config, core=core).eval(), directory, {"command": "untrained test policy"})


@pytest.mark.slow
def test_shipped_sim_launch_files_run_in_real_time(tmp_path: Path, capsys) -> None:
    """Each shipped sim launch file drives its env for ~2 s; with its shipped policy when that is
    present, else with an untrained policy of the env's specs (the loop, env and log are real)."""
    from lnn_control.runtime.launch import resolve_policy_path

    for name in shipped_launch_files():
        config = load_launch(name)
        if config.robot.kind != "sim":
            continue
        args = ["run", "--launch", name, "--duration", "2", "--log", str(tmp_path / f"{name}.mcap"),
                "--stats-json", str(tmp_path / f"{name}.json"), "--quiet"]
        try:
            resolve_policy_path(config.policy)
        except ConfigError:
            from lnn_control.runtime.sim.lockstep import LockstepSimRobot

            with LockstepSimRobot(config.robot.sim.env_id, config.robot.sim.env_kwargs) as probe:
                specs = probe.observation_spec, probe.action_spec
            args += ["--policy", str(untrained_bundle(tmp_path / f"{name}_policy", *specs, config.rate_hz))]
        assert main(args) == 0, capsys.readouterr().err
        stats = json.loads((tmp_path / f"{name}.json").read_text())
        expected = 2 * config.rate_hz
        assert expected - 3 <= stats["steps"] + stats["deadline_misses"] <= expected + 1
        assert stats["policy_steps"] >= 0.8 * stats["steps"]  # overruns on a loaded machine skip slots
        log = read_run_log(tmp_path / f"{name}.mcap")
        # a step whose frame is late (the simulator runs in its own process) holds the last command
        applied = len(log.topic("/commands/applied"))
        assert stats["policy_steps"] <= applied <= stats["policy_steps"] + stats["hold_steps"]
        frames = log.topic("/camera/image")
        assert frames[0].payload["format"] == config.log.image_format


@dataclass(frozen=True)
class LinkSettings:
    port: str
    baud: int = 115200


class ConfiguredRobot(CameraRobot):
    """A robot whose constructor takes a typed config dataclass, as hardware robots do."""

    def __init__(self, config: LinkSettings, camera: VideoFileCamera) -> None:
        super().__init__(camera)
        self.config = config


def test_hardware_robot_settings_reach_the_robot_strictly(tmp_path: Path) -> None:
    from lnn_control.runtime.session import build_hardware_robot

    camera = VideoFileCamera(tmp_path / "unused.avi")
    robot = build_hardware_robot(CameraRobot, {"failed_reconnects": 2}, camera, "car.yaml")
    assert isinstance(robot, CameraRobot) and robot.camera is camera and robot.failed_reconnects == 2
    with pytest.raises(ConfigError, match="car.yaml: unknown key\\(s\\) \\['baud'\\]"):
        build_hardware_robot(CameraRobot, {"baud": 9600}, camera, "car.yaml")
    robot = build_hardware_robot(ConfiguredRobot, {"port": "/dev/ttyACM0"}, camera, "car.yaml")
    assert robot.config == LinkSettings("/dev/ttyACM0", 115200)
    with pytest.raises(ConfigError, match="car.yaml: unknown key\\(s\\) \\['parity'\\] at robot.settings"):
        build_hardware_robot(ConfiguredRobot, {"port": "x", "parity": "N"}, camera, "car.yaml")


TORCHLESS = """
import sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
sys.path.insert(0, sys.argv[1])
import lnn_runtime_testkit  # registers the test env
from lnn_control.cli import main
code = main(["run", "--launch", sys.argv[2], "--duration", "0.4", "--log", sys.argv[3], "--quiet"])
print("torch loaded:", sys.modules.get("torch") is not None)
sys.exit(code)
"""


@pytest.mark.slow
def test_onnx_engine_runs_without_torch(tmp_path: Path, bundle: Path) -> None:
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    from lnn_control.export.onnx import export_onnx

    onnx_file = export_onnx(load_policy(bundle), tmp_path / "dot.onnx")
    launch = write_launch(tmp_path / "dot.yaml", onnx_file, engine="onnx")
    script = tmp_path / "torchless.py"
    script.write_text(TORCHLESS)
    log_path = tmp_path / "torchless.mcap"
    proc = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent), str(launch), str(log_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "torch loaded: False" in proc.stdout
    assert len(read_run_log(log_path).topic("/commands/sent")) >= 10
