"""``lnn-control bench nn``: speed of the liquid networks against ncps (table + optional JSON)."""

from __future__ import annotations

import argparse
import sys

from lnn_control.cli import CommandError


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
    from lnn_control.runtime.bench import add_runtime_bench_parser

    add_runtime_bench_parser(targets)


def run_nn(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.bench.nn import BenchSettings, format_table, run_nn_bench

    if args.repeats < 1:
        raise CommandError(f"--repeats must be >= 1, got {args.repeats}")
    if args.quick:
        settings = BenchSettings.quick()
    else:
        settings = BenchSettings(latency_repeats=args.repeats, train_repeats=max(3, args.repeats // 400))
    report = run_nn_bench(settings, progress=lambda message: print(f"... {message}", file=sys.stderr))
    print(format_table(report))
    if args.json:
        atomic_write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def run_env(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.bench.env import EnvBenchSettings, format_env_table, run_env_bench

    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    settings = EnvBenchSettings(task=args.task, backends=backends, steps=args.steps)
    report = run_env_bench(settings, progress=lambda message: print(f"... {message}", file=sys.stderr))
    print(format_env_table(report))
    if args.json:
        atomic_write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0
