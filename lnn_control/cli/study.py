"""``lnn-control study --launch STUDY.yaml --out DIR``: a robustness study (train × evaluate grid + report)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="train several architectures × seeds on identical data, evaluate every condition, report with intervals",
        description=(
            "Runs the cells of a study file (shipped: study_lane_keeping, study_drone_forest, study_smoke) "
            "on a local process pool or a Ray cluster. Each finished cell is its own file under DIR/cells; "
            "re-running the same command runs only the missing cells. Writes DIR/report.md, report.json "
            "and plots/*.png when every cell is done."
        ),
    )
    parser.add_argument("--launch", required=True, metavar="STUDY.yaml", help="study file or shipped study name")
    parser.add_argument("--out", required=True, metavar="DIR", help="study folder (cells, models, data, report)")
    parser.add_argument("--workers", type=int, default=1, help="parallel cells (local processes, or local Ray CPUs)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local", help="local process pool or Ray")
    parser.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster (e.g. auto, or HEAD_IP:6379)")
    parser.add_argument("--resume", action="store_true", help="continue the study already in DIR (an error if there is none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from lnn_control.cli import CommandError
    from lnn_control.parallel.executor import MissingDependency
    from lnn_control.study.config import load_study
    from lnn_control.study.scheduler import StudyIncomplete, run_study

    if args.workers < 1:
        raise ValueError(f"--workers must be ≥ 1, got {args.workers}")
    if args.ray_address and args.executor != "ray":
        raise ValueError("--ray-address needs --executor ray")
    from lnn_control.extras import require

    for package in ("torch", "gymnasium", "pybullet", "mujoco"):  # the cells train and simulate in workers
        require(package, "lnn-control study")
    study, path = load_study(args.launch)
    if args.executor == "ray":  # before any work: a missing extra is an error, not a half-started study
        from lnn_control.parallel.ray_executor import import_ray

        try:
            import_ray()
        except MissingDependency as exc:
            raise CommandError(str(exc)) from None
    try:
        summary = run_study(
            study, path, args.out, executor=args.executor, workers=args.workers,
            ray_address=args.ray_address, resume=args.resume, progress=not args.quiet,
        )
    except StudyIncomplete as exc:
        print(f"error: study incomplete: {exc}", file=sys.stderr)
        return 1
    rate = len(summary.ran) / summary.seconds * 60 if summary.ran and summary.seconds > 0 else 0.0
    print(
        f"ran {len(summary.ran)} cell(s) in {summary.seconds:.1f} s ({rate:.1f} cells/min), "
        f"{summary.skipped} already finished; report: {summary.report}"
    )
    return 0
