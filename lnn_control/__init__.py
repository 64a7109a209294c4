"""lnn-control: closed-loop robot control with liquid neural networks.

Importing this package is cheap: no torch, simulator or OpenCV import happens until a
submodule that needs it is used (``lnn_control.nn``, ``lnn_control.envs``, ...).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
