"""Human input devices for teleoperation and takeover: the terminal keyboard and evdev gamepads.

Robot-independent sources of commands (:class:`~lnn_control.runtime.core.arbiter.HumanInput`) that
reach the robot through the same safety layer as a policy. Heavy or optional imports (``evdev``,
``termios``) happen when a device is opened, never here.
"""
