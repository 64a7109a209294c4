"""Lane keeping for a 1/10-scale car: roads, car parameters, task logic, expert, backends, env.

``LaneKeepingEnv`` (``lnn_control/LaneKeeping-v0``) lives in :mod:`.env`; simulators are imported
only by the backend modules, when a backend is chosen.
"""
