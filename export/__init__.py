"""Turning a trained (or off-the-shelf) descriptor network into a deployable bundle."""
