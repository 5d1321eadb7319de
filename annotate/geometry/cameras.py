"""Pinhole cameras with OpenCV/Panoptic lens distortion, vectorised over cameras.

Conventions (docs/conventions.md): ``x_cam = R_cam_world @ x_world + t_cam_world`` with x right,
y down, z forward; world units are centimetres; distortion is OpenCV's 5-parameter model
``(k1, k2, p1, p2, k3)``, identical to Panoptic's ``projectPoints`` and
``cv2.projectPoints``. This is the one projection function of the project.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraRig:
    """C calibrated cameras as stacked arrays.

    names: (C,) camera names, e.g. ``"00_03"``.
    K: (C, 3, 3) intrinsics in pixels.
    dist: (C, 5) distortion ``(k1, k2, p1, p2, k3)``.
    R_cam_world: (C, 3, 3) rotation world -> camera.
    t_cam_world: (C, 3) translation world -> camera, cm.
    image_size: (C, 2) ``(width, height)`` in pixels.
    """

    names: tuple[str, ...]
    K: np.ndarray
    dist: np.ndarray
    R_cam_world: np.ndarray
    t_cam_world: np.ndarray
    image_size: np.ndarray

    def __post_init__(self) -> None:
        c = len(self.names)
        shapes = {"K": (c, 3, 3), "dist": (c, 5), "R_cam_world": (c, 3, 3),
                  "t_cam_world": (c, 3), "image_size": (c, 2)}
        for attr, shape in shapes.items():
            value = getattr(self, attr)
            if np.shape(value) != shape:
                raise ValueError(f"CameraRig.{attr} must have shape {shape}, got {np.shape(value)}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def centres_world(self) -> np.ndarray:
        """(C, 3) camera centres in world coordinates, cm: ``-R^T t``."""
        return -np.einsum("cji,cj->ci", self.R_cam_world, self.t_cam_world)

    def subset(self, indices) -> "CameraRig":
        """The cameras at ``indices`` (a list of ints), in that order."""
        idx = np.asarray(indices, dtype=int)
        return CameraRig(tuple(self.names[i] for i in idx), self.K[idx], self.dist[idx],
                         self.R_cam_world[idx], self.t_cam_world[idx], self.image_size[idx])

    def world_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """Points (..., 3) world -> (C, ..., 3) in each camera's coordinates, cm."""
        p = np.asarray(points_world, dtype=np.float64)
        extra = (None,) * (p.ndim - 1)
        R = self.R_cam_world[(slice(None),) + extra]            # (C, 1.., 3, 3)
        t = self.t_cam_world[(slice(None),) + extra]            # (C, 1.., 3)
        return np.einsum("...ij,...j->...i", R, p[None]) + t

    def project_world(self, points_world: np.ndarray) -> np.ndarray:
        """Points (..., 3) world -> (C, ..., 2) pixels, distortion applied.

        Points behind a camera (z <= 0) project to NaN.
        """
        pc = self.world_to_camera(points_world)
        extra = (None,) * (pc.ndim - 2)
        return project_camera_points(pc, self.K[(slice(None),) + extra], self.dist[(slice(None),) + extra])


def project_camera_points(points_cam: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Project camera-frame points to pixels with distortion.

    points_cam: (..., 3) in cm; K: (..., 3, 3) and dist: (..., 5), broadcastable against
    the leading dimensions. Returns (..., 2) pixels; NaN where z <= 0 (behind the camera).
    Skew ``K[0, 1]`` is applied as Panoptic does (OpenCV ignores it; real calibrations
    have it at 0).
    """
    p = np.asarray(points_cam, dtype=np.float64)
    u, v = project_camera_xyz(p[..., 0], p[..., 1], p[..., 2], K, dist)
    return np.stack([u, v], axis=-1)


def project_camera_xyz(x: np.ndarray, y: np.ndarray, z: np.ndarray, K: np.ndarray,
                       dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``project_camera_points`` on separate coordinate arrays: the vectorised kernel.

    x, y, z: (...) camera coordinates; K (..., 3, 3), dist (..., 5) broadcastable to them.
    Returns pixel arrays ``(u, v)``, NaN where z <= 0. Working on planar component arrays
    avoids strided (..., 3) access, which is several times slower on large batches.
    """
    K = np.asarray(K, dtype=np.float64)
    dist = np.asarray(dist, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = np.where(z > 0, 1.0 / z, np.nan)
    xn, yn = x * inv_z, y * inv_z
    k1, k2, p1, p2, k3 = (dist[..., i] for i in range(5))
    xx, yy, xy = xn * xn, yn * yn, xn * yn
    r2 = xx + yy
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = xn * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * xx)
    yd = yn * radial + p1 * (r2 + 2.0 * yy) + 2.0 * p2 * xy
    u = K[..., 0, 0] * xd + K[..., 0, 1] * yd + K[..., 0, 2]
    v = K[..., 1, 1] * yd + K[..., 1, 2]
    return u, v


def max_monotonic_radius2(dist: np.ndarray, limit: float = 4.0) -> np.ndarray:
    """Largest squared normalised radius where the radial model is still monotonic.

    Beyond it the polynomial folds back and far-away points would land inside the image;
    points past it must be treated as outside the lens model. dist: (..., 5).
    Returns (...,) values of r^2, capped at ``limit``.
    """
    dist = np.asarray(dist, dtype=np.float64)
    r2 = np.linspace(0.0, limit, 4001)
    k1, k2, k3 = dist[..., 0:1], dist[..., 1:2], dist[..., 4:5]
    # d/dr [r (1 + k1 r^2 + k2 r^4 + k3 r^6)] = 1 + 3 k1 r^2 + 5 k2 r^4 + 7 k3 r^6
    slope = 1.0 + r2 * (3.0 * k1 + r2 * (5.0 * k2 + r2 * 7.0 * k3))
    bad = slope <= 0.0
    last_good = np.where(bad.any(axis=-1), np.maximum(bad.argmax(axis=-1) - 1, 0), len(r2) - 1)
    return r2[last_good]


def undistort_pixels(pixels: np.ndarray, K: np.ndarray, dist: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Invert the distortion for one camera: pixels (N, 2) -> ideal normalised (N, 2).

    Fixed-point iteration as in OpenCV's ``undistortPoints``; K: (3, 3), dist: (5,).
    """
    px = np.asarray(pixels, dtype=np.float64)
    yd = (px[:, 1] - K[1, 2]) / K[1, 1]
    xd = (px[:, 0] - K[0, 2] - K[0, 1] * yd) / K[0, 0]
    k1, k2, p1, p2, k3 = dist
    x, y = xd.copy(), yd.copy()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return np.stack([x, y], axis=-1)
