"""Behaviour cloning of perception + liquid-network policies on episode datasets."""
