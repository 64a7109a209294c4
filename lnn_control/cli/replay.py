"""``lnn-control replay LOG``: re-run a policy on a run log's frames and compare the commands."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="re-run a policy offline on a run log's frames (logged dt) and compare with the logged commands",
    )
    parser.add_argument("log", metavar="LOG", help="MCAP run log written by 'lnn-control run'")
    parser.add_argument("--policy", metavar="P", help="policy bundle / .onnx (default: the one the log names)")
    parser.add_argument("--engine", choices=["torch", "onnx"], help="engine (default: the log's)")
    parser.add_argument("--plot", metavar="FILE.png", help="plot logged vs replayed commands")
    parser.add_argument("--json", metavar="FILE", help="write the comparison as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lnn_control.atomic import atomic_write_json
    from lnn_control.cli import CommandError
    from lnn_control.runtime.launch import Engine
    from lnn_control.runtime.logs.replay import plot_replay, replay_log
    from lnn_control.runtime.logs.runlog import read_run_log
    from lnn_control.runtime.session import load_engine

    path = Path(args.log)
    if not path.is_file():
        raise CommandError(f"run log {path} does not exist")
    log = read_run_log(path)
    policy_ref = args.policy or log.metadata.get("policy")
    if not policy_ref:
        raise CommandError(f"{path} does not name its policy; pass --policy")
    engine = Engine(args.engine or log.metadata.get("engine", "torch"))
    policy = load_engine(policy_ref, engine)
    result = replay_log(log, policy)
    if not log.complete:
        print(f"note: {path} ends early (crashed run); replayed up to its last complete chunk")
    print(f"replayed {result.steps} policy steps of {path} with {policy_ref} ({engine.value})")
    for name, stats in result.per_action.items():
        print(f"  {name:<12} max |diff| {stats['max_abs_diff']:.3e}   mean |diff| {stats['mean_abs_diff']:.3e}")
    if args.plot:
        plot_replay(result, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        atomic_write_json(args.json, result.summary())
    return 0
