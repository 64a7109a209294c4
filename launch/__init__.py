"""Launch files (YAML): what runs with what — task, backend, policy, robot, rates, limits.

Shipped as package data; read with ``importlib.resources.files("lnn_control.launch")``.
"""
