"""The real-time runtime: a policy driving a robot, simulated or physical, in a fixed-rate loop.

Subpackages, one job each (imports point down this list, never up):

- ``launch`` / ``session`` / ``teleop`` (modules): the launch-file schema, wiring a run together
  from it (policy engine, robot, pre-flight checks, loop, run log), and driving it by hand.
- ``inputs``: human input devices (terminal keyboard, evdev gamepad) and the operator's status line.
- ``hardware``: physical robots and sensors (cameras, serial RC car, MAVLink drone).
- ``sim``: simulated robots (an env stepped in ``read()``, or in its own process).
- ``emulators``: the car's microcontroller and a PX4-like autopilot, for tests and trying it out.
- ``logs``: MCAP run logs and replay.
- ``core``: the ``Robot`` interface, the control loop, the arbiter (policy / human / stop) and the
  safety layer.

Nothing here imports torch or a simulator at import time.
"""
