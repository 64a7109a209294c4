"""Closed-loop evaluation of policies on held-out seeds, per domain-shift condition."""
