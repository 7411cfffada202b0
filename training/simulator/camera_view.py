"""Composing the parts into one random visitor's view, with tunable probabilities."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.image.image_io import MIN_SIDE

from . import geometry as geo
from . import photometric as ph
from .clutter import collage


@dataclass
class SimulatorConfig:
    p_closeup: float = 0.35        # crop a detail (area fraction >= closeup_min_area)
    closeup_min_area: float = 0.2
    p_on_wall: float = 0.35        # whole object smaller inside a wall/frame
    wall_min_fill: float = 0.2     # visitors' frames show the work at 20-60% of their area
    p_clutter: float = 0.5         # ... and the wall is a cluttered scene (when clutter images are given)
    p_perspective: float = 0.7
    perspective: float = 0.15
    p_tilt: float = 0.3            # a strong out-of-plane view (standing to the side) ...
    max_tilt: float = 45.0         # ... up to this many degrees
    anisotropic: tuple = (0.75, 1.25)
    p_rotate: float = 0.5
    max_rotation: float = 10.0
    p_flip: float = 0.0            # artworks are rarely seen mirrored; opt in
    p_colour: float = 0.8
    colour_strength: float = 0.15
    p_exposure: float = 0.8
    brightness: float = 0.3
    gamma: float = 1.5
    p_glare: float = 0.3
    p_reflection: float = 0.15     # room reflected on glass (when clutter images are given)
    p_occlusion: float = 0.1
    p_motion_blur: float = 0.2
    motion_len: int = 9
    p_defocus: float = 0.2
    defocus_sigma: float = 2.0
    p_noise: float = 0.4
    noise_sigma: float = 8.0
    p_jpeg: float = 0.5
    jpeg_min_quality: int = 40
    output_longest: int = 512

    @classmethod
    def mild(cls) -> "SimulatorConfig":
        """Weaker views, e.g. the positives of training triplets."""
        return cls(p_closeup=0.2, closeup_min_area=0.5, p_on_wall=0.2, wall_min_fill=0.5, perspective=0.08,
                   p_tilt=0.0, p_glare=0.1, p_reflection=0.0, p_occlusion=0.0, p_motion_blur=0.1, p_defocus=0.1)


class CameraViewSimulator:
    """``sim(img)`` returns a random visitor's view of an RGB uint8 image (deterministic per seed).

    ``clutter``: optional pictures (e.g. the site's *other* references) that surroundings and
    reflections are made of; without it, walls are plain and glass reflects nothing."""

    def __init__(self, config: SimulatorConfig | None = None, seed: int | None = None, clutter=None):
        self.config = config or SimulatorConfig()
        self.rng = np.random.default_rng(seed)
        self.clutter = list(clutter) if clutter is not None else []

    def _scene(self, r: np.random.Generator, exclude=None) -> np.ndarray | None:
        pool = [c for c in self.clutter if c is not exclude]
        if not pool:
            return None
        return collage(r, [pool[int(i)] for i in r.integers(0, len(pool), 3)], 360, 480)

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        c, r = self.config, rng or self.rng
        source = img
        img = geo.limit_size(img, 2 * c.output_longest)
        u = r.random()
        if u < c.p_closeup:
            img = geo.crop(r, img, c.closeup_min_area)
        elif u < c.p_closeup + c.p_on_wall:
            scene = self._scene(r, source) if r.random() < c.p_clutter else None
            img = geo.place_on_wall(r, img, c.wall_min_fill, scene)
        if r.random() < c.p_flip:
            img = img[:, ::-1]
        img = geo.anisotropic_scale(r, img, *c.anisotropic)
        if r.random() < c.p_tilt:
            img = geo.tilt(r, img, c.max_tilt, self._scene(r, source) if self.clutter else None)
        elif r.random() < c.p_perspective:
            img = geo.perspective(r, img, c.perspective)
        if r.random() < c.p_rotate:
            img = geo.rotate(r, img, c.max_rotation)
        img = geo.limit_size(np.ascontiguousarray(img), c.output_longest)
        if r.random() < c.p_occlusion:
            img = ph.occlude(r, img)
        if r.random() < c.p_glare:
            img = ph.glare(r, img)
        if self.clutter and r.random() < c.p_reflection:
            img = ph.reflection(r, img, self._scene(r, source))
        if r.random() < c.p_colour:
            img = ph.colour_cast(r, img, c.colour_strength)
        if r.random() < c.p_exposure:
            img = ph.exposure(r, img, c.brightness, c.gamma)
        if r.random() < c.p_motion_blur:
            img = ph.motion_blur(r, img, c.motion_len)
        elif r.random() < c.p_defocus:
            img = ph.defocus(r, img, c.defocus_sigma)
        if r.random() < c.p_noise:
            img = ph.sensor_noise(r, img, c.noise_sigma)
        if r.random() < c.p_jpeg:
            img = ph.jpeg(r, img, c.jpeg_min_quality)
        return np.ascontiguousarray(geo.at_least(img, MIN_SIDE))
