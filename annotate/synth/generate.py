"""Write a synthetic sequence in the real CMU Panoptic layout, with its ground truth beside it.

``generate_sequence(root, "synth_000")`` writes ``<root>/synth_000/``::

    calibration_synth_000.json                   31 HD cameras 00_00..00_30 (real format)
    hdFace3d/faceRecon3D_hd%08d.json             published (noisy) 3D face landmarks
    hdPose3d_stage1_coco19/body3DScene_%08d.json 3D skeletons, every person every frame
    hdVideos/hd_00_XX.mp4                        rendered heads (when render_video)
    ground_truth.npz, ground_truth.json          the truth; never read by the pipeline

Faces are expressive by default (``SceneConfig.expressions``): the published landmarks, the
rendered head meshes and the landmark visibility all follow each frame's expression, while
the ground-truth pose stays the skull's; ``ground_truth.npz`` stores the parameters.

The sequence is built in a hidden temporary folder under ``root`` and renamed into place
when complete, so a reader never sees a half-written sequence (an older one of the same name
is replaced). JSON files are byte-identical for the same configuration.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from annotate.core.atomic import atomic_file, replace_folder
from annotate.geometry.cameras import CameraRig
from annotate.head.head_mesh import IRIS, HeadMesh, build_head_mesh
from annotate.head.raycast import HeadFrameCaster
from annotate.head.visibility import VISIBLE, HeadPoses, landmark_visibility
from annotate.panoptic.bodies import write_body_frame
from annotate.panoptic.calibration import write_calibration
from annotate.panoptic.faces import FacePerson, write_face_frame
from annotate.panoptic.layout import SequenceLayout, write_panoptic_json
from annotate.synth.expressions import (BLINK, BROW, EXPRESSION_NAMES, JAW, JAW_MAX_DEG, NUM_EXPRESSIONS,
                                        SMILE, expression_offsets)
from annotate.synth.render import RenderPerson, random_palette, render_videos
from annotate.synth.scene import (STREAM_APPEARANCE, PublishedLandmarks, SceneConfig, SceneState,
                                  pose_landmarks, published_landmarks, random_streams, simulate_scene)

GROUND_TRUTH_NPZ = "ground_truth.npz"
GROUND_TRUTH_JSON = "ground_truth.json"
GROUND_TRUTH_FORMAT = "annotate.synth.ground_truth"
GROUND_TRUTH_VERSION = "1.2.0"   # 1.1: the true cameras (CAMERA_KEYS); 1.2: expressions
# What Panoptic writes for a landmark it did not reconstruct (with coordinates 0 and score 0).
UNRECONSTRUCTED_REPRO_ERROR = 1e5

GROUND_TRUTH_KEYS = {
    "R_world_head": ("(F, P, 3, 3)", "rotation head -> world of each person's head frame "
                     "(x to the subject's left ear, y up, z out of the face)"),
    "t_world_head": ("(F, P, 3)", "head centre (head frame origin), world cm"),
    "scale": ("(P,)", "similarity scale from base_face to shapes_head (rotation identity, "
              "translation zero by construction)"),
    "shapes_head": ("(P, 70, 3)", "each person's noise-free neutral face landmarks in their "
                    "head frame, cm, at their own size"),
    "expressions": ("(F, P, 4)", "facial expression parameters [jaw, smile, brow, blink] of each "
                    "person each frame, in [0, 1] (0 neutral); the landmarks move by "
                    "annotate.synth.expressions.expression_offsets(shapes_head, expressions), "
                    "the skull pose (R_world_head, t_world_head) does not"),
    "base_face": ("(70, 3)", "the mean face, canonical head frame, cm "
                  "(annotate.head.face_model.base_face_landmarks)"),
    "person_ids": ("(P,)", "Panoptic person ids (face and body files)"),
    "frames": ("(F,)", "HD frame numbers of the files"),
    "present": ("(F, P)", "bool: the face was published in that frame's hdFace3d file"),
    "outlier_mask": ("(F, P, 70)", "bool: the published landmark carries a gross error"),
    "reconstructed": ("(F, P, 70)", "bool: published with coordinates (seen by at least "
                      "min_views_per_landmark cameras); else written as Panoptic's "
                      "not-reconstructed (0, 0, 0), score 0"),
    "num_views": ("(F, P, 70)", "number of HD cameras that see the landmark (occlusion by "
                  "every head included)"),
    "head_heights_cm": ("(P,)", "upright head centre height above the floor, cm"),
    "camera_names": ("(C,)", "HD camera names (sorted, as in the calibration file) of the "
                     "camera arrays below"),
    "camera_K": ("(C, 3, 3)", "true intrinsics the videos were rendered with, px"),
    "camera_dist": ("(C, 5)", "true distortion (k1, k2, p1, p2, k3)"),
    "camera_R_cam_world": ("(C, 3, 3)", "true rotation world -> camera"),
    "camera_t_cam_world": ("(C, 3)", "true translation world -> camera, cm"),
    "camera_image_size": ("(C, 2)", "image (width, height), px"),
}
# The true cameras (since 1.1.0): the calibration file may be altered afterwards (the audit's
# fault injection), the rendered videos and the synthetic detector keep these. Older files
# lack them (GroundTruth.rig is then None).
CAMERA_KEYS = ("camera_names", "camera_K", "camera_dist", "camera_R_cam_world",
               "camera_t_cam_world", "camera_image_size")
# Since 1.2.0; older files have none (GroundTruth.expressions is then all zero).
EXPRESSION_KEY = "expressions"


# ----------------------------------------------------------------------------- rendering

def person_meshes(state: SceneState) -> list[HeadMesh]:
    """(P,) neutral head meshes at unit scale: posed with ``scale`` they pass through shapes_head."""
    return [build_head_mesh(state.shapes_head[p] / state.scale[p]) for p in range(len(state.scale))]


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


@dataclass
class SceneFrames:
    """Picklable frame source for ``render_videos``: frame index k -> every person's head.

    Every person is rendered every frame (a face missing from hdFace3d is still filmed).
    meshes: (P,) neutral unit-scale meshes; R_world_head (F, P, 3, 3); t_world_head (F, P, 3);
    scale (P,); person_ids (P,); palettes: (P,) region -> RGB.
    deformers: (P,) ``FaceDeformer`` and expressions (F, P, 4) when the faces move; None:
    every frame shows the neutral meshes.
    """

    meshes: list
    R_world_head: np.ndarray
    t_world_head: np.ndarray
    scale: np.ndarray
    person_ids: np.ndarray
    palettes: list
    deformers: list | None = None
    expressions: np.ndarray | None = None

    def mesh(self, k: int, p: int) -> HeadMesh:
        """Person p's unit-scale head mesh in frame index k (through the frame's expressive
        landmarks)."""
        if self.deformers is None:
            return self.meshes[p]
        return self.deformers[p].mesh(self.expressions[k, p])

    def __call__(self, k: int) -> list[RenderPerson]:
        return [RenderPerson(int(self.person_ids[p]), self.mesh(k, p), self.R_world_head[k, p],
                             self.t_world_head[k, p], float(self.scale[p]), self.palettes[p])
                for p in range(len(self.meshes))]


def scene_frames(state: SceneState) -> SceneFrames:
    """The render source of a scene; palettes from the scene's appearance stream."""
    rng = random_streams(state.config.seed)[STREAM_APPEARANCE]
    palettes = [random_palette(rng) for _ in range(len(state.person_ids))]
    meshes = person_meshes(state)
    if not np.any(state.expressions):
        return SceneFrames(meshes, state.R_world_head, state.t_world_head, state.scale,
                           state.person_ids, palettes)
    deformers = [FaceDeformer.build(m, state.shapes_head[p], state.scale[p]) for p, m in enumerate(meshes)]
    return SceneFrames(meshes, state.R_world_head, state.t_world_head, state.scale, state.person_ids,
                       palettes, deformers, state.expressions)


# Frames per visibility cast with moving faces: each (frame, person) has its own mesh and
# BVH (~1.5 MB, ~8 ms to build), so fewer at a time than the neutral meshes' 40.
EXPRESSIVE_FRAMES_PER_CAST = 8


def landmark_views(state: SceneState, source: SceneFrames, frames_per_cast: int = 40) -> np.ndarray:
    """(F, C, P, 70) bool: camera c sees landmark l of person p in frame f (heads occlude).

    ``annotate.head.visibility`` (code VISIBLE) on the noise-free landmarks, with each
    person's rendered mesh (``source.mesh``: the frame's expression) and true pose.
    Neutral meshes: each BVH is built once, in its head frame, and ``frames_per_cast``
    frames go to open3d together (bounded memory, few calls). Moving faces: one BVH per
    (frame, person), EXPRESSIVE_FRAMES_PER_CAST frames at a time.
    """
    clean = state.landmarks_world()
    F, P = clean.shape[:2]
    C = len(state.rig)
    expressive = source.deformers is not None
    caster = None if expressive else HeadFrameCaster(source.meshes)
    step = min(frames_per_cast, EXPRESSIVE_FRAMES_PER_CAST) if expressive else frames_per_cast
    out = np.empty((F, C, P, clean.shape[2]), dtype=bool)
    for f0 in range(0, F, step):
        frames = slice(f0, min(F, f0 + step))
        n = frames.stop - f0
        mesh_index = np.tile(np.arange(P), n)
        if expressive:
            caster = HeadFrameCaster([source.mesh(k, p) for k in range(f0, frames.stop) for p in range(P)])
            mesh_index = np.arange(n * P)
        heads = HeadPoses(source.R_world_head[frames].reshape(-1, 3, 3),
                          source.t_world_head[frames].reshape(-1, 3), np.tile(source.scale, n),
                          np.ones(n * P, bool), np.repeat(np.arange(n), P), mesh_index)
        code = landmark_visibility(state.rig, caster, heads, clean[frames].reshape(n * P, -1, 3)).code
        out[frames] = (code == VISIBLE).reshape(C, n, P, -1).transpose(1, 0, 2, 3)
    return out


# ------------------------------------------------------------------------------- writing

def _face_people(state: SceneState, published: PublishedLandmarks, visible: np.ndarray,
                 reconstructed: np.ndarray, f: int) -> list[FacePerson]:
    """The hdFace3d people of frame index f: present faces, unseen landmarks not reconstructed."""
    people = []
    for p in np.flatnonzero(state.present[f]):
        ok = reconstructed[f, p]
        landmarks = np.where(ok[:, None], published.landmarks_world[f, p], np.nan)
        score = np.where(ok, published.scores[f, p], 0.0)
        repro = np.where(ok, published.repro_errors_px[f, p], UNRECONSTRUCTED_REPRO_ERROR)
        cams = visible[f, :, p, :]                                          # (C, 70)
        visibility = [np.flatnonzero(cams[:, l]).tolist() for l in range(cams.shape[1])]
        people.append(FacePerson(int(state.person_ids[p]), landmarks, score, repro, visibility))
    return people


def _write_frames(layout: SequenceLayout, state: SceneState, published: PublishedLandmarks,
                  visible: np.ndarray, reconstructed: np.ndarray) -> None:
    """hdFace3d and hdPose3d_stage1_coco19 files, one per frame."""
    fps = state.config.fps
    for f, frame in enumerate(state.frames):
        write_face_frame(layout.face_file(frame), _face_people(state, published, visible, reconstructed, f))
        bodies = [(int(pid), state.joints19[f, p]) for p, pid in enumerate(state.person_ids)]
        write_body_frame(layout.body_file(frame), bodies, univ_time=round(1000.0 * frame / fps, 3))


def ground_truth_arrays(state: SceneState, published: PublishedLandmarks,
                        reconstructed: np.ndarray, num_views: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of ground_truth.npz (keys and meaning: GROUND_TRUTH_KEYS)."""
    return {
        "R_world_head": state.R_world_head, "t_world_head": state.t_world_head,
        "scale": state.scale, "shapes_head": state.shapes_head, "base_face": state.base_face,
        EXPRESSION_KEY: state.expressions,
        "person_ids": state.person_ids, "frames": state.frames, "present": state.present,
        "outlier_mask": published.outlier_mask, "reconstructed": reconstructed,
        "num_views": num_views.astype(np.int16), "head_heights_cm": state.head_heights_cm,
        **camera_arrays(state.rig),
    }


def camera_arrays(rig: CameraRig) -> dict[str, np.ndarray]:
    """The CAMERA_KEYS arrays of ground_truth.npz for ``rig`` (names as a plain string array)."""
    return {"camera_names": np.array(rig.names, dtype=str), "camera_K": rig.K,
            "camera_dist": rig.dist, "camera_R_cam_world": rig.R_cam_world,
            "camera_t_cam_world": rig.t_cam_world, "camera_image_size": rig.image_size}


def ground_truth_document(state: SceneState, sequence: str) -> dict:
    """ground_truth.json: what the npz holds, in which frames and units."""
    config = asdict(state.config)
    return {
        "format": GROUND_TRUTH_FORMAT,
        "version": GROUND_TRUTH_VERSION,
        "sequence": sequence,
        "note": "Ground truth of a synthetic sequence. The pipeline never reads it; "
                "benchmarks and tests compare against it.",
        "units": {"world": "cm", "angles": "radians in arrays", "images": "px"},
        "world_frame": "Panoptic world: y axis points down, floor at y = 0",
        "head_frame": "canonical head frame of annotate.head.head_frame: origin at the head "
                      "centre, x toward the subject's left ear, y up, z out of the face",
        "pose": "clean world landmarks = R_world_head @ (shapes_head + expression_offsets("
                "shapes_head, expressions)) + t_world_head: R_world_head, t_world_head are the "
                "skull's pose, expressions do not move it; shapes_head ~ scale * base_face "
                "(best similarity: R = I, t = 0)",
        "expressions": {
            "names": list(EXPRESSION_NAMES),
            "range": [0.0, 1.0],
            "units": "dimensionless: 0 the neutral face, 1 the model's full amplitude",
            "meaning": {
                "jaw": f"mandible opened by up to {JAW_MAX_DEG:g} deg about a hinge axis near "
                       "the ears (parallel to head x): the chin drops ~1.5 cm, the lower lips "
                       "with it",
                "smile": "mouth corners up to ~0.6 cm outward and ~0.45 cm up",
                "brow": "brows up to ~0.9 cm up",
                "blink": "upper lids onto the lower lids (1 = eyes closed); pupils do not move",
            },
            "model": "annotate.synth.expressions.expression_offsets (amplitudes scale with "
                     "the face)",
            "enabled": bool(state.config.expressions),
        },
        "landmark_order": "Panoptic face70: iBUG 68 + right pupil (68) + left pupil (69)",
        "frames": {"first": int(state.frames[0]), "count": int(len(state.frames)),
                   "fps": state.config.fps},
        "person_ids": [int(p) for p in state.person_ids],
        "cameras": list(state.rig.names),
        "config": config,
        "keys": {k: {"shape": s, "meaning": m} for k, (s, m) in GROUND_TRUTH_KEYS.items()},
    }


def _write_ground_truth(directory: Path, state: SceneState, sequence: str, arrays: dict) -> None:
    with atomic_file(directory / GROUND_TRUTH_NPZ, suffix=".npz") as tmp:   # savez keeps a .npz name
        np.savez_compressed(tmp, **arrays)
    write_panoptic_json(directory / GROUND_TRUTH_JSON, ground_truth_document(state, sequence))


# --------------------------------------------------------------------------- the sequence

def generate_sequence(root: str | os.PathLike, sequence: str = "synth_000",
                      config: SceneConfig = SceneConfig(), render_video: bool = True,
                      n_jobs: int = 2, show_progress: bool = False) -> Path:
    """Write the synthetic sequence ``<root>/<sequence>/`` for ``config``; return its path.

    Deterministic from ``config.seed``. Built in ``<root>/.<sequence>.partial-<pid>/`` and
    renamed into place at the end (replacing an existing sequence of that name).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    SequenceLayout(root, sequence)                                # validates the name
    staging = root / f".{sequence}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        layout = SequenceLayout(staging, sequence)
        _build(layout, config, render_video, n_jobs, show_progress)
        return replace_folder(layout.directory, root / sequence)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build(layout: SequenceLayout, config: SceneConfig, render_video: bool, n_jobs: int,
           show_progress: bool) -> None:
    state = simulate_scene(config)
    published = published_landmarks(state)
    source = scene_frames(state)
    visible = landmark_views(state, source)                     # (F, C, P, 70)
    num_views = visible.sum(axis=1)                                      # (F, P, 70)
    reconstructed = num_views >= config.min_views_per_landmark
    layout.directory.mkdir(parents=True)
    write_calibration(layout.calibration, state.rig, source=f"annotate.synth seed {config.seed}")
    _write_frames(layout, state, published, visible, reconstructed)
    _write_ground_truth(layout.directory, state, layout.sequence,
                        ground_truth_arrays(state, published, reconstructed, num_views))
    if render_video:
        render_videos(layout.directory, state.rig, source, config.num_frames, config.fps,
                      n_jobs=n_jobs, show_progress=show_progress)


# ---------------------------------------------------------------------------- reading back

@dataclass(frozen=True)
class GroundTruth:
    """ground_truth.npz of a sequence (meaning of each field: GROUND_TRUTH_KEYS)."""

    R_world_head: np.ndarray
    t_world_head: np.ndarray
    scale: np.ndarray
    shapes_head: np.ndarray
    base_face: np.ndarray
    person_ids: np.ndarray
    frames: np.ndarray
    present: np.ndarray
    outlier_mask: np.ndarray
    reconstructed: np.ndarray
    num_views: np.ndarray
    head_heights_cm: np.ndarray
    description: dict
    rig: CameraRig | None = None        # the true cameras (CAMERA_KEYS); None in 1.0.0 files
    expressions: np.ndarray | None = None   # (F, P, 4); all zero for files before 1.2.0

    def landmarks_world(self) -> np.ndarray:
        """(F, P, 70, 3) clean world landmarks (with the frame's expression), cm."""
        return pose_landmarks(self.shapes_head, self.R_world_head, self.t_world_head, self.expressions)


def truth_frames(truth: GroundTruth) -> SceneFrames:
    """The render source of a written sequence, from its ground truth: the same neutral
    meshes, expressions, poses and palettes as its videos and visibility lists (so a reader
    casting against ``source.mesh(k, p)`` sees what the generator saw)."""
    shapes, scale = truth.shapes_head, truth.scale
    meshes = [build_head_mesh(shapes[p] / scale[p]) for p in range(len(scale))]
    rng = random_streams(int(truth.description["config"]["seed"]))[STREAM_APPEARANCE]
    palettes = [random_palette(rng) for _ in range(len(scale))]
    if truth.expressions is None or not np.any(truth.expressions):
        return SceneFrames(meshes, truth.R_world_head, truth.t_world_head, scale, truth.person_ids, palettes)
    deformers = [FaceDeformer.build(m, shapes[p], scale[p]) for p, m in enumerate(meshes)]
    return SceneFrames(meshes, truth.R_world_head, truth.t_world_head, scale, truth.person_ids, palettes,
                       deformers, truth.expressions)


def load_ground_truth(seq_dir: str | os.PathLike) -> GroundTruth:
    """Read ``<seq_dir>/ground_truth.npz`` and ``ground_truth.json``.

    ``rig`` holds the true cameras when the file has them (version >= 1.1.0), else None;
    ``expressions`` the expression parameters (version >= 1.2.0), else zeros (neutral faces).
    """
    seq_dir = Path(seq_dir)
    description = json.loads((seq_dir / GROUND_TRUTH_JSON).read_text(encoding="utf-8"))
    if description.get("format") != GROUND_TRUTH_FORMAT:
        raise ValueError(f"{seq_dir / GROUND_TRUTH_JSON}: not a synthetic ground truth file")
    with np.load(seq_dir / GROUND_TRUTH_NPZ) as data:
        arrays = {key: data[key] for key in GROUND_TRUTH_KEYS
                  if key not in CAMERA_KEYS and key != EXPRESSION_KEY}
        F, P = arrays["R_world_head"].shape[:2]
        arrays[EXPRESSION_KEY] = (data[EXPRESSION_KEY] if EXPRESSION_KEY in data
                                  else np.zeros((F, P, NUM_EXPRESSIONS)))
        rig = None
        if all(key in data for key in CAMERA_KEYS):
            rig = CameraRig(tuple(str(n) for n in data["camera_names"]), data["camera_K"],
                            data["camera_dist"], data["camera_R_cam_world"],
                            data["camera_t_cam_world"], data["camera_image_size"])
    return GroundTruth(description=description, rig=rig, **arrays)
