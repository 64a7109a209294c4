"""``lnn-control dataset export-lerobot|from-lerobot``: episode datasets to and from LeRobot v3.0 datasets."""

from __future__ import annotations

import argparse
import shlex

from lnn_control.cli import CommandError


def register(actions: argparse._SubParsersAction) -> None:
    """Add the two actions to the ``dataset`` command's subparsers."""
    export = actions.add_parser(
        "export-lerobot",
        help="episode dataset -> a new LeRobot v3.0 dataset (Parquet + MP4 + meta/), with measured dt kept",
    )
    export.add_argument("data", metavar="DATA", help="episode dataset folder (collect / from-log)")
    export.add_argument("--out", required=True, metavar="DIR", help="new LeRobot dataset folder (must not hold files)")
    export.add_argument("--fps", type=int, metavar="N",
                        help="LeRobot frame rate in Hz (default: 1 / the median measured frame period)")
    export.add_argument("--task", metavar="TEXT",
                        help="task text of every episode (default: the episodes' task metadata, else "
                             "'lnn-control demonstration')")
    export.add_argument("--repo-id", metavar="OWNER/NAME",
                        help="Hub name recorded in the dataset card (default: lnn-control/<DIR name>)")
    export.add_argument("--camera-key", default="observation.images.front", metavar="KEY",
                        help="name of the video feature (default observation.images.front)")
    export.add_argument("--codec", choices=["h264", "libsvtav1"], default="h264",
                        help="video codec: h264 (default) or libsvtav1 (AV1, LeRobot's default)")
    export.add_argument("--crf", type=int, default=18, metavar="N",
                        help="video quality, 0 = best (default 18; LeRobot records with 30)")
    export.add_argument("--json", metavar="FILE", help="also write the export report as JSON")
    export.set_defaults(func=run_export)

    imp = actions.add_parser(
        "from-lerobot",
        help="a LeRobot v3 dataset (ours or any with a camera and an action feature) -> a new episode dataset",
    )
    imp.add_argument("source", metavar="DIR", help="LeRobot v3 dataset folder (the one holding meta/info.json)")
    imp.add_argument("--out", required=True, metavar="DATA", help="new episode dataset folder (must not hold files)")
    imp.add_argument("--camera", metavar="KEY", help="image/video feature to take frames from (default: the only one)")
    imp.add_argument("--action", metavar="KEY[,KEY]", default="action",
                     help="features concatenated into the label (default: action)")
    imp.add_argument("--state", metavar="KEY[,KEY]",
                     help="features concatenated into the extras (default: observation.state of an lnn-control "
                          "export, none otherwise)")
    imp.add_argument("--image-size", metavar="HxW", help="resize frames to HEIGHTxWIDTH pixels (default: as stored)")
    imp.add_argument("--json", metavar="FILE", help="also write the import report as JSON")
    imp.set_defaults(func=run_import)


def _keys(text: str, flag: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    if not keys:
        raise CommandError(f"{flag} {text!r}: name at least one feature, e.g. {flag} action")
    return keys


def _command(args: argparse.Namespace, action: str, positional: str, options: dict[str, object]) -> str:
    words = ["lnn-control", "dataset", action, positional, "--out", args.out]
    for flag, value in options.items():
        if value is not None:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def run_export(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.data.lerobot.export import ExportConfig, export_lerobot
    from lnn_control.data.lerobot.video import VideoSettings

    config = ExportConfig(fps=args.fps, task=args.task, repo_id=args.repo_id, camera_key=args.camera_key,
                          video=VideoSettings(codec=args.codec, crf=args.crf))
    command = _command(args, "export-lerobot", args.data, {
        "--fps": args.fps, "--task": args.task, "--repo-id": args.repo_id, "--camera-key": args.camera_key,
        "--codec": args.codec, "--crf": args.crf})
    try:
        report = export_lerobot(args.data, args.out, config, command=command)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {report.root}: LeRobot v3.0, {report.episodes} episodes, {report.frames} frames at {report.fps} fps "
          f"({report.fps_from}); {report.data_files} data file(s), {report.video_files} video file(s); "
          f"{report.seconds:.1f} s")
    if report.max_grid_offset_s > 0.5 / report.fps:
        print(f"note: measured frame times drift up to {report.max_grid_offset_s:.3f} s from the {report.fps} fps grid; "
              "LeRobot's timestamp is the grid time, the measured timing is in lnn.measured_dt / lnn.capture_time")
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0


def run_import(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.data.from_log import parse_image_size
    from lnn_control.data.lerobot.importer import ImportConfig, import_lerobot

    config = ImportConfig(
        camera=args.camera,
        action=_keys(args.action, "--action"),
        state=None if args.state is None else _keys(args.state, "--state"),
        image_size=None if args.image_size is None else parse_image_size(args.image_size),
    )
    command = _command(args, "from-lerobot", args.source, {
        "--camera": args.camera, "--action": None if args.action == "action" else args.action,
        "--state": args.state, "--image-size": args.image_size})
    try:
        report = import_lerobot(args.source, args.out, config, command=command)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    origin = "an lnn-control export (specs and metadata restored)" if report.lnn_export else "a LeRobot dataset"
    resized = "" if report.resized_from is None else f", frames resized from {report.resized_from[0]}x{report.resized_from[1]}"
    print(f"wrote {report.root}: {report.episodes} episodes, {report.steps} steps from {origin}; camera {report.camera}, "
          f"timestamps from {report.timestamps_from}{resized}; hash {report.dataset_hash}")
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0
