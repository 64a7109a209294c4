"""The worlds: Gymnasium environments for lane keeping and drone flight (``lnn_control.envs``).

This package never imports torch or ``lnn_control.policies``; simulators are imported only
when an environment is created.
"""
