"""Run logs: crash-safe MCAP files Foxglove opens (:mod:`.runlog`) and replaying them through a
policy (:mod:`.replay`)."""
