"""``lnn-control collect TASK``: expert demonstrations (DART noise) or a DAgger round with a learner."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from lnn_control.tasks import TASKS

    parser = subparsers.add_parser(
        "collect",
        help="record expert demonstrations (with DART noise) or a DAgger round into a dataset folder",
        description=(
            "Each episode is written atomically when it ends, so a crash loses at most the episode in "
            "progress. Running again on the same --out appends."
        ),
    )
    parser.add_argument("task", choices=sorted(TASKS), help="which task")
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder (created or appended to)")
    parser.add_argument("--backend", choices=["pybullet", "mujoco"], default="pybullet")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="base training seed; episode i uses seed+i (mod 1000)")
    parser.add_argument("--noise", type=float, default=0.1, help="DART action-noise std, normalised units")
    parser.add_argument("--conditions", default="clean", help="comma-separated condition specs cycled over episodes")
    parser.add_argument("--no-randomization", action="store_true", help="turn visual domain randomisation off")
    parser.add_argument("--policy", metavar="BUNDLE", help="DAgger: a learner drives, the expert labels")
    parser.add_argument("--learner-mix", type=float, default=0.5, help="DAgger: chance per step the learner's action is applied")
    parser.add_argument("--noise-seeding", choices=["shared", "per_episode"], default="shared",
                        help="shared: one noise generator over all episodes (the shipped recipes); per_episode: "
                             "each episode its own, so the data does not depend on --workers")
    parser.add_argument("--workers", type=int, default=1,
                        help="expert episodes in parallel (local processes; needs --noise-seeding per_episode)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lnn_control.cli import CommandError
    from lnn_control.data.collect import CollectConfig, collect

    if args.workers < 1:
        raise CommandError(f"--workers must be ≥ 1, got {args.workers}")
    if args.workers > 1 and (args.policy or args.noise_seeding != "per_episode"):
        raise CommandError("--workers > 1 collects expert episodes with --noise-seeding per_episode (shared noise is "
                           "drawn in episode order; a DAgger learner drives in this process)")
    learner = None
    if args.policy:
        from lnn_control.policies.bundle import load_policy
        from lnn_control.runtime.launch import resolve_policy_path

        learner = load_policy(resolve_policy_path(args.policy))
    config = CollectConfig(
        task=args.task,
        backend=args.backend,
        episodes=args.episodes,
        seed=args.seed,
        noise_std=args.noise,
        learner_mix=args.learner_mix,
        domain_randomization=not args.no_randomization,
        conditions=[c.strip() for c in args.conditions.split(",") if c.strip()],
        noise_seeding=args.noise_seeding,
    )
    if args.workers > 1:
        from lnn_control.parallel.executor import make_executor

        with make_executor("local", args.workers) as pool:
            summary = collect(config, args.out, executor=pool)
    else:
        summary = collect(config, args.out, learner=learner)
    print(
        f"collected {summary.episodes} episodes, {summary.steps} steps into {args.out} "
        f"({summary.expert_successes}/{summary.episodes} completed the road); dataset now has {len(summary.paths)} episodes"
    )
    return 0
