"""Expressive head meshes: one person's neutral head mesh moved by a frame's expression.

``FaceDeformer.build(rest, shape_head, scale)`` precomputes, once per person, how every
mesh vertex follows the landmark offsets of ``annotate.synth.expressions`` (the landmark
vertices exactly, the eyes' insides squeezed under closing lids, the rest of the face by
harmonic interpolation with the mouth slit cut, the skull fixed); ``FaceDeformer.mesh``
then gives a frame's ``ExpressiveMesh`` in a few multiply-adds per vertex. The renderer and
the landmark visibility of the synthetic sequence use these meshes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from annotate.head.head_mesh import IRIS, HeadMesh
from annotate.synth.expressions import BLINK, BROW, JAW, NUM_EXPRESSIONS, SMILE, expression_offsets


# Vertices farther than this from every landmark direction (seen from the head centre) are
# skull: expressions never move them. 30 deg is ~5 cm on the face, room for the skin between
# a moving feature and the skull to stretch smoothly (under the chin, over the forehead).
SKULL_ANGLE_DEG = 30.0
# Vertices whose displacement fields all stay below this are left out (x a few cm of offset
# coefficient: far below a pixel).
MIN_FIELD = 1e-6
# Each eye: its upper lid outline (corner, lid, lid, corner) and the lower one below it.
EYE_OUTLINES = (([36, 37, 38, 39], [36, 41, 40, 39]), ([42, 43, 44, 45], [42, 47, 46, 45]))
OUTER_LIPS = np.arange(48, 60)
# Landmark chains moved as whole curves (``_line_rows``) and the distance (cm) from them
# within which vertices follow: the jaw line, and each brow's drawn band (head_mesh's 0.35).
LINES = ((list(range(17)), 0.3), (list(range(17, 22)), 0.4), (list(range(22, 27)), 0.4))
# The inner lip lines from corner 60 to corner 64: upper and lower.
INNER_UPPER, INNER_LOWER = [60, 61, 62, 63, 64], [60, 67, 66, 65, 64]
# The opened mouth's inside (the triangles joining the two lips) is drawn in the darkest
# palette colour (head_mesh has no region code of its own for it).
MOUTH_INSIDE_REGION = IRIS


@dataclass(frozen=True, eq=False)
class ExpressiveMesh(HeadMesh):
    """A person's head mesh moved by one frame's expression (same triangles as the neutral one).

    normals: (V, 3) its vertex normals; polytope: (K, 3) head-frame points whose hull holds
    the mesh under every expression (``FaceDeformer``): both given, not recomputed per frame.
    """

    normals: np.ndarray | None = None
    polytope: np.ndarray | None = None

    @property
    def vertex_normals(self) -> np.ndarray:
        return self.normals

    @property
    def bounding_polytope(self) -> np.ndarray:
        return self.polytope


@dataclass(eq=False)
class FaceDeformer:
    """Moves one person's neutral unit-scale head mesh with their expression.

    Vertex displacements are linear in the landmark offsets (weights built once):
    - each landmark vertex moves exactly by its landmark's offset (0-67);
    - the inside of each eye (white, iris, the pupil vertex) is squeezed down onto the lower
      lid as the upper lid closes, so a closed eye shows skin, not a fold; the pupil
      landmark itself stays, just behind the closed lid;
    - the rest of the face follows by harmonic interpolation over the mesh (cotangent
      Laplacian): each vertex a smooth weighted mean of its neighbours, with the edges
      across the mouth slit cut so that each lip follows its own landmarks (a distance
      falloff, or the thin slit's strong cotangent weights, would drag the upper lip with
      the lower one, 0.1 cm away); the triangles across the slit stretch into the open
      mouth's inside; skull vertices (SKULL_ANGLE_DEG from the face) never move.

    The person's landmark offsets span only a few dimensions (``_offset_basis``: the
    rotation of the jaw's two weight groups, smile, brow and blink), so the displacement
    fields of that basis are precomputed and a frame costs a few multiply-adds per vertex
    (the (M, 70) weights product per frame cost as much as the rest of a frame's mesh).

    rest: neutral mesh (unit scale); shape_head: (70, 3) neutral landmarks at the person's
    size, cm; scale: that size. moving: (M,) vertices an expression can move; basis:
    (K, 210) orthonormal rows spanning the person's offsets (flattened (70, 3), unit
    scale); fields: (K, M, 3) the moving vertices' displacement for each basis row;
    regions: (T,) the rest regions with the mouth's inside dark; polytope: bound under
    every expression; incidence: (V, T) vertex-triangle incidence (normals in one product).
    """

    rest: HeadMesh
    shape_head: np.ndarray
    scale: float
    moving: np.ndarray
    basis: np.ndarray
    fields: np.ndarray
    regions: np.ndarray
    polytope: np.ndarray | None
    incidence: sp.csr_matrix

    @classmethod
    def build(cls, rest: HeadMesh, shape_head: np.ndarray, scale: float) -> "FaceDeformer":
        side = _lip_sides(rest)
        shape_head = np.asarray(shape_head, np.float64)
        basis = _offset_basis(shape_head / scale)
        moving, fields = _displacement_fields(rest, side, basis)
        V, T = len(rest.vertices), len(rest.triangles)
        incidence = sp.csr_matrix((np.ones(3 * T), (rest.triangles.T.ravel(), np.tile(np.arange(T), 3))),
                                  shape=(V, T))
        regions = rest.triangle_region.copy()
        across = side[rest.triangles]                                             # (T, 3)
        regions[(across.max(axis=1) > 0) & (across.min(axis=1) < 0)] = MOUTH_INSIDE_REGION
        deformer = cls(rest, shape_head, float(scale), moving, basis, fields, regions, None, incidence)
        deformer.polytope = deformer._envelope_polytope()
        return deformer

    def vertices(self, params: np.ndarray) -> np.ndarray:
        """(V, 3) head-frame vertices (unit scale) under the expression params (4,)."""
        offsets = expression_offsets(self.shape_head, params) / self.scale        # unit scale
        vertices = self.rest.vertices.copy()
        vertices[self.moving] += np.tensordot(self.basis @ offsets.ravel(), self.fields, axes=1)
        return vertices

    def mesh(self, params: np.ndarray) -> ExpressiveMesh:
        """The head mesh under the expression params (4,)."""
        vertices = self.vertices(params)
        tri = self.rest.triangles
        v0 = vertices[tri[:, 0]]
        face_normals = np.cross(vertices[tri[:, 1]] - v0, vertices[tri[:, 2]] - v0)   # 2 x area
        normals = self.incidence @ face_normals
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        return ExpressiveMesh(vertices, tri, self.regions, self.rest.landmark_vertex, normals, self.polytope)

    def _envelope_polytope(self) -> np.ndarray:
        """A bounding polytope of the mesh under every expression in [0, 1]^4.

        Smile, brow and blink move vertices linearly, so the corners of their range bound
        them; the jaw moves along arcs, sampled at 0, 1/2 and 1 (the arcs' bulge between
        samples, < 0.02 cm, is far inside the renderer's box padding).
        """
        points = [self.rest.vertices]
        for jaw in (0.0, 0.5, 1.0):
            for corner in np.ndindex(2, 2, 2):
                params = np.zeros(NUM_EXPRESSIONS)
                params[JAW], params[[SMILE, BROW, BLINK]] = jaw, corner
                points.append(self.vertices(params)[self.moving])
        # HeadMesh.bounding_polytope reads the vertices only: a point cloud serves.
        cloud = HeadMesh(np.concatenate(points), self.rest.triangles, self.rest.triangle_region,
                         self.rest.landmark_vertex)
        return cloud.bounding_polytope


def _offset_basis(shape_head: np.ndarray) -> np.ndarray:
    """(K, 210) orthonormal rows spanning ``expression_offsets(shape_head, params)`` for every
    params in [0, 1]^4 (flattened (70, 3)).

    Found numerically from samples (the jaw at 9 openings, each with every corner of the
    linear smile, brow and blink), so the basis follows the expression model; a rank near
    the sample count would mean the samples miss part of the span, which is refused.
    """
    jaw = np.linspace(0.0, 1.0, 9)
    grid = np.stack(np.meshgrid(jaw, [0, 1], [0, 1], [0, 1], indexing="ij"), -1).reshape(-1, 4)
    samples = expression_offsets(shape_head, grid).reshape(len(grid), -1)        # (N, 210)
    _, s, vt = np.linalg.svd(samples, full_matrices=False)
    rank = int(np.sum(s > 1e-10 * s[0]))
    if rank > len(grid) // 4:
        raise ValueError(f"expression offsets span {rank} dimensions: too many for FaceDeformer")
    return vt[:rank]


def _inside_outline(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """(N,) bool: head-frame points (N, 3) on the front of the face inside a closed outline
    (K, 3) of face points, both seen from the front (the (x, y) plane; even-odd rule)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = outline[:, 0], outline[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / (y1 - y0))
    return (crossing.sum(axis=1) % 2 == 1) & (points[:, 2] > 0)


def _lip_sides(mesh: HeadMesh) -> np.ndarray:
    """(V,) int8: +1 for vertices of the upper lip, -1 of the lower lip, 0 elsewhere.

    Lip vertices lie inside the outer lip outline, between the inner mouth corners (x), on
    either side of the midline of the slit between the inner lip lines.
    """
    lm = mesh.vertices[mesh.landmark_vertex]
    v = mesh.vertices
    in_lips = _inside_outline(v, lm[OUTER_LIPS]) & (v[:, 0] > lm[60, 0]) & (v[:, 0] < lm[64, 0])
    mid = 0.5 * (np.interp(v[:, 0], lm[INNER_UPPER, 0], lm[INNER_UPPER, 1])
                 + np.interp(v[:, 0], lm[INNER_LOWER, 0], lm[INNER_LOWER, 1]))
    return (in_lips * np.sign(v[:, 1] - mid)).astype(np.int8)


def _eye_rows(mesh: HeadMesh, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices inside the eyes (not in ``taken``) and their (n, 70) weight rows.

    A vertex at height share s between the lower lid (0) and the upper lid (1) below and
    above it moves by s times the upper lid's offset there (interpolated along x between
    the upper-lid landmarks): when the upper lid lands on the lower one, the whole eye
    lies on the lower lid line.
    """
    lm = mesh.vertices[mesh.landmark_vertex]
    ids, rows = [], []
    for upper, lower in EYE_OUTLINES:
        inside = _inside_outline(mesh.vertices, lm[upper + lower[::-1][1:-1]])
        inside[taken] = False
        v = mesh.vertices[inside]
        y_up = np.interp(v[:, 0], lm[upper, 0], lm[upper, 1])
        y_low = np.interp(v[:, 0], lm[lower, 0], lm[lower, 1])
        share = np.clip((v[:, 1] - y_low) / (y_up - y_low), 0.0, 1.0)
        row = np.zeros((len(v), 70))
        for j, landmark in enumerate(upper):
            row[:, landmark] = share * np.interp(v[:, 0], lm[upper, 0], np.eye(len(upper))[j])
        ids.append(np.flatnonzero(inside))
        rows.append(row)
    return np.concatenate(ids), np.concatenate(rows)


def _line_rows(mesh: HeadMesh, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices along the jaw line and the brows (not in ``taken``) and their (n, 70) rows.

    Each follows the polyline of its landmarks (the two ends of its segment, by its
    position along it), so these features move as whole curves: pinned at the landmarks
    alone, the harmonic solution would pull a dimple around each moving contour point,
    and the brows' band would sag between their points.
    """
    lm = mesh.vertices[mesh.landmark_vertex]
    free = np.ones(len(mesh.vertices), bool)
    free[taken] = False
    best = np.full(len(mesh.vertices), np.inf)
    row = np.zeros((len(mesh.vertices), 70))
    for chain, radius in LINES:
        for a, b in zip(chain[:-1], chain[1:]):
            ab = lm[b] - lm[a]
            t = np.clip((mesh.vertices - lm[a]) @ ab / (ab @ ab), 0.0, 1.0)
            distance = np.linalg.norm(mesh.vertices - (lm[a] + t[:, None] * ab), axis=1)
            near = free & (distance < radius) & (distance < best)
            best[near] = distance[near]
            row[near] = 0.0
            row[near, a], row[near, b] = 1.0 - t[near], t[near]
    ids = np.flatnonzero(np.isfinite(best))
    return ids, row[ids]


def _displacement_fields(mesh: HeadMesh, side: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M,) moving vertex ids (sorted) and their (K, M, 3) displacement for each basis row
    (K, 210) of landmark offsets.

    Vertex offsets are linear in the landmark offsets, by weight rows (70,). Pinned rows:
    landmarks 0-67 (a vertex shared by several takes their mean), the eyes' inside
    (``_eye_rows``), the jaw line and brows (``_line_rows``), the skull at zero; the free
    vertices between them solve the Laplace equation on the mesh without the edges joining
    the two lips (``side``: ``_lip_sides``), one right-hand side per basis row and axis.
    """
    V = len(mesh.vertices)
    marks = np.unique(mesh.landmark_vertex[:68])
    counts = np.zeros((len(marks), 70))
    counts[np.searchsorted(marks, mesh.landmark_vertex[:68]), np.arange(68)] = 1.0
    eyes, eye_rows = _eye_rows(mesh, marks)
    lines, line_rows = _line_rows(mesh, np.concatenate([marks, eyes]))
    pinned = np.concatenate([marks, eyes, lines])
    rows = np.concatenate([counts / counts.sum(axis=1, keepdims=True), eye_rows, line_rows])  # (n_pinned, 70)
    directions = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    near_face = (directions @ directions[marks].T).max(axis=1) > np.cos(np.deg2rad(SKULL_ANGLE_DEG))
    free = np.flatnonzero(near_face & ~np.isin(np.arange(V), pinned))
    W = _cotangent_weights(mesh.vertices, mesh.triangles).tocoo()
    keep = side[W.row] * side[W.col] >= 0                                      # lips apart
    W = sp.csr_matrix((W.data[keep], (W.row[keep], W.col[keep])), shape=W.shape)
    L_free = (sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W)[free][:, free]
    K = len(basis)
    per_axis = basis.reshape(K, 70, 3).transpose(1, 0, 2).reshape(70, 3 * K)       # (70, 3K)
    pinned_fields = rows @ per_axis
    solved = splu(L_free.tocsc()).solve(W[free][:, pinned] @ pinned_fields)       # (n_free, 3K)
    ids = np.concatenate([pinned, free])
    fields = np.concatenate([pinned_fields, solved])
    keep = np.abs(fields).max(axis=1) > MIN_FIELD
    order = np.argsort(ids[keep])
    fields = fields[keep][order].reshape(-1, K, 3).transpose(1, 0, 2)              # (K, M, 3)
    return ids[keep][order], np.ascontiguousarray(fields)


def _cotangent_weights(vertices: np.ndarray, triangles: np.ndarray) -> sp.csr_matrix:
    """(V, V) symmetric edge weights (cot a + cot b) / 2 of the surface, clipped at a small
    positive floor: negative weights (obtuse pairs) would break the interpolation's maximum
    principle (every vertex a weighted mean of its neighbours)."""
    rows, cols, values = [], [], []
    for k in range(3):
        i, j, o = triangles[:, (k + 1) % 3], triangles[:, (k + 2) % 3], triangles[:, k]
        a, b = vertices[i] - vertices[o], vertices[j] - vertices[o]
        cot = np.einsum("ij,ij->i", a, b) / np.linalg.norm(np.cross(a, b), axis=1)
        rows += [i, j]
        cols += [j, i]
        values += [0.5 * cot, 0.5 * cot]
    W = sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(vertices),) * 2)
    W.data = np.maximum(W.data, 1e-3 * np.abs(W.data).mean())
    return W
