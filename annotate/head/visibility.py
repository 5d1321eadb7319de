"""Per-landmark visibility of every (face, camera) view, with its cause kept apart.

Codes of ``LandmarkVisibility.code`` (uint8; schemas/labels.schema.yaml documents them):

    0 VISIBLE            inside the image and nothing in front of it
    1 OUTSIDE_IMAGE      behind the camera, beyond the lens model's monotonic radius, or
                         projecting outside the image
    2 SELF_OCCLUDED      hidden by the person's own head (the far side of the face)
    3 OCCLUDED_BY_OTHER  not self-occluded, hidden by another person's head
    4 NO_POSE            not computable: the face has no usable pose (its fit failed)
    5 NOT_TESTED         inside the image, occlusion not ray-cast (``views.visibility`` off)

Method. Every head is a closed mesh (``annotate.head.head_mesh``: a surface through the
landmarks completed by a skull) posed by its fit. For each landmark inside the image the
segment from the camera centre to the landmark is cast against the landmark's own head,
and, if nothing of it is in the way, against each other head of the same frame whose
bounding sphere the segment passes. A head hides the landmark when its first hit is nearer
than the landmark's distance minus ``TOLERANCE_CM``: the landmarks lie on their own mesh,
so a ray toward one ends on the surface, and grazing rays near the silhouette meet it a
little early. Self-occlusion takes precedence, so OCCLUDED_BY_OTHER means "would be seen
without the other person". Only heads with a usable pose are in the scene: bodies, hands
and heads whose fit failed hide nothing.

All rays go to one ``HeadFrameCaster`` (one BVH per distinct mesh, in the head frame), so
the views of every frame in a chunk are cast together. Units: world cm, pixels.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from annotate.geometry.cameras import CameraRig
from annotate.head.per_view import LandmarkViews, project_landmarks
from annotate.head.raycast import HeadFrameCaster, rays_from

VISIBLE, OUTSIDE_IMAGE, SELF_OCCLUDED, OCCLUDED_BY_OTHER, NO_POSE, NOT_TESTED = range(6)
CODE_NAMES = {VISIBLE: "visible", OUTSIDE_IMAGE: "outside_image", SELF_OCCLUDED: "self_occluded",
              OCCLUDED_BY_OTHER: "occluded_by_other", NO_POSE: "no_pose", NOT_TESTED: "not_tested"}
TOLERANCE_CM = 0.5
# The inner face (iBUG 17-67: brows, nose, eyes, mouth): the face-visible flag needs a
# third of it, which a clean profile view (one eye, half the mouth, the nose) reaches.
INNER_FACE = np.arange(17, 68)
FACE_VISIBLE_MIN_LANDMARKS = 17
# Sphere culling margin, head-frame cm: covers float32 rounding of the casts.
_CULL_MARGIN_CM = 0.05


@dataclass(frozen=True)
class HeadPoses:
    """M posed heads: ``x_world = scale * R_world_head @ x_head + t_world_head``.

    R_world_head (M, 3, 3); t_world_head (M, 3) cm; scale (M,).
    ok: (M,) bool, a usable pose; heads without one are neither tested nor occluders.
    group: (M,) int, heads occlude each other only within a group (the frame).
    mesh_index: (M,) int, the caster mesh of each head.
    """

    R_world_head: np.ndarray
    t_world_head: np.ndarray
    scale: np.ndarray
    ok: np.ndarray
    group: np.ndarray
    mesh_index: np.ndarray

    @classmethod
    def one_mesh(cls, R_world_head, t_world_head, scale, ok, group) -> "HeadPoses":
        """Heads that all share mesh 0 (a label stage's head model)."""
        ok = np.asarray(ok, bool) & np.isfinite(np.asarray(scale, np.float64))
        return cls(np.asarray(R_world_head, np.float64), np.asarray(t_world_head, np.float64),
                   np.asarray(scale, np.float64), ok, np.asarray(group), np.zeros(len(ok), np.int64))


@dataclass(frozen=True)
class LandmarkVisibility:
    """code: (C, M, L) uint8 (module docstring). occluder: (C, M, L) int32 index of the
    nearest other head hiding the landmark, -1 unless code is OCCLUDED_BY_OTHER."""

    code: np.ndarray
    occluder: np.ndarray


def untested_codes(inside: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(C, M, L) uint8 codes before ray casting: OUTSIDE_IMAGE, NO_POSE or NOT_TESTED.

    inside: (C, M, L) bool (``LandmarkViews.inside``); ok: (M,) bool usable poses.
    """
    code = np.where(inside, NOT_TESTED, OUTSIDE_IMAGE).astype(np.uint8)
    code[:, ~np.asarray(ok, bool)] = NO_POSE
    return code


def landmark_visibility(rig: CameraRig, caster: HeadFrameCaster, heads: HeadPoses,
                        landmarks_world: np.ndarray, views: LandmarkViews | None = None,
                        tolerance_cm: float = TOLERANCE_CM) -> LandmarkVisibility:
    """Visibility codes of M landmark sets (M, L, 3) world cm, set m on head m, in C cameras.

    views: ``project_landmarks(rig, landmarks_world)`` when the caller has it already.
    """
    lm = np.asarray(landmarks_world, dtype=np.float64)
    views = project_landmarks(rig, lm) if views is None else views
    code = untested_codes(views.inside, heads.ok)
    occluder = np.full(code.shape, -1, dtype=np.int32)
    test = code == NOT_TESTED
    if not test.any():
        return LandmarkVisibility(code, occluder)
    origins_head, targets_head = _camera_and_landmarks_in_head_frames(heads, rig.centres_world, lm)

    # 1. Own head: the segment from the camera to the landmark, in the landmark's own head
    # frame (head-frame length x scale = world length), shortened by the tolerance. Built
    # in float32, open3d's precision, for the whole (C, M, L) block, then compacted.
    segments = np.empty(code.shape + (6,), dtype=np.float32)
    vector = segments[..., 3:]
    segments[..., :3] = origins_head[:, :, None]
    np.subtract(targets_head.astype(np.float32)[None], segments[..., :3], out=vector)
    with np.errstate(invalid="ignore", divide="ignore"):
        length = heads.scale.astype(np.float32)[None, :, None] * np.sqrt(np.einsum("cmli,cmli->cml", vector, vector))
        vector *= (np.maximum(length - np.float32(tolerance_cm), 0.0) / length)[..., None]
    tested = np.flatnonzero(test)
    mesh = heads.mesh_index[np.unravel_index(tested, code.shape)[1]] if len(caster) > 1 else 0
    self_hidden = caster.occluded(np.compress(test.ravel(), segments.reshape(-1, 6), axis=0), mesh)
    code.reshape(-1)[tested] = np.where(self_hidden, SELF_OCCLUDED, VISIBLE)

    # 2. Other heads of the same frame, for the landmarks the own head lets through.
    c, m, l, q, direction, distance = _other_head_candidates(rig, heads, code == VISIBLE, lm, tolerance_cm,
                                                             caster.bounding_radius)
    if len(c) == 0:
        return LandmarkVisibility(code, occluder)
    R, t, s = heads.R_world_head[q], heads.t_world_head[q], heads.scale[q]
    target = np.einsum("nji,nj->ni", R, lm[m, l] - t) / s[:, None]
    o = origins_head[c, q]
    t_other = caster.t_hit(rays_from(o, (target - o) / distance[:, None]), heads.mesh_index[q])
    hidden = np.flatnonzero(t_other < distance - tolerance_cm)
    ray = np.ravel_multi_index((c[hidden], m[hidden], l[hidden]), code.shape)
    order = np.lexsort((t_other[hidden], ray))                  # nearest occluder first per ray
    first = hidden[order[np.unique(ray[order], return_index=True)[1]]]
    code[c[first], m[first], l[first]] = OCCLUDED_BY_OTHER
    occluder[c[first], m[first], l[first]] = q[first]
    return LandmarkVisibility(code, occluder)


def _camera_and_landmarks_in_head_frames(heads: HeadPoses, centres_world: np.ndarray,
                                         landmarks_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera centres (C, M, 3) and each set's landmarks (M, L, 3) in head m's frame, cm.

    Computed per (camera, head) and (head, landmark) rather than per ray, so the big casts
    need no per-ray rotation.
    """
    R, t, s = heads.R_world_head, heads.t_world_head, heads.scale
    with np.errstate(invalid="ignore", divide="ignore"):
        origins = np.einsum("mji,cmj->cmi", R, centres_world[:, None, :] - t[None]) / s[None, :, None]
        targets = np.einsum("mji,mlj->mli", R, landmarks_world - t[:, None, :]) / s[:, None, None]
    return origins, targets


def _same_group_pairs(heads: HeadPoses) -> tuple[np.ndarray, np.ndarray]:
    """(K,) head p and (K,) head q for every ordered pair p != q of usable heads in one group."""
    usable = np.flatnonzero(heads.ok)
    order = usable[np.argsort(heads.group[usable], kind="stable")]
    _, start, count = np.unique(heads.group[order], return_index=True, return_counts=True)
    size = np.repeat(count, count)                               # group size per element
    i = np.repeat(np.arange(len(order)), size)
    within = np.arange(len(i)) - np.repeat(np.cumsum(size) - size, size)
    j = np.repeat(np.repeat(start, count), size) + within
    p, q = order[i], order[j]
    distinct = p != q
    return p[distinct], q[distinct]


def _other_head_candidates(rig: CameraRig, heads: HeadPoses, visible: np.ndarray, landmarks_world: np.ndarray,
                           tolerance_cm: float, bounding_radius: np.ndarray) -> tuple[np.ndarray, ...]:
    """The (ray, other head) pairs to cast: a ray from camera c to a ``visible`` (C, M, L)
    landmark l of head m, and a head q of the same group whose bounding sphere the segment
    (shortened by the tolerance) passes.

    First per (camera, head pair): the two heads' spheres must overlap as seen from the
    camera, the other one not entirely behind; then per ray: segment against sphere.
    Returns c, m, l, q (N,) and the rays' unit world directions (N, 3) and lengths (N,) cm.
    """
    none = np.zeros(0, np.int64)
    p, q = _same_group_pairs(heads)
    if len(p) == 0:
        return none, none, none, none, np.zeros((0, 3)), np.zeros(0)
    centres = rig.centres_world
    radius = heads.scale * bounding_radius[heads.mesh_index] + _CULL_MARGIN_CM   # (M,) world cm
    to_p = heads.t_world_head[p][None] - centres[:, None]                        # (C, K, 3)
    to_q = heads.t_world_head[q][None] - centres[:, None]
    dp, dq = np.linalg.norm(to_p, axis=-1), np.linalg.norm(to_q, axis=-1)
    cos_angle = np.einsum("cki,cki->ck", to_p, to_q) / (dp * dq)
    half_p = np.arcsin(np.minimum(radius[p] / dp, 1.0))
    half_q = np.arcsin(np.minimum(radius[q] / dq, 1.0))
    inside_a_sphere = (dp <= radius[p]) | (dq <= radius[q])
    overlap = (np.arccos(np.clip(cos_angle, -1.0, 1.0)) < half_p + half_q) | inside_a_sphere
    cams, pairs = np.nonzero(overlap & (dq - radius[q] < dp + radius[p]))

    k, l = np.nonzero(visible[cams, p[pairs]])                               # (n, L) -> rays
    c, m, q = cams[k], p[pairs[k]], q[pairs[k]]
    offset = landmarks_world[m, l] - centres[c]
    distance = np.sqrt(np.einsum("ni,ni->n", offset, offset))
    direction = offset / distance[:, None]
    w = heads.t_world_head[q] - centres[c]
    along = np.clip(np.einsum("ni,ni->n", w, direction), 0.0, distance - tolerance_cm)
    gap = w - along[:, None] * direction
    near = np.einsum("ni,ni->n", gap, gap) <= radius[q] ** 2
    return c[near], m[near], l[near], q[near], direction[near], distance[near]


# ---------------------------------------------------------------------- per-view figures

def visible_fraction(code: np.ndarray) -> np.ndarray:
    """(...,) float32 share of the landmarks (last axis) that are VISIBLE; NaN for a view
    with any NO_POSE or NOT_TESTED landmark (not computed)."""
    fraction = (code == VISIBLE).mean(axis=-1).astype(np.float32)
    unknown = ((code == NO_POSE) | (code == NOT_TESTED)).any(axis=-1)
    return np.where(unknown, np.float32(np.nan), fraction)


def face_visible(code: np.ndarray) -> np.ndarray:
    """(...,) bool: at least FACE_VISIBLE_MIN_LANDMARKS of the inner face are VISIBLE."""
    return (code[..., INNER_FACE] == VISIBLE).sum(axis=-1) >= FACE_VISIBLE_MIN_LANDMARKS


def occluder_sets(occluder_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row the sorted distinct ids >= 0 of ``occluder_ids`` (N, L) (-1 = none), as Arrow
    list pieces: offsets (N+1,) int32 and values int32."""
    ids = np.sort(np.asarray(occluder_ids), axis=1)
    new = ids >= 0
    new[:, 1:] &= ids[:, 1:] != ids[:, :-1]
    offsets = np.concatenate([[0], np.cumsum(new.sum(axis=1))]).astype(np.int32)
    return offsets, ids[new].astype(np.int32)


# -------------------------------------------------------- agreement with published lists

@dataclass
class ListAgreement:
    """Our VISIBLE flag against published per-landmark camera lists (Panoptic face70
    ``visibility``), counted over (face, landmark, camera) triples: a positive is "visible"
    for us and "listed" for them.

    false_negative_codes: our code for the triples they list and we do not call visible.
    """

    faces: int = 0
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    true_negative: int = 0
    false_negative_codes: Counter = field(default_factory=Counter)

    def add(self, code: np.ndarray, listed: np.ndarray) -> None:
        """Count faces: code (F, C, L) uint8 ours, listed (F, C, L) bool theirs."""
        ours = code == VISIBLE
        self.faces += len(code)
        self.true_positive += int((ours & listed).sum())
        self.false_positive += int((ours & ~listed).sum())
        self.false_negative += int((~ours & listed).sum())
        self.true_negative += int((~ours & ~listed).sum())
        missed = code[~ours & listed]
        self.false_negative_codes.update({CODE_NAMES[k]: int(n) for k, n in
                                          zip(*np.unique(missed, return_counts=True))})

    def to_json(self) -> dict:
        tp, fp, fn, tn = self.true_positive, self.false_positive, self.false_negative, self.true_negative
        total = tp + fp + fn + tn

        def ratio(a: int, b: int):
            return round(a / b, 5) if b else None

        return {"faces": self.faces, "triples": total, "agreement": ratio(tp + tn, total),
                "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
                "true_positive": tp, "false_positive": fp, "false_negative": fn,
                "true_negative": tn, "false_negative_codes": dict(self.false_negative_codes)}
