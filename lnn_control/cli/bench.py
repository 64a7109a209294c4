"""``lnn-control bench nn|env|runtime|explain|camera|study|bcstep``: speed of the networks, the envs, the
real-time loop, ``explain``, the real camera's view correction, a study's parallel cells and the phases of
a training step (table + JSON)."""

from __future__ import annotations

import argparse
import sys

from lnn_control.cli import CommandError, print_report
from lnn_control.cli.ros2 import add_ros2_bench_parser


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks (speed), with a table and optional JSON")
    targets = parser.add_subparsers(dest="bench_target", metavar="TARGET", required=True)
    nn_parser = targets.add_parser(
        "nn", help="LTC / CfC single-step latency, training throughput and policy step, ours vs ncps"
    )
    nn_parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON (atomic)")
    nn_parser.add_argument("--repeats", type=int, default=2000,
                           help="timed calls per latency figure (default 2000; training uses repeats//400, >= 3)")
    nn_parser.add_argument("--quick", action="store_true",
                           help="tiny sizes and repeats: checks the bench runs, numbers are not meaningful")
    nn_parser.set_defaults(func=run_nn)
    env_parser = targets.add_parser("env", help="env steps/s with the camera on, per physics backend")
    env_parser.add_argument("--task", default="lane-keeping", help="task name (default: lane-keeping)")
    env_parser.add_argument("--backends", default="pybullet,mujoco", help="comma-separated backends")
    env_parser.add_argument("--steps", type=int, default=600, help="timed steps per backend (default 600)")
    env_parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON (atomic)")
    env_parser.set_defaults(func=run_env)
    add_runtime_bench_parser(targets)
    add_ros2_bench_parser(targets)
    explain_parser = targets.add_parser("explain", help="wall time of 'lnn-control explain' on a 30 s lane episode")
    explain_parser.add_argument("--duration", type=float, default=30.0, metavar="S", help="seconds of driving (default 30)")
    explain_parser.add_argument("--no-video", action="store_true", help="leave the video out")
    explain_parser.add_argument("--json", metavar="FILE", help="also write the report as JSON (atomic)")
    explain_parser.set_defaults(func=run_explain_bench_command)
    camera_parser = targets.add_parser(
        "camera", help="per-frame cost of undistortion + FOV match (remap + resize) vs a plain resize"
    )
    camera_parser.add_argument("--input-size", default="640x480", metavar="WxH", help="camera frame (default 640x480)")
    camera_parser.add_argument("--output-size", default="64x128", metavar="HxW", help="policy image (default 64x128)")
    camera_parser.add_argument("--vertical-fov-deg", type=float, default=50.0, help="target view (default 50, lane)")
    camera_parser.add_argument("--frames", type=int, default=500, help="timed frames per figure (default 500)")
    camera_parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON (atomic)")
    camera_parser.set_defaults(func=run_camera_bench_command)
    study_parser = targets.add_parser(
        "study", help="cells per minute of a study's train + evaluation cells per --workers count (data cell untimed)"
    )
    study_parser.add_argument("--launch", default="study_bench", metavar="STUDY.yaml",
                              help="study file or shipped name (default: study_bench)")
    study_parser.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the "
                              "baseline of the ratios (default 1,2)")
    study_parser.add_argument("--repeats", type=int, default=3, help="timed runs per worker count (default 3)")
    study_parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON (atomic)")
    study_parser.set_defaults(func=run_study_bench_command)
    bcstep_parser = targets.add_parser(
        "bcstep", help="where one behaviour-cloning step of a task's launch file spends its time (CNN, core, augmentation)"
    )
    bcstep_parser.add_argument("--task", default="drone-forest", help="task whose launch file and shipped policy (default drone-forest)")
    bcstep_parser.add_argument("--steps", type=int, default=20, help="timed steps per figure (default 20)")
    bcstep_parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON (atomic)")
    bcstep_parser.set_defaults(func=run_bcstep_bench_command)


def _pair(text: str, option: str, order: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise CommandError(f"{option} must be {order} in pixels, e.g. 640x480, got {text!r}")
    return int(parts[0]), int(parts[1])


def run_camera_bench_command(args: argparse.Namespace) -> int:
    from lnn_control.bench.camera import CameraBenchSettings, format_camera_report, run_camera_bench

    settings = CameraBenchSettings(
        input_size=_pair(args.input_size, "--input-size", "WxH"),
        output_shape=_pair(args.output_size, "--output-size", "HxW"),
        vertical_fov_deg=args.vertical_fov_deg,
        frames=args.frames,
    )
    report = run_camera_bench(settings)
    print_report(format_camera_report(report), report, args.json)
    return 0


def run_study_bench_command(args: argparse.Namespace) -> int:
    from lnn_control.bench.study import StudyBenchSettings, format_study_bench, run_study_bench

    try:
        workers = tuple(int(w) for w in args.workers.split(","))
    except ValueError:
        raise CommandError(f"--workers must be comma-separated worker counts like 1,2, got {args.workers!r}") from None
    from lnn_control.study.scheduler import StudyIncomplete

    settings = StudyBenchSettings(launch=args.launch, workers=workers, repeats=args.repeats)
    try:
        report = run_study_bench(settings, progress=lambda message: print(f"... {message}", file=sys.stderr))
    except StudyIncomplete as exc:  # a timed run lost a cell: its time would not be the study's
        raise CommandError(f"lnn-control bench study: a timed run did not finish every cell, no figures written:\n{exc}") from None
    print_report(format_study_bench(report), report, args.json)
    return 0


def run_bcstep_bench_command(args: argparse.Namespace) -> int:
    from lnn_control.bench.bcstep import BCStepBenchSettings, format_bcstep_report, run_bcstep_bench

    try:
        settings = BCStepBenchSettings(task=args.task, steps=args.steps)
        report = run_bcstep_bench(settings)
    except ValueError as exc:
        raise CommandError(f"lnn-control bench bcstep: {exc}") from None
    print_report(format_bcstep_report(report), report, args.json)
    return 0


def run_explain_bench_command(args: argparse.Namespace) -> int:
    from lnn_control.bench.explain import (
        ExplainBenchSettings,
        format_explain_report,
        run_explain_bench,
    )

    if not args.duration > 0:
        raise CommandError(f"--duration must be > 0 s, got {args.duration}")
    report = run_explain_bench(ExplainBenchSettings(duration_s=args.duration, video=not args.no_video))
    print_report(format_explain_report(report), report, args.json)
    return 0


def run_nn(args: argparse.Namespace) -> int:
    from lnn_control.bench.nn import BenchSettings, format_table, run_nn_bench

    if args.repeats < 1:
        raise CommandError(f"--repeats must be >= 1, got {args.repeats}")
    if args.quick:
        settings = BenchSettings.quick()
    else:
        settings = BenchSettings(latency_repeats=args.repeats, train_repeats=max(3, args.repeats // 400))
    report = run_nn_bench(settings, progress=lambda message: print(f"... {message}", file=sys.stderr))
    print_report(format_table(report), report, args.json)
    return 0


def run_env(args: argparse.Namespace) -> int:
    from lnn_control.bench.env import EnvBenchSettings, format_env_table, run_env_bench

    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    settings = EnvBenchSettings(task=args.task, backends=backends, steps=args.steps)
    report = run_env_bench(settings, progress=lambda message: print(f"... {message}", file=sys.stderr))
    print_report(format_env_table(report), report, args.json)
    return 0


def add_runtime_bench_parser(bench_subparsers: argparse._SubParsersAction) -> None:
    """Register ``runtime`` under the ``bench`` command group."""
    parser = bench_subparsers.add_parser(
        "runtime", help="control-loop jitter/latency (sim in the loop) and torch vs ONNX policy step latency"
    )
    parser.add_argument("--env-id", default="lnn_control/LaneKeeping-v0", help="registered env id")
    parser.add_argument(
        "--env-kwargs", default='{"backend": "pybullet", "control_rate_hz": 50, "road_length": 100.0}',
        metavar="JSON",
        help="gymnasium.make kwargs; the env's control rate must equal --rate (default: pybullet at 50 Hz on a "
             "100 m road, so a 60 s run at 1.5 m/s never stops to reset the simulation)",
    )
    parser.add_argument("--policy", metavar="P", help="policy bundle (default: the shipped bundle of the env's task)")
    parser.add_argument("--duration", type=float, default=60.0, metavar="S", help="loop run length (default 60)")
    parser.add_argument("--rate", type=float, default=50.0, metavar="HZ", help="loop rate (default 50)")
    parser.add_argument("--compare-duration", type=float, default=10.0, metavar="S",
                        help="also run S seconds without log, with and without busy-wait (0 = skip; default 10)")
    parser.add_argument("--engine-steps", type=int, default=300, help="act() calls per engine (default 300)")
    parser.add_argument("--loop-engine", choices=["torch", "onnx"], default="torch",
                        help="engine of the policy inside the timed loop (default torch)")
    parser.add_argument("--sim-pacing", choices=["clocked", "lockstep"], default="clocked",
                        help="clocked: simulator in its own process, stepped just before each read (default); "
                             "lockstep: stepped inside read()")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.set_defaults(func=run_runtime)


def run_runtime(args: argparse.Namespace) -> int:
    import json

    from lnn_control.bench.runtime import format_report, run_runtime_bench

    try:
        env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--env-kwargs is not valid JSON: {exc}") from exc
    if not isinstance(env_kwargs, dict):
        raise CommandError("--env-kwargs must be a JSON object")
    if not args.duration > 0 or args.engine_steps < 1:
        raise CommandError("--duration must be > 0 and --engine-steps >= 1")
    report = run_runtime_bench(
        args.env_id, env_kwargs, args.policy, args.duration, args.rate,
        args.compare_duration or None, args.engine_steps, loop_engine=args.loop_engine, sim_pacing=args.sim_pacing,
    )
    print_report(format_report(report), report, args.json)
    return 0
