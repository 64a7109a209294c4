"""The brains (``lnn_control.policies``): policy architectures, bundles and shipped policies."""
