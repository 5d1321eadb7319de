"""A closed, region-labelled head mesh that passes through the 70 face landmarks.

The surface is star-shaped around the head centre (the head-frame origin): every vertex is
``radius(u) * u`` for a unit direction ``u``. The radius is an ellipsoidal skull plus a
smooth radial offset, interpolated over the sphere of directions by a radial-basis function
that equals ``|landmark| - skull(u_landmark)`` at each landmark and is pinned to zero on the
back of the head, so the face is shaped by the landmarks and the back stays skull.

The triangulation is the convex hull of the unit directions (on the sphere the convex hull
is the spherical Delaunay triangulation), so it is closed, manifold and free of
self-intersections whatever the offsets are; the landmark directions are vertices of it, so
the mesh passes exactly through every landmark. Vertex density follows the icosphere levels:
finest around the eyes, brows, nose and mouth, coarser on the rest of the face, coarsest on
the back of the head.

Frames and units (docs/conventions.md): head frame, centimetres, x toward the subject's left ear,
y up, z out of the face. Landmarks are the 70-point Panoptic layout (iBUG 68 + right pupil
68 + left pupil 69); points 36-41 are the subject's right eye (head -x side).

Pure numpy/scipy, no file I/O.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.spatial import ConvexHull, HalfspaceIntersection, cKDTree

from annotate.head.head_frame import NUM_LANDMARKS

# Region codes of ``HeadMesh.triangle_region`` (uint8).
SKIN = 0
HAIR = 1
EYE_WHITE = 2
IRIS = 3
BROW = 4
LIPS = 5
NOSE = 6
REGION_NAMES = {SKIN: "skin", HAIR: "hair", EYE_WHITE: "eye_white", IRIS: "iris",
                BROW: "brow", LIPS: "lips", NOSE: "nose"}

# iBUG-68 index groups of the 70-point layout.
JAW = np.arange(0, 17)
RIGHT_BROW = np.arange(17, 22)          # subject's right (head -x)
LEFT_BROW = np.arange(22, 27)
NOSE_BRIDGE = np.arange(27, 31)
NOSTRILS = np.arange(31, 36)
RIGHT_EYE = np.arange(36, 42)
LEFT_EYE = np.arange(42, 48)
MOUTH_OUTER = np.arange(48, 60)
MOUTH_INNER = np.arange(60, 68)
RIGHT_PUPIL = 68
LEFT_PUPIL = 69
# Landmarks whose neighbourhood gets the finest tessellation (the jaw is a soft contour).
DETAIL_LANDMARKS = np.arange(17, 70)

# Feature sizes in cm (adult head).
IRIS_RADIUS_CM = 0.55
BROW_HALF_WIDTH_CM = 0.35
NOSE_SIDE_MARGIN_CM = 0.45
HAIRLINE_ABOVE_BROWS_CM = 2.8
HAIR_BEHIND_EARS_CM = 1.5

# Tessellation: icosphere levels (edge about 3.96 deg at 4, 1.98 at 5, 0.99 at 6).
LEVEL_BACK, LEVEL_FACE, LEVEL_DETAIL = 4, 5, 6
DETAIL_ANGLE_RAD = np.deg2rad(7.0)        # around eyes, brows, nose and mouth landmarks
FACE_ANGLE_RAD = np.deg2rad(45.0)         # around the face landmarks, jaw included
DEDUPE_CM = 0.02                          # landmarks closer than this are one vertex


@dataclass(frozen=True, eq=False)
class HeadMesh:
    """A closed triangle mesh of a head in the head frame (cm).

    vertices: (V, 3) float64, head frame, cm.
    triangles: (T, 3) int32, counter-clockwise seen from outside (normals point outward).
    triangle_region: (T,) uint8 region code (SKIN, HAIR, EYE_WHITE, IRIS, BROW, LIPS, NOSE).
    landmark_vertex: (70,) int32, the vertex lying on each landmark.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    triangle_region: np.ndarray
    landmark_vertex: np.ndarray

    @functools.cached_property
    def vertex_normals(self) -> np.ndarray:
        """(V, 3) unit outward normals in the head frame (area-weighted face normals)."""
        return _vertex_normals(self.vertices, self.triangles)

    @functools.cached_property
    def bounding_polytope(self) -> np.ndarray:
        """(K, 3) points (head frame, cm) whose convex hull contains the mesh.

        The vertices of the intersection of the 42 half-spaces ``n . x <= max_v n . v``
        over the level-1 icosphere directions n (about 80 vertices, only ~12 % more volume
        than the mesh's convex hull; a bounding sphere has about twice), plus 3 points on
        each edge of it: a lens bends the image of a long edge, and the extra points keep
        the box of the projected points a bound of the head's image (the bend between
        points is 1/16 of the whole edge's).
        """
        normals = np.asarray(icosphere_directions(1))
        support = (self.vertices @ normals.T).max(axis=0)
        halfspaces = np.concatenate([normals, -support[:, None]], axis=1)   # n.x - h <= 0
        interior = self.vertices.mean(axis=0)              # inside: the surface is star-shaped
        corners = HalfspaceIntersection(halfspaces, interior).intersections
        facets = ConvexHull(corners).simplices
        edges = np.unique(np.sort(np.concatenate([facets[:, [0, 1]], facets[:, [1, 2]],
                                                  facets[:, [2, 0]]]), axis=1), axis=0)
        s = np.array([0.25, 0.5, 0.75])[:, None, None]
        along = (1.0 - s) * corners[edges[:, 0]] + s * corners[edges[:, 1]]    # (3, E, 3)
        return np.concatenate([corners, along.reshape(-1, 3)])

    def transformed(self, R_world_head: np.ndarray, t_world_head: np.ndarray,
                    scale: float = 1.0) -> np.ndarray:
        """Vertices posed in the world: ``scale * R_world_head @ v + t_world_head``, (V, 3) cm."""
        R = np.asarray(R_world_head, dtype=np.float64)
        t = np.asarray(t_world_head, dtype=np.float64)
        return scale * self.vertices @ R.T + t


def build_head_mesh(landmarks_head: np.ndarray,
                    skull_radii: tuple[float, float, float] = (7.8, 11.0, 9.8),
                    skull_centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
                    detail_level: int = LEVEL_DETAIL) -> HeadMesh:
    """Build the closed head mesh through the 70 landmarks.

    landmarks_head: (70, 3) cm in the head frame, every one in a distinct direction from the
        head centre (the surface is star-shaped around it).
    skull_radii: ellipsoid half-axes (x half-width, y half-height, z half-depth), cm.
    skull_centre: ellipsoid centre in the head frame, cm; the origin must lie inside it.
    detail_level: icosphere level around the facial features (6: about 0.17 cm edges on the
        face, ~19k triangles; 5 halves the resolution for quick previews).
    """
    landmarks = np.asarray(landmarks_head, dtype=np.float64)
    if landmarks.shape != (NUM_LANDMARKS, 3):
        raise ValueError(f"landmarks_head must be (70, 3), got {landmarks.shape}")
    radii = np.asarray(skull_radii, dtype=np.float64)
    centre = np.asarray(skull_centre, dtype=np.float64)
    if np.sum((centre / radii) ** 2) >= 1.0:
        raise ValueError("the head centre (origin) must lie inside the skull ellipsoid")

    key_dirs, key_radius, landmark_key = _dedupe_landmarks(landmarks)
    lattice = _lattice_directions(key_dirs[_detail_keys(landmark_key)], key_dirs, detail_level)
    directions = np.concatenate([key_dirs, lattice])
    triangles = _sphere_triangulation(directions)

    offset_field = _radial_offset_field(key_dirs, key_radius, radii, centre)
    skull = _ellipsoid_radius(directions, radii, centre)
    # The interpolated offset cannot push the surface through the centre for any sane face;
    # the floor keeps the mesh star-shaped (and valid) even for a wild one.
    radius = np.maximum(skull + offset_field(directions), 0.3 * skull)
    radius[: len(key_dirs)] = key_radius                 # landmarks exactly on the surface
    vertices = directions * radius[:, None]

    regions = assign_regions(vertices, triangles, landmarks)
    mesh = HeadMesh(vertices, triangles, regions, landmark_key.astype(np.int32))
    _check_landmarks_on_surface(mesh, landmarks)
    return mesh


# --------------------------------------------------------------------------- sphere lattice

@functools.lru_cache(maxsize=8)
def icosphere_directions(level: int) -> np.ndarray:
    """Unit vertices (N, 3) of the icosphere subdivided ``level`` times (10 * 4**level + 2).

    Levels are nested: the vertices of level n are the first vertices of level n + 1.
    The returned array is read-only (it is cached).
    """
    phi = (1.0 + 5.0 ** 0.5) / 2.0
    verts = np.array([[-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0],
                      [0, -1, phi], [0, 1, phi], [0, -1, -phi], [0, 1, -phi],
                      [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1]], dtype=np.float64)
    faces = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
                      [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
                      [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
                      [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    verts /= np.linalg.norm(verts, axis=1, keepdims=True)
    for _ in range(level):
        verts, faces = _subdivide(verts, faces)
    verts.setflags(write=False)
    return verts


def _subdivide(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 1-to-4 split with midpoints pushed onto the unit sphere (new vertices appended)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges.sort(axis=1)
    # 1-D keys: np.unique over rows (axis=0) is several times slower.
    keys, inverse = np.unique(edges[:, 0] * len(verts) + edges[:, 1], return_inverse=True)
    mids = verts[keys // len(verts)] + verts[keys % len(verts)]
    mids /= np.linalg.norm(mids, axis=1, keepdims=True)
    m = len(verts) + inverse.reshape(3, -1)               # midpoint ids of edges 01, 12, 20
    a, b, c = faces.T
    new_faces = np.concatenate([np.stack([a, m[0], m[2]], 1), np.stack([b, m[1], m[0]], 1),
                                np.stack([c, m[2], m[1]], 1), np.stack([m[0], m[1], m[2]], 1)])
    return np.concatenate([verts, mids]), new_faces


def _lattice_directions(detail_dirs: np.ndarray, key_dirs: np.ndarray, detail_level: int) -> np.ndarray:
    """Unit directions (N, 3) of the tessellation, without the landmark directions.

    The finest icosphere level near the detailed landmarks, the middle level within
    FACE_ANGLE_RAD of any landmark, the coarsest elsewhere; lattice points too close to a
    landmark direction are dropped so no sliver triangle forms around it.
    """
    fine = icosphere_directions(detail_level)
    n_face = 10 * 4 ** min(LEVEL_FACE, detail_level) + 2
    n_back = 10 * 4 ** min(LEVEL_BACK, detail_level) + 2
    ids = np.arange(len(fine))
    to_key = _angle_to_nearest(fine, key_dirs)
    keep = (ids < n_back) | ((ids < n_face) & (to_key < FACE_ANGLE_RAD))
    # Only points near some landmark can be near a detailed one: query those alone.
    candidates = np.flatnonzero(~keep & (to_key < DETAIL_ANGLE_RAD))
    keep[candidates] = _angle_to_nearest(fine[candidates], detail_dirs) < DETAIL_ANGLE_RAD
    fine_edge_rad = np.deg2rad(63.43) / 2 ** detail_level
    keep &= to_key > 0.45 * fine_edge_rad
    return np.asarray(fine[keep])


def _angle_to_nearest(dirs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N,) angle in radians from each unit direction to the nearest of ``targets`` (M, 3)."""
    chord, _ = cKDTree(targets).query(dirs)
    return 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def _sphere_triangulation(directions: np.ndarray) -> np.ndarray:
    """Triangles (T, 3) int32 of unit directions: their convex hull, oriented outward."""
    tri = ConvexHull(directions).simplices.astype(np.int32)
    a, b, c = directions[tri[:, 0]], directions[tri[:, 1]], directions[tri[:, 2]]
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    tri[inward] = tri[inward][:, ::-1]
    return tri


# ------------------------------------------------------------------------- radius function

def _dedupe_landmarks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge coincident landmarks (a closed mouth's inner lips) into shared key vertices.

    Returns key unit directions (K, 3), key radii (K,) cm, and (70,) key index per landmark.
    """
    radius = np.linalg.norm(landmarks, axis=1)
    if np.any(radius < 1e-6):
        raise ValueError("a landmark lies at the head centre; the surface must be star-shaped")
    groups = cKDTree(landmarks).query_ball_point(landmarks, DEDUPE_CM)
    landmark_key = np.full(len(landmarks), -1, dtype=np.int64)
    keys: list[int] = []
    for i, group in enumerate(groups):
        if landmark_key[i] < 0:
            landmark_key[[j for j in group if landmark_key[j] < 0]] = len(keys)
            keys.append(i)
    points = np.stack([landmarks[landmark_key == k].mean(axis=0) for k in range(len(keys))])
    key_radius = np.linalg.norm(points, axis=1)
    key_dirs = points / key_radius[:, None]
    if _angle_to_nearest_other(key_dirs).min() < 1e-4:
        raise ValueError("two landmarks lie on one ray from the head centre; "
                         "a star-shaped surface cannot pass through both")
    return key_dirs, key_radius, landmark_key


def _angle_to_nearest_other(dirs: np.ndarray) -> np.ndarray:
    """(N,) angle in radians from each unit direction to its nearest other direction."""
    chord, _ = cKDTree(dirs).query(dirs, k=2)
    return 2.0 * np.arcsin(np.clip(chord[:, 1] / 2.0, 0.0, 1.0))


def _detail_keys(landmark_key: np.ndarray) -> np.ndarray:
    """Key indices of the landmarks that get the finest tessellation."""
    return np.unique(landmark_key[DETAIL_LANDMARKS])


def _ellipsoid_radius(dirs: np.ndarray, radii: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(N,) distance from the origin along unit ``dirs`` (N, 3) to the skull ellipsoid, cm."""
    u = dirs / radii
    c = centre / radii
    a = np.einsum("ij,ij->i", u, u)
    b = u @ c
    cc = c @ c
    return (b + np.sqrt(b * b - a * (cc - 1.0))) / a


def _radial_offset_field(key_dirs: np.ndarray, key_radius: np.ndarray, radii: np.ndarray,
                         centre: np.ndarray):
    """Smooth radial offset over unit directions: landmark offsets on the face, 0 at the back.

    Zero anchors sit on a coarse icosphere wherever it is far (> 50 deg) from every landmark,
    which makes the offset decay to the bare skull over the crown, the back and under the jaw.
    Returns a callable (N, 3) unit directions -> (N,) offsets in cm.
    """
    offsets = key_radius - _ellipsoid_radius(key_dirs, radii, centre)
    coarse = icosphere_directions(2)
    anchors = coarse[_angle_to_nearest(coarse, key_dirs) > np.deg2rad(50.0)]
    centres = np.concatenate([key_dirs, anchors])
    values = np.concatenate([offsets, np.zeros(len(anchors))])
    # r^3 is conditionally positive definite in 3D with a linear polynomial: well posed and
    # smooth, without the overshoot of a Gaussian with a badly chosen width.
    return RBFInterpolator(centres, values, kernel="cubic", degree=1)


def _check_landmarks_on_surface(mesh: HeadMesh, landmarks: np.ndarray, tol_cm: float = 0.3) -> None:
    """Raise if a landmark is farther than ``tol_cm`` from its surface vertex."""
    err = np.linalg.norm(mesh.vertices[mesh.landmark_vertex] - landmarks, axis=1)
    if err.max() > tol_cm:
        raise ValueError(f"landmark {int(err.argmax())} is {err.max():.3f} cm off the surface")


def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
    face_n = np.cross(v1 - v0, v2 - v0)                     # length = 2 * area
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face_n)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


# ------------------------------------------------------------------------------- regions

def assign_regions(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(T,) uint8 region code per triangle, from its centroid and the landmark polygons.

    Face polygons are tested in the gnomonic projection ``(x/z, y/z)`` of the head frame,
    which maps the front of the head one-to-one and keeps polygon edges straight; later
    rules override earlier ones (skin < hair < nose < lips < brows < eye whites < iris).
    """
    centroid = vertices[triangles].mean(axis=1)             # (T, 3)
    region = np.full(len(triangles), SKIN, dtype=np.uint8)
    region[_hair_mask(centroid, landmarks)] = HAIR
    front = centroid[:, 2] > 0.3 * np.linalg.norm(centroid, axis=1)
    uv = _gnomonic(centroid)
    lm_uv = _gnomonic(landmarks)

    def inside(points_uv: np.ndarray) -> np.ndarray:
        return front & _points_in_polygon(uv, points_uv)

    region[inside(_nose_polygon_uv(landmarks))] = NOSE
    region[inside(lm_uv[MOUTH_OUTER])] = LIPS
    for brow in (RIGHT_BROW, LEFT_BROW):
        region[front & (_distance_to_polyline(centroid, landmarks[brow]) < BROW_HALF_WIDTH_CM)] = BROW
    for eye, pupil in ((RIGHT_EYE, RIGHT_PUPIL), (LEFT_EYE, LEFT_PUPIL)):
        in_eye = inside(lm_uv[eye])
        region[in_eye] = EYE_WHITE
        near_pupil = np.linalg.norm(centroid - landmarks[pupil], axis=1) < IRIS_RADIUS_CM
        region[in_eye & near_pupil] = IRIS
    return region


def _hair_mask(centroid: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(T,) bool: the scalp. Above a hairline a few cm over the brows in front, dropping to
    brow level over the ears, and everything behind the ears down to the nape (mouth level)."""
    x, y, z = centroid.T
    brow_y = landmarks[17:27, 1].mean()
    ear_z = landmarks[[0, 16], 2].mean()
    face_z = landmarks[[27, 39, 42], 2].mean()
    nape_y = landmarks[MOUTH_OUTER, 1].mean()
    # 0 at the front of the face, 1 at the ears: the hairline slopes down toward the ears.
    toward_ears = np.clip((face_z - z) / max(face_z - ear_z, 1e-6), 0.0, 1.0)
    hairline_y = brow_y + HAIRLINE_ABOVE_BROWS_CM * (1.0 - 0.75 * toward_ears)
    above_hairline = y > hairline_y
    behind_ears = (z < ear_z - HAIR_BEHIND_EARS_CM) & (y > nape_y)
    return above_hairline | behind_ears


def _gnomonic(points: np.ndarray) -> np.ndarray:
    """(..., 3) head-frame points -> (..., 2) ``(x/z, y/z)``; only meaningful for z > 0."""
    z = np.where(np.abs(points[..., 2]) < 1e-9, 1e-9, points[..., 2])
    return points[..., :2] / z[..., None]


def _nose_polygon_uv(landmarks: np.ndarray) -> np.ndarray:
    """(N, 2) convex outline of the nose in gnomonic coordinates: the bridge 27-30 widened
    sideways by NOSE_SIDE_MARGIN_CM and the nostrils 31-35 pushed outward likewise."""
    side = np.array([NOSE_SIDE_MARGIN_CM, 0.0, 0.0])
    bridge_top = landmarks[27]
    nostril_r, nostril_l = landmarks[31], landmarks[35]
    outline = np.concatenate([landmarks[27:36],
                              [bridge_top - side, bridge_top + side,
                               nostril_r - side, nostril_l + side]])
    uv = _gnomonic(outline)
    hull = ConvexHull(uv)
    return uv[hull.vertices]


def _points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: even-odd rule for points (N, 2) against a closed polygon (M, 2)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    crossings = straddles & (x < x_cross)
    return (crossings.sum(axis=1) % 2) == 1


def _distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distance from points (N, 3) to an open polyline (M, 3)."""
    a, b = polyline[:-1], polyline[1:]                       # (S, 3)
    ab = b - a
    t = np.einsum("nsk,sk->ns", points[:, None, :] - a, ab) / np.einsum("sk,sk->s", ab, ab)
    closest = a + np.clip(t, 0.0, 1.0)[..., None] * ab       # (N, S, 3)
    return np.linalg.norm(points[:, None, :] - closest, axis=2).min(axis=1)
