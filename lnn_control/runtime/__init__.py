"""Real-time control loop, robot interface, hardware adapters, run logs.

- ``robot``: the :class:`Robot` interface (connect / read / write / stop / disconnect).
- ``loop``: :class:`ControlLoop` - fixed rate, absolute deadlines, measured dt, statistics.
- ``safety``: command limiter, stale-frame watchdog, latched e-stop, event log.
- ``cameras``: OpenCV device / URL / GStreamer camera and video-file camera.
- ``sim_robot``: a Gymnasium env as a robot ("sim in the loop").
- ``serial_car`` / ``mavlink_drone``: hardware robots (with emulators for tests).
- ``runlog`` / ``replay``: MCAP run logs (Foxglove) and offline replay of a policy on them.
- ``launch`` / ``runner``: launch-file dataclasses and wiring a run together; ``bench``: timings.

Nothing here imports torch or a simulator at import time.
"""
