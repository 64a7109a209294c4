"""``lnn-control camera calibrate|preview|latency``: make a real robot's camera look like the simulator's.

- ``calibrate``: OpenCV chessboard calibration from a folder of images or a video; writes a
  calibration YAML with the simulator view of ``--task`` (and can point a launch file at it).
- ``preview``: a PNG of what the policy sees (rectified, FOV-matched) next to a simulator frame.
- ``latency``: camera→command latency of a run log and the matching ``delay`` training condition.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lnn_control.cli import CommandError

if TYPE_CHECKING:
    import numpy as np

    from lnn_control.camera.model import CameraCalibration, SimView


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "camera", help="calibrate a real robot's camera, preview what the policy sees, read its latency"
    )
    actions = parser.add_subparsers(dest="camera_action", metavar="ACTION", required=True)
    calibrate = actions.add_parser(
        "calibrate", help="chessboard calibration (intrinsics, distortion, RMS error) -> calibration YAML",
        description="Find a chessboard in every image of a folder (or every n-th frame of a video), "
                    "calibrate with OpenCV and write intrinsics, distortion, image size, RMS reprojection error "
                    "and the simulator view to match (from --task) to --out.",
    )
    calibrate.add_argument("--images", required=True, metavar="DIR_OR_VIDEO", help="folder of images, or a video file")
    calibrate.add_argument("--board", required=True, metavar="COLSxROWS",
                           help="INNER corners of the chessboard, e.g. 9x6 for a board of 10 x 7 squares")
    calibrate.add_argument("--square-mm", required=True, type=float, metavar="S", help="square size in millimetres")
    calibrate.add_argument("--out", required=True, metavar="CALIB.yaml", help="calibration file to write (atomic)")
    calibrate.add_argument("--task", help="the simulator camera to match (lane-keeping | drone-forest; needs [sim])")
    calibrate.add_argument("--vertical-fov-deg", type=float, metavar="F",
                           help="simulator vertical FOV, instead of --task (with --sim-pitch-deg)")
    calibrate.add_argument("--sim-pitch-deg", type=float, metavar="P", help="simulator camera pitch, > 0 looks down")
    calibrate.add_argument("--mount-pitch-deg", type=float, metavar="M",
                           help="measured pitch of the real camera (> 0 looks down); omitted: no pitch correction")
    calibrate.add_argument("--min-views", type=int, default=10, help="fewest views with the board (default 10)")
    calibrate.add_argument("--fix-k3", action="store_true", help="keep k3 = 0 (narrow lenses, few views)")
    calibrate.add_argument("--video-step", type=int, metavar="N", help="search every N-th video frame (default: ~60 frames)")
    calibrate.add_argument("--launch", metavar="LAUNCH.yaml",
                           help="also add robot.camera.calibration: {file: OUT} to this launch file (comments kept)")
    calibrate.add_argument("--json", metavar="FILE", help="also write the result as JSON (atomic)")
    calibrate.set_defaults(func=run_calibrate)

    preview = actions.add_parser(
        "preview", help="PNG: camera frame, what the policy sees, a simulator frame of the task",
        description="Rectify a camera frame with a calibration and show it next to a simulator frame (needs [sim]).",
    )
    preview.add_argument("--launch", metavar="FILE", help="launch file whose robot.camera has a calibration")
    preview.add_argument("--calibration", metavar="CALIB.yaml", help="calibration file (instead of --launch)")
    preview.add_argument("--input", metavar="IMAGE_OR_VIDEO",
                         help="camera frame (image or video); default: the launch file's camera (one frame)")
    preview.add_argument("--frame", type=int, default=0, metavar="N", help="frame index of a video input (default 0)")
    preview.add_argument("--mount-pitch-deg", type=float, metavar="M", help="override the measured mount pitch")
    preview.add_argument("--task", help="simulator task (default: the calibration's)")
    preview.add_argument("--backend", default="pybullet", choices=["pybullet", "mujoco"], help="simulator (default pybullet)")
    preview.add_argument("--seed", type=int, default=1000, help="episode seed of the simulator frame (default 1000)")
    preview.add_argument("--scale", type=int, default=4, help="enlargement of the policy-sized panels (default 4)")
    preview.add_argument("--out", required=True, metavar="FILE.png", help="PNG to write (atomic)")
    preview.set_defaults(func=run_preview)

    latency = actions.add_parser(
        "latency", help="camera->command latency of a run log and the delay condition to train with",
    )
    latency.add_argument("log", metavar="RUN.mcap", help="run log written by 'lnn-control run'")
    latency.add_argument("--camera-latency-ms", type=float, default=0.0, metavar="MS",
                         help="exposure-to-driver latency the loop cannot see (default 0; measure it)")
    latency.add_argument("--json", metavar="FILE", help="also write the figures as JSON (atomic)")
    latency.set_defaults(func=run_latency)


def _sim_view(args: argparse.Namespace) -> SimView:
    from lnn_control.camera.model import SimView

    explicit = (args.vertical_fov_deg, args.sim_pitch_deg)
    if args.task and any(v is not None for v in explicit):
        raise CommandError("give either --task or --vertical-fov-deg with --sim-pitch-deg, not both")
    if args.task:
        from lnn_control.camera.sim_view import sim_view_of_task

        return sim_view_of_task(args.task)
    if None in explicit:
        raise CommandError(
            "say which simulator camera to match: --task lane-keeping|drone-forest (needs the [sim] extra), "
            "or --vertical-fov-deg F --sim-pitch-deg P"
        )
    return SimView("custom", args.vertical_fov_deg, args.sim_pitch_deg)


def run_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lnn_control.atomic import atomic_write_json, atomic_write_text
    from lnn_control.camera.chessboard import Board, calibrate_chessboard
    from lnn_control.camera.model import (
        CalibrationQuality,
        CameraCalibration,
        calibration_to_dict,
        save_calibration,
    )
    from lnn_control.camera.rectify import FrameRectifier

    board = Board.parse(args.board, args.square_mm)
    view = _sim_view(args)
    launch_text = None
    if args.launch:  # a launch file that cannot take the reference fails before anything is written
        from lnn_control.camera.launch_edit import plan_calibration_reference

        launch_text = plan_calibration_reference(Path(args.launch), args.out)
    source = Path(args.images)
    result = calibrate_chessboard(source, board, min_views=args.min_views, fix_k3=args.fix_k3,
                                  video_step=args.video_step)
    quality = CalibrationQuality(
        rms_px=result.rms_px, worst_view_rms_px=max(result.view_rms_px), views_used=len(result.used),
        views_tried=result.views_tried, board=str(board), square_mm=board.square_mm, source=str(source),
    )
    calibration = CameraCalibration(result.intrinsics, view, args.mount_pitch_deg, quality)
    intr = result.intrinsics
    print(f"board {board} found in {result.views_found} of {result.views_tried} views; {len(result.used)} used")
    print(f"image {intr.image_width}x{intr.image_height} px  fx {intr.fx:.2f}  fy {intr.fy:.2f}  "
          f"cx {intr.cx:.2f}  cy {intr.cy:.2f}  (pinhole vertical FOV {intr.vertical_fov_deg():.1f} deg)")
    print("distortion k1 k2 p1 p2 k3: " + " ".join(f"{v:+.5f}" for v in intr.distortion))
    print(f"RMS reprojection error {result.rms_px:.3f} px (worst view {max(result.view_rms_px):.3f} px)")
    if result.rms_px > 1.0:
        print("warning: RMS above 1 px: blurred or mis-detected views; check the worst views and recalibrate")
    rectifier = FrameRectifier(calibration, (view.image_height, view.image_width))
    print(f"simulator view ({view.task}): {rectifier.describe()}")
    save_calibration(calibration, args.out)
    print(f"wrote {args.out}")
    if args.launch:
        if launch_text is not None:
            atomic_write_text(args.launch, launch_text)
        print(f"{args.launch}: robot.camera.calibration {'already names' if launch_text is None else 'now points at'} "
              f"{args.out}")
    if args.json:
        atomic_write_json(args.json, {
            **calibration_to_dict(calibration), "views_used": list(result.used), "views_missed": list(result.missed),
            "view_rms_px": list(result.view_rms_px), "coverage": rectifier.maps.coverage,
        })
    return 0


def _preview_inputs(args: argparse.Namespace) -> tuple[CameraCalibration, np.ndarray]:
    """The calibration (with any mount pitch override) and one BGR camera frame."""
    from dataclasses import replace
    from pathlib import Path

    from lnn_control.camera.model import CalibrationRef
    from lnn_control.camera.preview import read_frame

    if bool(args.launch) == bool(args.calibration):
        raise CommandError("give --launch FILE (with robot.camera.calibration) or --calibration CALIB.yaml")
    camera = None
    if args.launch:
        from lnn_control.runtime.launch import load_launch

        camera = load_launch(args.launch).robot.camera
        if camera is None or camera.calibration is None:
            raise CommandError(f"{args.launch} has no robot.camera.calibration; run 'lnn-control camera calibrate "
                               f"... --launch {args.launch}' or pass --calibration")
        ref = camera.calibration
    else:
        ref = CalibrationRef(args.calibration)
    if args.mount_pitch_deg is not None:
        ref = replace(ref, mount_pitch_deg=args.mount_pitch_deg)
    calibration = ref.load()
    if args.input:
        return calibration, read_frame(Path(args.input), args.frame)
    if camera is None:
        raise CommandError("--input IMAGE_OR_VIDEO is needed with --calibration")
    if camera.kind == "video_file":
        return calibration, read_frame(Path(str(camera.source)), args.frame)
    import cv2

    from lnn_control.runtime.hardware.cameras import OpenCVCamera

    with OpenCVCamera(camera.source, camera.width, camera.height, camera.fps) as live:
        return calibration, cv2.cvtColor(live.read().image, cv2.COLOR_RGB2BGR)


def run_preview(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_bytes
    from lnn_control.camera.preview import compose_preview
    from lnn_control.camera.rectify import FrameRectifier
    from lnn_control.camera.sim_view import render_sim_frame
    from lnn_control.extras import require

    require("gymnasium", "lnn-control camera preview (the simulator frame)")
    if args.scale < 1:
        raise CommandError(f"--scale must be >= 1, got {args.scale}")
    calibration, frame = _preview_inputs(args)
    view = calibration.sim_view
    task = args.task or view.task
    if task == "custom":
        raise CommandError("the calibration matches a custom view, not a task: pass --task lane-keeping|drone-forest")
    if view.task not in ("custom", task):
        raise CommandError(f"the calibration matches the {view.task} camera; --task {task} would compare other cameras")
    rectifier = FrameRectifier(calibration, (view.image_height, view.image_width))
    sim = render_sim_frame(task, args.backend, args.seed)
    image = compose_preview(frame, rectifier, sim, f"simulator {task} ({args.backend}, seed {args.seed})", args.scale)
    import cv2

    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise CommandError("OpenCV could not encode the preview as PNG")
    atomic_write_bytes(args.out, png.tobytes())
    print(rectifier.describe())
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]} px)")
    return 0


def run_latency(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.camera.latency import latency_report

    report = latency_report(args.log, args.camera_latency_ms / 1e3)
    print("\n".join(report.lines()))
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0
