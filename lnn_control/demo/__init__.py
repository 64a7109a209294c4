"""Demos: run a shipped policy in a simulator and show or record what it does."""
