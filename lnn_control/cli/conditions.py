"""``lnn-control conditions``: the domain-shift contact sheet (and per-corruption cost).

    lnn-control conditions --out conditions.png                 # lane-env camera frame
    lnn-control conditions --out sheet.png --image photo.png    # your own frame
    lnn-control conditions --out sheet.png --bench cost.json    # also time every corruption

Rows are the image corruptions, columns the clean frame and severities 1..5. The input frame is a
camera frame of ``lnn_control/LaneKeeping-v0`` (PyBullet, road ``--seed``) unless ``--image`` is
given or ``--source synthetic`` asks for the built-in synthetic road frame; ``--source auto`` (the
default) falls back to the synthetic frame when the lane env cannot be created here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lnn_control.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "conditions",
        help="write the domain-shift contact sheet PNG (conditions x severities 1..5)",
        description="Write a PNG grid: one row per image corruption, columns clean + severities 1..5.",
    )
    parser.add_argument("--out", default="conditions.png", metavar="FILE.png", help="output PNG (default: %(default)s)")
    parser.add_argument("--image", metavar="FILE", help="input frame (any image OpenCV reads) instead of a lane-env frame")
    parser.add_argument(
        "--source",
        choices=("auto", "lane", "synthetic"),
        default="auto",
        help="where the frame comes from without --image: lane env (PyBullet), synthetic road, "
        "or auto = lane env, else synthetic (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1000, help="road seed and corruption seed (default: %(default)s)")
    parser.add_argument("--scale", type=int, default=2, help="enlarge each frame by this integer factor (default: %(default)s)")
    parser.add_argument(
        "--only", metavar="NAMES", help="comma-separated corruptions to show (default: all), e.g. rain,fog,night"
    )
    parser.add_argument(
        "--bench", metavar="FILE.json", help="also time every corruption at every severity on the frame; write JSON"
    )
    parser.add_argument("--repeats", type=int, default=200, help="timing repetitions per severity (default: %(default)s)")
    parser.set_defaults(func=run)


def _read_image(path: str):
    import cv2

    if not Path(path).is_file():
        raise CommandError(f"--image {path!r} does not exist; give a PNG/JPEG file")
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise CommandError(f"--image {path!r} could not be decoded; give a PNG/JPEG file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def lane_frame(seed: int):
    """The onboard camera frame of the lane env (PyBullet) at the start of road ``seed``."""
    import gymnasium as gym

    import lnn_control.envs  # noqa: F401  (registers the env ids)

    env = gym.make("lnn_control/LaneKeeping-v0", backend="pybullet", start_noise=False)
    try:
        obs, _ = env.reset(seed=seed)
        return obs["image"]
    finally:
        env.close()


def _frame(args: argparse.Namespace):
    from lnn_control.envs.wrappers.contact_sheet import synthetic_road_frame

    if args.image:
        return _read_image(args.image), f"image {args.image}"
    if args.source == "synthetic":
        return synthetic_road_frame(), "synthetic road frame"
    try:
        return lane_frame(args.seed), f"LaneKeeping-v0 (pybullet) camera, road {args.seed}"
    except (ImportError, OSError, RuntimeError) as exc:
        if args.source == "lane":
            raise CommandError(f"could not render a lane-env frame ({exc}); use --source synthetic or --image FILE") from exc
        print(f"note: lane env unavailable ({exc}); using the synthetic road frame")
        return synthetic_road_frame(), "synthetic road frame"


def _names(only: str | None) -> list[str] | None:
    from lnn_control.envs.wrappers.corruptions import CORRUPTIONS

    if only is None:
        return None
    names = [n.strip().lower() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if not names or unknown:
        raise CommandError(f"--only {only!r}: unknown {unknown or 'empty list'}; allowed: {', '.join(CORRUPTIONS)}")
    return names


def run(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_bytes, atomic_write_json
    from lnn_control.envs.wrappers.bench import bench_corruptions, format_bench
    from lnn_control.envs.wrappers.contact_sheet import contact_sheet, encode_png

    if not str(args.out).lower().endswith(".png"):
        raise CommandError(f"--out {args.out!r} must end in .png")
    if args.repeats < 1:
        raise CommandError(f"--repeats must be ≥ 1, got {args.repeats}")
    if not 1 <= args.scale <= 8:
        raise CommandError(f"--scale must be an integer in 1..8, got {args.scale}")
    if args.seed < 0:
        raise CommandError(f"--seed must be ≥ 0, got {args.seed}")
    names = _names(args.only)
    frame, origin = _frame(args)
    sheet = contact_sheet(frame, names, seed=args.seed, scale=args.scale)
    atomic_write_bytes(args.out, encode_png(sheet))
    rows = len(names) if names else "all"
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]} px, {rows} corruptions x clean+5 severities) from {origin}")
    if args.bench:
        report = bench_corruptions(frame, names, repeats=args.repeats, seed=args.seed)
        report["frame_source"] = origin
        atomic_write_json(args.bench, report)
        print(format_bench(report))
        print(f"wrote {args.bench}")
    return 0

