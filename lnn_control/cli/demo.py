"""``lnn-control demo TASK``: drive with a policy and record a video with overlays, or watch live."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from lnn_control.seeds import HELD_OUT_SEED_START
    from lnn_control.tasks import TASKS

    parser = subparsers.add_parser(
        "demo",
        help="run a (shipped) policy on a held-out road/forest: video with overlays, or the simulator's viewer",
    )
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--policy", help="bundle folder/zip or shipped name (default: the shipped policy of the task)")
    parser.add_argument("--backend", choices=["pybullet", "mujoco"], default="pybullet")
    parser.add_argument("--condition", default="clean", help="domain shift spec, e.g. rain:3 or fog:2+noise:1")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED_START, help="road/forest seed (held out ≥ 1000)")
    parser.add_argument("--out", metavar="FILE.mp4", help="write a video (default: demo_<task>.mp4 unless --gui)")
    parser.add_argument("--gui", action="store_true", help="open the simulator's own viewer instead of a video")
    parser.add_argument("--max-steps", type=int, help="stop after this many control steps")
    parser.add_argument("--saliency", action="store_true",
                        help="blend the policy's VisualBackProp saliency over the onboard camera inset (video)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lnn_control.demo.episode import DemoConfig, run_demo
    from lnn_control.tasks import get_task

    policy = args.policy or get_task(args.task).shipped_policy
    out = None if args.gui and not args.out else (args.out or f"demo_{args.task}.mp4")
    summary = run_demo(
        DemoConfig(
            task=args.task,
            policy=policy,
            backend=args.backend,
            condition=args.condition,
            seed=args.seed,
            out=out,
            gui=args.gui,
            max_steps=args.max_steps,
            saliency=args.saliency,
        )
    )
    print(summary)
    return 0
