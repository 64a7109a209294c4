"""Real-time control loop, robot interface, hardware adapters, run logs."""
