"""A real robot's camera made to look like the simulator's.

- :mod:`.model`: the saved numbers (intrinsics, distortion, the simulator view to match) and the
  launch file's ``robot.camera.calibration`` section; YAML, validated strictly.
- :mod:`.rectify`: undistortion + pitch correction + crop/resize to the simulator's vertical field
  of view, as remap tables computed once (numpy + OpenCV only: the robot's run-time path).
- :mod:`.chessboard`: OpenCV chessboard calibration from a folder of images or a video.
- :mod:`.sim_view`: the simulator camera of a task, read from the env's config dataclasses
  (needs the ``[sim]`` extra; calibration and preview time only).
- :mod:`.preview`: a PNG of what the policy sees next to a simulator frame.
- :mod:`.launch_edit`: point a launch file's camera at a calibration file.
- :mod:`.latency`: camera→command latency of a run log and the matching ``delay`` condition.

Nothing here is imported by ``import lnn_control``; the run-time modules import neither torch nor
a simulator.
"""
