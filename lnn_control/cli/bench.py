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
