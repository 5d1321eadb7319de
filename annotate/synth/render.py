"""CPU ray-casting renderer of the synthetic Panoptic-format sequence (videos: ``annotate.synth.videos``).

One open3d ``RaycastingScene`` per frame holds every person's posed head mesh (geometry i is
``people[i]``; the casting core is ``annotate.head.raycast.WorldScene``). Rays are cast
only for the pixels inside each head's projected bound (the box of the projected
``HeadMesh.bounding_polytope``, with distortion); every other pixel is background. Each
ray honours the lens model exactly: the pixel centre is undistorted with the project's
``undistort_pixels`` (cached per camera, see ``PixelDirectionMap``), rotated into the world
with ``R_cam_world^T`` and started at the camera centre, so a rendered pixel and
``project_camera_points`` of the surface point it shows agree to the undistortion's precision.

Shading: region colour x (ambient + Lambert) with a light near each camera, interpolated from
the vertices (Gouraud), which costs a few gathers per pixel. Landmark visibility is
``annotate.head.visibility`` (``landmark_visibility`` here adapts it to ``RenderPerson``).

Pixel convention: OpenCV's, pixel (col, row) has its centre at (u, v) = (col, row).
Units: world in cm; the head frame as in docs/conventions.md.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from annotate.geometry.cameras import (CameraRig, max_monotonic_radius2, project_camera_points,
                                       undistort_pixels)
from annotate.head import visibility
from annotate.head.head_mesh import (BROW, EYE_WHITE, HAIR, IRIS, LIPS, NOSE, SKIN,
                                       HeadMesh)
from annotate.head.raycast import HeadFrameCaster, RayHits, WorldScene

NUM_REGIONS = 7
# Background: a vertical gradient from the top colour to the bottom colour (grey dome).
DEFAULT_BACKGROUND = ((112, 118, 128), (58, 60, 66))
AMBIENT = 0.35
DIFFUSE = 0.65
LIGHT_OFFSET_CAM_CM = np.array([30.0, -50.0, 0.0])       # right of and above each camera
BOX_PADDING_PX = 2                                        # covers edge curvature under distortion
PIXEL_MAP_TILE = 32
PIXEL_MAP_CACHE_SIZE = 64                                 # cameras (lazily filled, <= 24 MB each at 1080p)


# ------------------------------------------------------------------------------ data types

def make_palette(skin_rgb: Sequence[float] = (222, 170, 136),
                 hair_rgb: Sequence[float] = (52, 36, 26)) -> dict[int, np.ndarray]:
    """Region code -> RGB uint8 (3,): the given skin and hair, the features derived from them."""
    skin = np.asarray(skin_rgb, dtype=np.float64)
    hair = np.asarray(hair_rgb, dtype=np.float64)
    colours = {
        SKIN: skin,
        HAIR: hair,
        EYE_WHITE: np.array([236.0, 234.0, 228.0]),
        IRIS: np.array([38.0, 28.0, 24.0]),
        BROW: 0.6 * hair + 0.4 * np.array([30.0, 22.0, 18.0]),
        LIPS: skin * np.array([0.82, 0.52, 0.52]),
        NOSE: skin * np.array([1.0, 0.95, 0.93]),             # a touch redder than the cheeks
    }
    return {k: np.clip(np.round(v), 0, 255).astype(np.uint8) for k, v in colours.items()}


def random_palette(rng: np.random.Generator) -> dict[int, np.ndarray]:
    """A palette with a skin tone and a hair colour drawn from plausible ranges."""
    tone = rng.uniform(0.0, 1.0)
    skin = (1.0 - tone) * np.array([236.0, 192.0, 160.0]) + tone * np.array([120.0, 80.0, 56.0])
    hair = rng.choice(np.array([[30, 24, 20], [58, 40, 28], [96, 64, 38], [150, 112, 64],
                                [120, 118, 116], [20, 18, 18]], dtype=np.float64))
    return make_palette(skin * rng.uniform(0.95, 1.05), hair)


@dataclass(eq=False)
class RenderPerson:
    """One posed head: ``x_world = scale * R_world_head @ x_head + t_world_head`` (cm).

    t_world_head is the world position of the head centre (the head-frame origin).
    palette: region code -> RGB uint8 (3,); missing regions fall back to ``make_palette()``.
    """

    person_id: int
    mesh: HeadMesh
    R_world_head: np.ndarray
    t_world_head: np.ndarray
    scale: float = 1.0
    palette: dict = field(default_factory=make_palette)

    def to_world(self, points_head: np.ndarray) -> np.ndarray:
        """Head-frame points (..., 3) -> world (..., 3), cm."""
        R = np.asarray(self.R_world_head, dtype=np.float64)
        return self.scale * np.asarray(points_head) @ R.T + np.asarray(self.t_world_head, dtype=np.float64)

    def vertices_world(self) -> np.ndarray:
        """(V, 3) posed vertices in the world, cm."""
        return self.mesh.transformed(self.R_world_head, self.t_world_head, self.scale)

    def palette_array(self) -> np.ndarray:
        """(NUM_REGIONS, 3) float32 RGB per region code."""
        default = make_palette()
        return np.stack([np.asarray(self.palette.get(r, default[r]), dtype=np.float32)
                         for r in range(NUM_REGIONS)])


@dataclass(eq=False)
class RenderedView:
    """One camera's rendering of a frame.

    image: (H, W, 3) uint8 RGB.
    person_id: (H, W) int16, ``RenderPerson.person_id`` of the visible head, -1 background.
    triangle_id: (H, W) int32, index into that person's ``mesh.triangles``, -1 background.
    """

    camera_name: str
    image: np.ndarray
    person_id: np.ndarray
    triangle_id: np.ndarray


# ---------------------------------------------------------------------------- ray casting

class FrameScene(WorldScene):
    """Every person's posed mesh of one frame in one RaycastingScene (geometry i is
    ``people[i]``, ``RayHits.person_index`` indexes ``people``), plus shading tables.

    nthreads: threads open3d may use to build and cast (0 = all cores; 1 inside workers
    that are already parallel).
    """

    def __init__(self, people: Sequence[RenderPerson], nthreads: int = 0):
        self.people = list(people)
        super().__init__([p.vertices_world() for p in self.people],
                         [p.mesh.triangles for p in self.people], nthreads)
        self._build_shading_tables()

    def _build_shading_tables(self) -> None:
        """Concatenate the people's meshes so shading is one gather chain for all pixels."""
        meshes = [p.mesh for p in self.people]
        n_vert = np.array([len(m.vertices) for m in meshes], dtype=np.int64)
        n_tri = np.array([len(m.triangles) for m in meshes], dtype=np.int64)
        self.vertex_offset = np.concatenate([[0], np.cumsum(n_vert)[:-1]]).astype(np.int64)
        self.triangle_offset = np.concatenate([[0], np.cumsum(n_tri)[:-1]]).astype(np.int64)
        if not meshes:
            self.triangles = np.zeros((0, 3), np.int64)
            self.colour_index = np.zeros(0, np.int64)
            self.normals_head = np.zeros((0, 3), np.float32)
            self.vertex_person = np.zeros(0, np.int64)
            self.palettes = np.zeros((0, 3), np.float32)
            return
        self.triangles = np.concatenate([m.triangles + o for m, o in zip(meshes, self.vertex_offset)])
        self.colour_index = np.concatenate([m.triangle_region.astype(np.int64) + NUM_REGIONS * i
                                            for i, m in enumerate(meshes)])
        self.normals_head = np.concatenate([m.vertex_normals for m in meshes]).astype(np.float32)
        self.vertex_person = np.repeat(np.arange(len(meshes)), n_vert)
        self.palettes = np.concatenate([p.palette_array() for p in self.people])   # (P*7, 3)
        self.R_world_head = np.stack([np.asarray(p.R_world_head, np.float64) for p in self.people])
        self.centres_world = np.stack([np.asarray(p.t_world_head, np.float64) for p in self.people])

    def shade(self, hits: RayHits, light_world: np.ndarray) -> np.ndarray:
        """(N, 3) uint8 RGB of hits (every ray must have hit): region colour x
        (AMBIENT + DIFFUSE x Lambert toward ``light_world`` (3,) cm).

        The light is taken as directional per person (toward it from the head centre; the
        light is metres away, so the error across a head is a few degrees) and the Lambert
        term is computed at the vertices and interpolated (Gouraud).
        """
        to_light = light_world[None, :] - self.centres_world                 # (P, 3)
        to_light /= np.linalg.norm(to_light, axis=1, keepdims=True)
        light_head = np.einsum("pji,pj->pi", self.R_world_head, to_light).astype(np.float32)
        lambert_v = np.einsum("vi,vi->v", self.normals_head, light_head[self.vertex_person])
        np.clip(lambert_v, 0.0, 1.0, out=lambert_v)
        tri = self.triangle_offset[hits.person_index] + hits.triangle           # global ids
        corners = self.triangles[tri]                                            # (N, 3)
        u, v = hits.uv[:, 0], hits.uv[:, 1]
        lambert = (lambert_v[corners[:, 0]] * (1.0 - u - v) + lambert_v[corners[:, 1]] * u
                   + lambert_v[corners[:, 2]] * v)
        rgb = self.palettes[self.colour_index[tri]] * (AMBIENT + DIFFUSE * lambert)[:, None]
        return (rgb + 0.5).astype(np.uint8)                                     # <= 255 by design


# ----------------------------------------------------------------------- pixel selection

class PixelDirectionMap:
    """Pixel centre -> world ray direction ``R_cam_world^T (x, y, 1)`` of one camera, where
    (x, y) is the pixel's ideal normalised position from ``undistort_pixels``.

    The (H, W, 3) float32 map is filled lazily, PIXEL_MAP_TILE squares at a time, and reused
    across frames (the rig does not move): undistortion (20 fixed-point iterations) would
    otherwise cost as much as the ray casting. Untouched tiles are never written, so the OS
    does not commit their memory; at most 24 MB per 1080p camera.
    """

    def __init__(self, K: np.ndarray, dist: np.ndarray, R_cam_world: np.ndarray, width: int, height: int):
        self.K, self.dist = np.asarray(K, np.float64), np.asarray(dist, np.float64)
        self.R = np.asarray(R_cam_world, np.float64)
        self.width, self.height = int(width), int(height)
        self._map = np.empty((self.height, self.width, 3), dtype=np.float32)
        t = PIXEL_MAP_TILE
        self._done = np.zeros((-(-self.height // t), -(-self.width // t)), dtype=bool)

    def window(self, col0: int, row0: int, col1: int, row1: int) -> np.ndarray:
        """(row1-row0, col1-col0, 3) world directions of the pixels in the half-open box."""
        t = PIXEL_MAP_TILE
        tr0, tr1 = row0 // t, (row1 - 1) // t + 1
        tc0, tc1 = col0 // t, (col1 - 1) // t + 1
        missing = np.argwhere(~self._done[tr0:tr1, tc0:tc1]) + [tr0, tc0]
        if len(missing):
            self._fill(missing)
        return self._map[row0:row1, col0:col1]

    def _fill(self, tiles: np.ndarray) -> None:
        """Compute every pixel of ``tiles`` (M, 2) (tile row, tile col) in one call."""
        t = PIXEL_MAP_TILE
        spans = []
        for tr, tc in tiles:
            r0, c0 = tr * t, tc * t
            r1, c1 = min(r0 + t, self.height), min(c0 + t, self.width)
            cols, rows = np.meshgrid(np.arange(c0, c1), np.arange(r0, r1))
            spans.append((r0, r1, c0, c1, np.stack([cols.ravel(), rows.ravel()], axis=1)))
        xy = undistort_pixels(np.concatenate([s[4] for s in spans]).astype(np.float64), self.K, self.dist)
        directions = xy @ self.R[:2] + self.R[2]            # (R^T d)^T = x R[0] + y R[1] + R[2]
        start = 0
        for r0, r1, c0, c1, pix in spans:
            n = len(pix)
            self._map[r0:r1, c0:c1] = directions[start:start + n].reshape(r1 - r0, c1 - c0, 3)
            start += n
        self._done[tiles[:, 0], tiles[:, 1]] = True


_PIXEL_MAPS: "OrderedDict[tuple, PixelDirectionMap]" = OrderedDict()


def pixel_direction_map(rig: CameraRig, camera_index: int) -> PixelDirectionMap:
    """The process-wide cached map of a camera (keyed by its calibration and image size;
    least recently used maps beyond PIXEL_MAP_CACHE_SIZE are dropped)."""
    K, dist, R = (np.asarray(a[camera_index], np.float64) for a in (rig.K, rig.dist, rig.R_cam_world))
    width, height = (int(v) for v in rig.image_size[camera_index])
    key = (K.tobytes(), dist.tobytes(), R.tobytes(), width, height)
    pixel_map = _PIXEL_MAPS.pop(key, None) or PixelDirectionMap(K, dist, R, width, height)
    _PIXEL_MAPS[key] = pixel_map                                   # most recently used last
    while len(_PIXEL_MAPS) > PIXEL_MAP_CACHE_SIZE:
        _PIXEL_MAPS.popitem(last=False)
    return pixel_map


def head_pixel_boxes(rig: CameraRig, people: Sequence[RenderPerson]) -> np.ndarray:
    """(C, P, 4) int64 half-open pixel boxes ``(col0, row0, col1, row1)`` bounding each head's
    image in each camera; empty boxes have col0 == col1.

    The box is that of the projected points of the head's bounding polytope (convex, so
    its image under a pinhole is the hull of its projected vertices; points along its edges
    follow the lens's bending of them to well under BOX_PADDING_PX). A head reaching behind the camera plane or past
    the lens model's monotonic radius, where projection is unbounded or folds, gets the
    whole image.
    """
    C, P = len(rig), len(people)
    sizes = rig.image_size.astype(np.int64)
    boxes = np.zeros((C, P, 4), dtype=np.int64)
    if P == 0:
        return boxes
    poly_world = np.stack([p.to_world(p.mesh.bounding_polytope) for p in people])  # (P, K, 3)
    pc = rig.world_to_camera(poly_world)                                          # (C, P, K, 3)
    z = pc[..., 2]
    all_front = (z > 1e-6).all(axis=-1)
    any_front = (z > 0.0).any(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ideal_r2 = (pc[..., 0] ** 2 + pc[..., 1] ** 2) / z ** 2
    in_lens = (ideal_r2 <= max_monotonic_radius2(rig.dist)[:, None, None]).all(axis=-1)
    px = project_camera_points(pc, rig.K[:, None, None], rig.dist[:, None, None])  # (C, P, K, 2)
    with np.errstate(invalid="ignore"):
        lo = np.floor(np.nanmin(np.where(all_front[..., None, None], px, 0.0), axis=2)) - BOX_PADDING_PX
        hi = np.ceil(np.nanmax(np.where(all_front[..., None, None], px, 0.0), axis=2)) + BOX_PADDING_PX + 1
    size = sizes[:, None, :]
    lo = np.clip(lo, 0, size).astype(np.int64)
    hi = np.clip(hi, 0, size).astype(np.int64)
    whole = any_front & ~(all_front & in_lens)
    lo[whole] = 0
    hi[whole] = np.broadcast_to(size, hi.shape)[whole]
    empty = ~any_front | (hi[..., 0] <= lo[..., 0]) | (hi[..., 1] <= lo[..., 1])
    lo[empty] = 0
    hi[empty] = 0
    boxes[..., :2], boxes[..., 2:] = lo, hi
    return boxes


def box_rays(rig: CameraRig, camera_index: int, box: Sequence[int]) -> np.ndarray:
    """(h*w, 6) float32 rays of the pixel centres of a box, row-major, world cm.

    Direction ``R_cam_world^T (x, y, 1)`` from the undistorted normalised (x, y): its z in
    the camera frame is 1, so ``t_hit`` is the hit's depth along the optical axis.
    """
    col0, row0, col1, row1 = (int(v) for v in box)
    directions = pixel_direction_map(rig, camera_index).window(col0, row0, col1, row1)
    rays = np.empty((row1 - row0, col1 - col0, 6), dtype=np.float32)
    rays[..., :3] = rig.centres_world[camera_index]
    rays[..., 3:] = directions
    return rays.reshape(-1, 6)


# ---------------------------------------------------------------------------- rendering

@functools.lru_cache(maxsize=8)
def _background(width: int, height: int, colours: tuple) -> np.ndarray:
    column = np.asarray(colours, dtype=np.float64).reshape(-1, 3)
    s = np.linspace(0.0, 1.0, height)[:, None]
    col = np.round((1.0 - s) * column[0] + s * column[-1]).astype(np.uint8)        # (H, 3)
    image = np.repeat(col[:, None, :], width, axis=1)
    image.setflags(write=False)
    return image


def background_image(width: int, height: int, background_rgb=DEFAULT_BACKGROUND) -> np.ndarray:
    """(H, W, 3) uint8 (a fresh copy): a flat colour (3,) or a vertical gradient
    ((top 3,), (bottom 3,))."""
    return _background(int(width), int(height), _colour_key(background_rgb)).copy()


def _colour_key(background_rgb) -> tuple:
    """Hashable form of a background specification."""
    return tuple(np.asarray(background_rgb, dtype=np.float64).reshape(-1).tolist())


def camera_light_world(rig: CameraRig, camera_index: int) -> np.ndarray:
    """(3,) world position of the light near camera ``camera_index``, cm."""
    return rig.centres_world[camera_index] + rig.R_cam_world[camera_index].T @ LIGHT_OFFSET_CAM_CM


@dataclass(eq=False)
class _CameraHits:
    """One camera's ROI boxes (B, 4) and the hits of their rays, concatenated row-major."""

    boxes: np.ndarray
    hits: RayHits


def _cast_cameras(rig: CameraRig, scene: FrameScene, camera_indices: Sequence[int],
                  boxes: np.ndarray) -> list[_CameraHits]:
    """Cast the ROI rays of several cameras in one open3d call and split the hits."""
    per_camera, rays = [], []
    for c in camera_indices:
        cam_boxes = boxes[c][(boxes[c, :, 2] > boxes[c, :, 0])]
        per_camera.append(cam_boxes)
        rays.extend(box_rays(rig, c, b) for b in cam_boxes)
    hits = scene.cast(np.concatenate(rays) if rays else np.zeros((0, 6), np.float32))
    out, start = [], 0
    for cam_boxes in per_camera:
        n = int(np.sum((cam_boxes[:, 2] - cam_boxes[:, 0]) * (cam_boxes[:, 3] - cam_boxes[:, 1])))
        s = slice(start, start + n)
        out.append(_CameraHits(cam_boxes, hits.take(s)))
        start += n
    return out


def _paint(rig: CameraRig, camera_index: int, scene: FrameScene, cam: _CameraHits,
           background_rgb, with_ids: bool, out: np.ndarray | None = None) -> RenderedView:
    """Compose one camera's view: the background, then the shaded hits at their pixels.

    Boxes of overlapping heads overlap: the shared pixels are cast twice with identical
    rays, hence identical hits, so writing them twice is harmless.
    out: an (H, W, 3) uint8 buffer to paint into instead of a new image (fresh large arrays
    cost page faults, which on these machines rival the rendering itself).
    """
    width, height = (int(v) for v in rig.image_size[camera_index])
    if out is not None and out.shape == (height, width, 3):
        image = out
        np.copyto(image, _background(width, height, _colour_key(background_rgb)))
    else:
        image = background_image(width, height, background_rgb)
    person_id = np.full((height, width), -1, dtype=np.int16) if with_ids else None
    triangle_id = np.full((height, width), -1, dtype=np.int32) if with_ids else None
    hit = np.flatnonzero(cam.hits.person_index >= 0)
    if len(hit):
        hits = cam.hits.take(hit)
        flat = _flat_pixel_index(cam.boxes, hit, width)
        image.reshape(-1, 3)[flat] = scene.shade(hits, camera_light_world(rig, camera_index))
        if with_ids:
            ids = np.array([p.person_id for p in scene.people], dtype=np.int16)
            person_id.reshape(-1)[flat] = ids[hits.person_index]
            triangle_id.reshape(-1)[flat] = hits.triangle
    return RenderedView(rig.names[camera_index], image, person_id, triangle_id)


def _flat_pixel_index(boxes: np.ndarray, ray_index: np.ndarray, width: int) -> np.ndarray:
    """(N,) ``row * width + col`` of rays given by their index into the row-major
    concatenation of the pixels of ``boxes`` (B, 4)."""
    w = boxes[:, 2] - boxes[:, 0]
    n = w * (boxes[:, 3] - boxes[:, 1])
    starts = np.concatenate([[0], np.cumsum(n)])
    box = np.searchsorted(starts, ray_index, side="right") - 1
    local = ray_index - starts[box]
    rows = boxes[box, 1] + local // w[box]
    cols = boxes[box, 0] + local % w[box]
    return rows * width + cols


def iter_views(rig: CameraRig, scene: FrameScene, camera_indices: Sequence[int] | None = None,
               background_rgb=DEFAULT_BACKGROUND, with_ids: bool = True,
               cameras_per_cast: int = 8, out: np.ndarray | None = None) -> Iterator[RenderedView]:
    """Render cameras of one frame's scene, one full-size view alive at a time.

    Rays of ``cameras_per_cast`` cameras go to open3d together (on one thread 1, 8 or 31
    cameras per call measured the same; with more threads fewer, larger calls keep them
    busy). ``with_ids=False`` skips the id images (their fields are
    then None), which the video writer does not need. ``out``: an (H, W, 3) uint8 buffer
    every view of that size is painted into (each yielded image is then overwritten by the
    next: consume it before advancing).
    """
    indices = list(range(len(rig))) if camera_indices is None else [int(c) for c in camera_indices]
    boxes = head_pixel_boxes(rig, scene.people)
    for start in range(0, len(indices), cameras_per_cast):
        chunk = indices[start:start + cameras_per_cast]
        for c, cam in zip(chunk, _cast_cameras(rig, scene, chunk, boxes)):
            yield _paint(rig, c, scene, cam, background_rgb, with_ids, out)


def render_view(rig: CameraRig, camera_index: int, people: Sequence[RenderPerson],
                background_rgb=DEFAULT_BACKGROUND, nthreads: int = 0) -> RenderedView:
    """Render one camera of one frame (builds the frame's scene; for several cameras use
    ``render_frame`` or ``iter_views``, which share it)."""
    return next(iter_views(rig, FrameScene(people, nthreads), [camera_index], background_rgb))


def render_frame(rig: CameraRig, people: Sequence[RenderPerson],
                 camera_indices: Sequence[int] | None = None,
                 background_rgb=DEFAULT_BACKGROUND, nthreads: int = 0) -> list[RenderedView]:
    """Render every camera (or ``camera_indices``) of one frame with one shared scene.

    Holds all views in memory (about 18 MB per 1080p view with the id images); stream with
    ``iter_views`` when that matters.
    """
    return list(iter_views(rig, FrameScene(people, nthreads), camera_indices, background_rgb))


# ---------------------------------------------------------------------------- visibility

def landmark_visibility(rig: CameraRig, people: Sequence[RenderPerson], landmarks_world: np.ndarray,
                        tolerance_cm: float = visibility.TOLERANCE_CM, nthreads: int = 0) -> np.ndarray:
    """(C, P, L) bool: landmark l of person p is seen by camera c.

    ``annotate.head.visibility`` with each person's own mesh and pose, all heads in one
    frame: seen = in front of the camera, inside the lens model, projecting inside the
    image, and hidden neither by the person's own head nor by another (code VISIBLE).
    landmarks_world: (P, L, 3) cm, on the surface of people[p]'s posed mesh. NaN
    landmarks are never seen.
    """
    caster, heads = people_heads(people, nthreads)
    codes = visibility.landmark_visibility(rig, caster, heads, landmarks_world, tolerance_cm=tolerance_cm)
    return codes.code == visibility.VISIBLE


def people_heads(people: Sequence[RenderPerson], nthreads: int = 0
                 ) -> tuple[HeadFrameCaster, visibility.HeadPoses]:
    """A caster over the people's distinct meshes and their poses, as one frame's heads."""
    meshes: dict[int, HeadMesh] = {}
    for p in people:
        meshes.setdefault(id(p.mesh), p.mesh)
    index = {key: k for k, key in enumerate(meshes)}
    n = len(people)
    heads = visibility.HeadPoses(
        np.array([p.R_world_head for p in people], np.float64).reshape(n, 3, 3),
        np.array([p.t_world_head for p in people], np.float64).reshape(n, 3),
        np.array([p.scale for p in people], np.float64), np.ones(n, bool), np.zeros(n, np.int64),
        np.array([index[id(p.mesh)] for p in people], np.int64))
    return HeadFrameCaster(list(meshes.values()), nthreads), heads
