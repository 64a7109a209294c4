"""``lnn-control dataset from-log|show|contact-sheet``: run logs to episode datasets, and a look at them."""

from __future__ import annotations

import argparse
import shlex

from lnn_control.cli import CommandError
from lnn_control.cli.dataset_bag import register as register_from_bag
from lnn_control.cli.dataset_lerobot import register as register_lerobot


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="convert run logs to episode datasets; summarise and look at datasets")
    actions = parser.add_subparsers(dest="dataset_action", metavar="ACTION", required=True)

    convert = actions.add_parser(
        "from-log",
        help="run logs (MCAP) -> a new episode dataset: one episode per contiguous selected segment of one source",
    )
    convert.add_argument("logs", nargs="+", metavar="RUN.mcap", help="run logs written by 'lnn-control run' / teleop")
    convert.add_argument("--out", required=True, metavar="DATA", help="new dataset folder (must not hold files)")
    convert.add_argument("--trim-start", type=float, default=0.0, metavar="S",
                         help="leave out each log's first S seconds (default 0)")
    convert.add_argument("--trim-end", type=float, default=0.0, metavar="S",
                         help="leave out each log's last S seconds (default 0)")
    convert.add_argument("--drop", action="append", default=[], metavar="A:B",
                         help="leave out A <= t < B seconds since each log's first step (repeatable)")
    convert.add_argument("--only", choices=["human", "interventions"],
                         help="human: human-driven steps only (teleop and takeovers); interventions: the human "
                              "takeovers of policy runs only (default: policy and human steps)")
    convert.add_argument("--image-size", metavar="HxW", help="frame size of the dataset (default: the spec policy's)")
    convert.add_argument("--spec", metavar="POLICY",
                         help="bundle dir / .zip / .onnx / shipped name giving action limits and units "
                              "(default: the policy the first log names)")
    convert.add_argument("--min-steps", type=int, default=1, metavar="N",
                         help="leave out episodes shorter than N steps (default 1)")
    convert.add_argument("--json", metavar="FILE", help="also write the conversion report as JSON")
    convert.set_defaults(func=run_from_log)
    register_from_bag(actions)  # from-bag

    show = actions.add_parser("show", help="episodes, durations, sources, label statistics and hash of a dataset")
    show.add_argument("data", metavar="DATA", help="dataset folder")
    show.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")
    show.set_defaults(func=run_show)

    sheet = actions.add_parser("contact-sheet", help="PNG grid of frames sampled evenly over a dataset")
    sheet.add_argument("data", metavar="DATA", help="dataset folder")
    sheet.add_argument("--out", required=True, metavar="SHEET.png", help="PNG file to write")
    sheet.add_argument("--frames", type=int, default=24, help="frames on the sheet (default 24)")
    sheet.add_argument("--columns", type=int, default=6, help="frames per row (default 6)")
    sheet.add_argument("--scale", type=int, default=2, help="integer enlargement of each frame, 1..8 (default 2)")
    sheet.set_defaults(func=run_contact_sheet)
    register_lerobot(actions)  # export-lerobot, from-lerobot


def run_from_log(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.data.from_log import FromLogConfig, convert_logs, parse_image_size
    from lnn_control.data.log_selection import Selection, TimeRange

    selection = Selection(
        trim_start_s=args.trim_start,
        trim_end_s=args.trim_end,
        drop=tuple(TimeRange.parse(text) for text in args.drop),
        only=args.only,
        min_steps=args.min_steps,
    )
    config = FromLogConfig(
        selection=selection,
        image_size=None if args.image_size is None else parse_image_size(args.image_size),
        spec=args.spec,
    )
    try:
        report = convert_logs(args.logs, args.out, config, command=_command_line(args))
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    for entry in report.logs:
        excluded = ", ".join(f"{k} {v}" for k, v in sorted(entry["excluded"].items())) or "none"
        print(f"{entry['path']}: {entry['steps']} steps ({entry['frames']} frames, mode {entry['mode']}"
              f"{'' if entry['complete'] else ', truncated'}) -> {entry['episodes']} episodes, "
              f"{entry['kept_steps']} steps; left out: {excluded}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"wrote {report.root}: {report.episodes} episodes, {report.steps} steps; hash {report.dataset_hash}")
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The from-log command as a shell line (recorded as the dataset's ``created_by``)."""
    words = ["lnn-control", "dataset", "from-log", *args.logs, "--out", args.out]
    for flag, value, default in (("--trim-start", args.trim_start, 0.0), ("--trim-end", args.trim_end, 0.0),
                                 ("--only", args.only, None), ("--image-size", args.image_size, None),
                                 ("--spec", args.spec, None), ("--min-steps", args.min_steps, 1)):
        if value != default:
            words += [flag, str(value)]
    for text in args.drop:
        words += ["--drop", text]
    return " ".join(shlex.quote(w) for w in words)


def run_show(args: argparse.Namespace) -> int:
    import json

    from lnn_control.data.summary import format_summary, summarize_dataset

    summary = summarize_dataset(args.data)
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else format_summary(summary))
    return 0


def run_contact_sheet(args: argparse.Namespace) -> int:
    from lnn_control.data.contact_sheet import SheetLayout, dataset_contact_sheet, write_png

    sheet = dataset_contact_sheet(args.data, SheetLayout(args.frames, args.columns, args.scale))
    write_png(sheet, args.out)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]} px)")
    return 0
