"""Drone-forest world: fly a quadrotor through a procedural forest to a target from a front camera."""
