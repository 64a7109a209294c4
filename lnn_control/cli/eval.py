"""``lnn-control eval POLICY``: closed-loop evaluation on held-out seeds, per condition."""

from __future__ import annotations

import argparse
from typing import Any

from lnn_control.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    from lnn_control.tasks import HELD_OUT_SEED_START, TASKS

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a policy (or the expert) closed-loop on held-out roads/forests per condition",
        description="POLICY is a bundle folder/zip, a shipped policy name, or 'expert' for the privileged expert.",
    )
    parser.add_argument("policy", metavar="POLICY")
    parser.add_argument("--task", choices=sorted(TASKS), default="lane-keeping")
    parser.add_argument("--backend", choices=["pybullet", "mujoco"], default="pybullet")
    parser.add_argument("--conditions", default="clean", help="comma-separated specs, e.g. clean,rain:3,fog:3+noise:2")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per condition")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED_START, help=f"first held-out seed (≥ {HELD_OUT_SEED_START})")
    parser.add_argument("--workers", type=int, default=1,
                        help="episodes in parallel (local processes, one thread each); same numbers as 1 worker")
    parser.add_argument("--nominal-dt", action="store_true",
                        help="tell the policy the nominal period instead of the measured dt between delivered frames (framedrop ablation)")
    parser.add_argument("--env-option", action="append", default=[], metavar="KEY=VALUE", dest="env_options",
                        help="keyword argument for the env, VALUE read as YAML (repeatable), e.g. "
                             "appearance=desert or road_length=40")
    parser.add_argument("--json", metavar="FILE", help="write every number as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="bar plot of success rate per condition")
    parser.set_defaults(func=run)


def parse_env_options(options: list[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: yaml(VALUE)}``; a malformed entry is a CommandError naming it."""
    import yaml

    kwargs: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip().isidentifier():
            raise CommandError(f"--env-option {option!r} is not KEY=VALUE with KEY a keyword name, "
                               "e.g. --env-option appearance=desert")
        kwargs[key.strip()] = yaml.safe_load(value)
    return kwargs


def run(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.evaluate.closed_loop import (
        EvalConfig,
        evaluate,
        evaluate_parallel,
        expert_controller,
        policy_controller,
    )
    from lnn_control.evaluate.report import format_table, plot_results

    if args.workers < 1:
        raise ValueError(f"--workers must be ≥ 1, got {args.workers}")
    config = EvalConfig(
        task=args.task,
        backend=args.backend,
        conditions=[c.strip() for c in args.conditions.split(",") if c.strip()],
        episodes=args.episodes,
        seed=args.seed,
        dt_mode="nominal" if args.nominal_dt else "measured",
        env_kwargs=parse_env_options(args.env_options),
    )
    if args.workers > 1:
        from lnn_control.extras import require
        from lnn_control.parallel.executor import make_executor

        require("gymnasium", "lnn-control eval")  # checked here: the workers would fail one by one

        reference = "expert"
        if args.policy != "expert":
            from lnn_control.runtime.launch import resolve_policy_path

            reference = str(resolve_policy_path(args.policy))
        with make_executor("local", args.workers) as pool:
            results = evaluate_parallel(config, reference, pool)
        results["policy"] = reference
    elif args.policy == "expert":
        results = evaluate(config, expert_controller)
        results["policy"] = "expert"
    else:
        import torch

        from lnn_control.policies.bundle import load_policy
        from lnn_control.runtime.launch import resolve_policy_path

        # batch-1 stepping is fastest on one thread (bench nn); more threads spin against each
        # other when several evals share the cores (measured: 5-8x slower episodes at load 3)
        torch.set_num_threads(1)
        path = resolve_policy_path(args.policy)
        policy = load_policy(path)
        results = evaluate(config, policy_controller(policy), reset=policy.reset, policy=policy)
        results["policy"] = str(path)
    print(format_table(results))
    if args.json:
        atomic_write_json(args.json, results)
        print(f"wrote {args.json}")
    if args.plot:
        plot_results(results, args.plot)
        print(f"wrote {args.plot}")
    return 0
