"""Demonstration datasets on disk: one crash-safe file per completed episode."""
