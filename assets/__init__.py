"""Simulation assets (MJCF, URDF, meshes, textures), shipped as package data.

Read them with ``importlib.resources.files("lnn_control.assets")``, never by a path relative
to the repository.
"""
