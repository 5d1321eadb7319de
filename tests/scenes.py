"""Hand-made scenes for the renderer and visibility tests: cameras looking at a point and
heads facing a point, in a world whose y axis points UP (unlike Panoptic's)."""
from __future__ import annotations

import numpy as np

from annotate.geometry.cameras import CameraRig

UP = np.array([0.0, 1.0, 0.0])


def look_at(centre, target) -> np.ndarray:
    """R_cam_world of a camera at ``centre`` looking at ``target`` with world y up in the image."""
    z = np.asarray(target, float) - np.asarray(centre, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, UP)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def make_rig(centres, targets, size=(1920, 1080), f=1450.0, dist=(-0.25, 0.18, 0.0005, 0.0008, -0.04),
             principal_offset=(0.0, 0.0), first_index=0) -> CameraRig:
    """Cameras at ``centres`` (C, 3) looking at ``targets``, named 00_<first_index + i>.
    The principal point sits at the image centre plus ``principal_offset`` px."""
    centres = np.asarray(centres, float)
    R = np.stack([look_at(c, t) for c, t in zip(centres, targets)])
    t = -np.einsum("cij,cj->ci", R, centres)
    K = np.array([[f, 0.0, size[0] / 2 + principal_offset[0]], [0.0, f, size[1] / 2 + principal_offset[1]],
                  [0.0, 0.0, 1.0]])
    n = len(centres)
    return CameraRig(tuple(f"00_{i + first_index:02d}" for i in range(n)), np.repeat(K[None], n, 0),
                     np.repeat(np.asarray(dist, float)[None], n, 0), R, t, np.repeat(np.array([size]), n, 0))


def facing(position, toward) -> np.ndarray:
    """R_world_head turning the face (head +z) toward ``toward``, head y close to world up."""
    z = np.asarray(toward, float) - np.asarray(position, float)
    z /= np.linalg.norm(z)
    y = UP - (UP @ z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z], axis=1)
