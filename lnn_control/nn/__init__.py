"""Liquid neural networks: wirings, LTC and CfC cells, perception CNN, baselines."""
