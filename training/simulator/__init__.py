"""Camera-view simulator: turns a clean catalogue image into what a visitor's phone sees.

numpy + OpenCV only (no torch): used by training (positives), export (threshold
calibration), the demo site and tests.
"""
from .backgrounds import random_wall, wall_label
from .camera_view import CameraViewSimulator, SimulatorConfig
from .clutter import collage

__all__ = ["CameraViewSimulator", "SimulatorConfig", "collage", "random_wall", "wall_label"]
