"""``lnn-control train --launch FILE --out DIR``: collect → behaviour cloning → DAgger → policy bundle.

Fine-tuning overrides: ``--init-from BUNDLE``, ``--freeze perception|core|none`` and the repeatable
``--dataset DATA[:WEIGHT]`` (appended to the launch file's ``datasets``)."""

from __future__ import annotations

import argparse
import dataclasses
import math

FREEZE_CHOICES = ("none", "perception", "core")  # lnn_control.train.freeze.FREEZE_KINDS (no torch import here)


def parse_dataset(text: str) -> tuple[str, float]:
    """``DATA`` or ``DATA:WEIGHT`` -> (path, weight); a suffix that is not a number belongs to the path."""
    path, sep, tail = text.rpartition(":")
    if sep and path:
        try:
            weight = float(tail)
        except ValueError:
            return text, 1.0
        if not (math.isfinite(weight) and weight > 0):
            raise argparse.ArgumentTypeError(f"weight of {path} must be a finite number > 0, got {tail}")
        return path, weight
    return text, 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a policy from a launch file (collect, behaviour cloning, DAgger rounds, bundle)",
        description=(
            "Runs the whole pipeline of a training launch file such as launch/lane_keeping.yaml "
            "(a shipped name like 'lane_keeping' works too). Overrides below change the loaded launch "
            "file; the exact command is recorded in the bundle."
        ),
    )
    parser.add_argument("--launch", required=True, metavar="FILE", help="training launch file or shipped name")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (data/, train/, policy/)")
    parser.add_argument("--resume", action="store_true", help="reuse collected episodes and the last checkpoint")
    parser.add_argument("--backend", choices=["pybullet", "mujoco"], help="override the launch file's backend")
    parser.add_argument("--core", choices=["ltc", "cfc", "wired_ctrnn", "lstm", "gru", "ctrnn", "feedforward"],
                        help="override the core type (wired_ctrnn: CT-RNN on the preset's NCP wiring)")
    parser.add_argument("--episodes", type=int, help="override collect.episodes")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--dagger-rounds", type=int, help="override dagger.rounds")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--dataset", action="append", default=[], metavar="DATA[:WEIGHT]", type=parse_dataset,
                        help="also train on this dataset folder (dataset from-log / collect) with this mixing "
                             "weight (default 1; relative to the others and to collect.weight); repeatable")
    parser.add_argument("--init-from", metavar="BUNDLE",
                        help="start from this policy bundle (folder, .zip or shipped name such as lane_keeping_ncp19); "
                             "turns the recipe's select.restarts off")
    parser.add_argument("--freeze", choices=list(FREEZE_CHOICES), help="override freeze: keep the CNN or the core fixed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def apply_overrides(launch, args: argparse.Namespace):  # noqa: ANN001, ANN201 - TrainRecipe in, TrainRecipe out
    replace = dataclasses.replace
    if args.backend:
        launch = replace(launch, backend=args.backend)
    if args.core:
        launch = replace(launch, policy=replace(launch.policy, core=args.core))
    if args.episodes is not None:
        launch = replace(launch, collect=replace(launch.collect, episodes=args.episodes))
    if args.epochs is not None:
        launch = replace(launch, train=replace(launch.train, epochs=args.epochs))
    if args.dagger_rounds is not None:
        launch = replace(launch, dagger=replace(launch.dagger, rounds=args.dagger_rounds))
    if args.seed is not None:
        launch = replace(launch, seed=args.seed, train=replace(launch.train, seed=args.seed))
    if args.dataset:
        from lnn_control.train.recipe import DatasetEntry

        added = tuple(DatasetEntry(path=path, weight=weight) for path, weight in args.dataset)
        launch = replace(launch, datasets=(*launch.datasets, *added))
    if args.init_from:  # a fine-tune keeps its start weights: no restarts from fresh ones
        launch = replace(launch, init_from=args.init_from,
                         select=replace(launch.select, restarts=0, restart_below=0.0))
    if args.freeze:
        launch = replace(launch, freeze=args.freeze)
    return launch


def run(args: argparse.Namespace) -> int:
    from lnn_control.train.pipeline import run_pipeline
    from lnn_control.train.recipe import check_launch, load_train_launch

    launch, text = load_train_launch(args.launch)
    launch = apply_overrides(launch, args)
    check_launch(launch, str(args.launch))
    bundle = run_pipeline(launch, text, args.out, resume=args.resume, progress=not args.quiet)
    print(f"wrote policy bundle {bundle}")
    print(f"next: lnn-control eval {bundle} --task {launch.task} --backend {launch.backend}")
    return 0
