"""The worlds: Gymnasium environments for lane keeping and drone flight (``lnn_control.envs``).

This package never imports torch or ``lnn_control.policies``; simulators are imported only
when an environment is created.
"""

from gymnasium.envs.registration import register, registry

LANE_KEEPING_ID = "lnn_control/LaneKeeping-v0"
DRONE_FOREST_ID = "lnn_control/DroneForest-v0"

if LANE_KEEPING_ID not in registry:
    # entry point as a string: the env module (and its simulator) is imported only by gym.make
    register(id=LANE_KEEPING_ID, entry_point="lnn_control.envs.lane_keeping.env:LaneKeepingEnv")

if DRONE_FOREST_ID not in registry:
    register(id=DRONE_FOREST_ID, entry_point="lnn_control.envs.drone_forest.env:DroneForestEnv")
