"""Stand-ins for the real peers, as strict as they are: the RC car's microcontroller on a
pseudo-terminal (``python -m lnn_control.runtime.emulators.car``) and a PX4-like autopilot on UDP
(``python -m lnn_control.runtime.emulators.autopilot``)."""
