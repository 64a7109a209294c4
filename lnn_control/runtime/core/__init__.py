"""The loop core: the :class:`~.robot.Robot` interface every robot implements, the fixed-rate
control loop, and the safety layer (limiter, frame watchdog, latched e-stop). Imports no robot."""
