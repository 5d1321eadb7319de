"""Which faces seen in different views are one person, with no prior (no body skeletons).

Each detected face is reduced to five keypoints of its 2D landmarks (eye centres, nose
tip, mouth corners) and a size (the square root of its box area, px). Then, per frame:

1. **Pairs.** Every two faces of two different views are compared by the symmetric
   epipolar distance of their common keypoints (``annotate.geometry.epipolar``; median
   over the keypoints, px), in units of their mean face size. Pairs within
   ``max_epipolar`` are triangulated (linear DLT of the keypoints) and kept when the point
   lies in front of both cameras and the face box, at that depth, has a physical size in
   ``face_size_cm``: this rejects faces that share an epipolar line by chance but lie at
   the wrong depth.
2. **Groups.** Pairs are merged greedily, best first, into groups with at most one face
   per view: two free faces start a group; a pair that touches a group brings in the
   other face (or the other face's group) when every member then reprojects within
   ``max_reprojection`` face sizes of the group's triangulated keypoints.
3. **Check.** Each group's keypoints are triangulated from all its views; while a view
   reprojects farther than ``max_reprojection`` face sizes (median over keypoints), the
   worst view leaves the group. Groups left with fewer than two views dissolve.
4. **Merge.** Two groups whose face centres lie within ``merge_cm`` are one person split
   in two (a member that spoilt the other's reprojection); they are merged.
5. **Chance groups.** A group at least half of whose faces lie near (``max_attach``) the
   projected face centre of a larger group that lacks their view is a chance match of
   other people's leftover faces (with many cameras such matches are likely); it dissolves.
6. **Leftovers.** Faces in no group (views showing too little of the face for its
   keypoints: a cheek, a jaw seen from behind) join, per view, the group whose projected
   face centre is nearest their landmarks' centroid, within ``max_attach`` face sizes
   (Hungarian, one face per group and view); the robust triangulation then keeps or
   rejects their landmarks one by one.

A face in no group stays unassociated (seen in one view only, or inconsistent with every
other view). Epipolar constraints cannot tell two people apart who stand on one epipolar
line of a two-camera pair at the same plausible depth; with three or more views that see
them the group check does.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from scipy.optimize import linear_sum_assignment

from annotate.detect.base import FaceDetections
from annotate.geometry.cameras import CameraRig
from annotate.geometry.epipolar import essential_matrices, symmetric_epipolar_distance
from annotate.geometry.triangulation import dlt_triangulate, normalised_projections, pixel_scale, \
    undistort_observations

NUM_KEYPOINTS = 5


@dataclass(frozen=True)
class CrossViewConfig:
    """max_epipolar: largest median keypoint epipolar distance of a pair, in face sizes;
    max_reprojection: largest median keypoint reprojection error of a view in its group,
    in face sizes; face_size_cm: (min, max) physical size of a face box at the
    triangulated depth (MTCNN and dlib boxes of real faces measure 12-25 cm); max_attach: a
    face without usable keypoints joins a group whose projected face centre lies within
    this many face sizes of its landmarks' centroid; merge_cm: groups whose face centres are
    closer are one person."""

    max_epipolar: float = 0.35
    max_reprojection: float = 0.25
    face_size_cm: tuple[float, float] = (8.0, 40.0)
    max_attach: float = 1.0
    merge_cm: float = 10.0


@dataclass(frozen=True)
class FrameGroups:
    """People found in one frame.

    members: (G, C) int, the index of the person's face in each view's detections, -1 = none.
    head_world: (G, 3) cm, the mean of the group's triangulated keypoints (face centre).
    reprojection_px: (G,) median keypoint reprojection error over the group's views.
    """

    members: np.ndarray
    head_world: np.ndarray
    reprojection_px: np.ndarray

    def __len__(self) -> int:
        return len(self.members)


def face_keypoints(points_px: np.ndarray) -> np.ndarray:
    """(D, 68|70, 2) landmarks -> (D, 5, 2): right eye centre (36-41), left eye centre (42-47),
    nose tip 30, mouth corners 48 and 54; NaN where the landmarks are."""
    pts = np.asarray(points_px, dtype=np.float64)
    if not len(pts):
        return np.zeros((0, NUM_KEYPOINTS, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)           # eyes not seen
        eyes = [np.nanmean(pts[:, 36:42], axis=1), np.nanmean(pts[:, 42:48], axis=1)]
    return np.stack(eyes + [pts[:, 30], pts[:, 48], pts[:, 54]], axis=1)


@dataclass(frozen=True)
class _Faces:
    """All faces of a frame, flattened over views: camera (N,), index in its view (N,),
    keypoints px (N, 5, 2) and normalised (N, 5, 2), size px (N,), centroid px (N, 2) of
    all its landmarks."""

    camera: np.ndarray
    index: np.ndarray
    keypoints_px: np.ndarray
    keypoints_norm: np.ndarray
    size_px: np.ndarray
    centroid_px: np.ndarray


def _gather(rig: CameraRig, faces: list[FaceDetections]) -> _Faces:
    camera = np.concatenate([np.full(len(f), c) for c, f in enumerate(faces)]).astype(np.int64)
    index = np.concatenate([np.arange(len(f)) for f in faces]).astype(np.int64)
    kp_px = np.concatenate([face_keypoints(f.points_px) for f in faces]) if len(camera) else np.zeros((0, 5, 2))
    boxes = np.concatenate([f.boxes_px for f in faces]) if len(camera) else np.zeros((0, 4))
    size = np.sqrt(np.clip(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), 0, None))
    # Undistort per camera: (C, N, 2) with each face's keypoints only in its own camera.
    dense = np.full((len(rig), len(camera) * NUM_KEYPOINTS, 2), np.nan)
    rows = np.arange(len(camera) * NUM_KEYPOINTS)
    dense[np.repeat(camera, NUM_KEYPOINTS), rows] = kp_px.reshape(-1, 2)
    norm = undistort_observations(rig, dense)[np.repeat(camera, NUM_KEYPOINTS), rows].reshape(-1, NUM_KEYPOINTS, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                           # faces without points
        centroid = np.concatenate([np.nanmean(fd.points_px, axis=1) for fd in faces]) if len(camera) \
            else np.zeros((0, 2))
    return _Faces(camera, index, kp_px, norm, size, centroid)


def _triangulate(rig: CameraRig, f: _Faces, members: np.ndarray) -> np.ndarray:
    """(5, 3) world keypoints of the faces ``members`` (indices into f, distinct cameras)."""
    points = np.full((NUM_KEYPOINTS, len(rig), 2), np.nan)
    points[:, f.camera[members]] = np.swapaxes(f.keypoints_norm[members], 0, 1)
    return dlt_triangulate(normalised_projections(rig), points)


def _face_size_cm(rig: CameraRig, f: _Faces, members: np.ndarray, centre_world: np.ndarray) -> np.ndarray:
    """(M,) physical size of each member's box at the depth of its centre_world (M, 3) (NaN
    behind the camera)."""
    depth = rig.world_to_camera(centre_world)[f.camera[members], np.arange(len(members)), 2]
    with np.errstate(invalid="ignore"):
        return np.where(depth > 0, f.size_px[members] * depth / pixel_scale(rig)[f.camera[members]], np.nan)


def _pair_costs(rig: CameraRig, f: _Faces, config: CrossViewConfig) -> np.ndarray:
    """(N, N) cost (median epipolar distance in face sizes) of the kept pairs, inf elsewhere."""
    E = essential_matrices(rig)[f.camera[:, None], f.camera[None, :]]              # (N, N, 3, 3)
    scale = pixel_scale(rig)[f.camera]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)           # keypoints not shared
        d = symmetric_epipolar_distance(E[:, :, None], f.keypoints_norm[:, None], f.keypoints_norm[None, :],
                                        scale[:, None, None], scale[None, :, None])   # (N, N, 5) px
        cost = np.nanmedian(d, axis=-1) / (0.5 * (f.size_px[:, None] + f.size_px[None, :]))
    cost[f.camera[:, None] == f.camera[None, :]] = np.inf
    cost[~np.isfinite(cost) | (cost > config.max_epipolar)] = np.inf
    # Plausible depth: triangulate every remaining pair at once, (M, 5, C, 2) with NaN elsewhere.
    iu, iv = np.nonzero(np.triu(np.isfinite(cost)))
    if len(iu):
        points = np.full((len(iu), NUM_KEYPOINTS, len(rig), 2), np.nan)
        k = np.arange(len(iu))[:, None]
        points[k, np.arange(NUM_KEYPOINTS)[None], f.camera[iu][:, None]] = f.keypoints_norm[iu]
        points[k, np.arange(NUM_KEYPOINTS)[None], f.camera[iv][:, None]] = f.keypoints_norm[iv]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)                       # keypoints not shared
            centre = np.nanmean(dlt_triangulate(normalised_projections(rig), points), axis=1)     # (M, 3)
        lo, hi = config.face_size_cm
        size = np.stack([_face_size_cm(rig, f, iu, centre), _face_size_cm(rig, f, iv, centre)])   # (2, M)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(size) & (size >= lo) & (size <= hi)).all(axis=0)
        cost[iu[bad], iv[bad]] = cost[iv[bad], iu[bad]] = np.inf
    return cost


def _reprojection(rig: CameraRig, f: _Faces, members: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the members' keypoints: (5, 3) world points and (M,) each member's median
    keypoint reprojection error in face sizes (inf where nothing could be compared)."""
    idx = np.array(members)
    X = _triangulate(rig, f, idx)
    projected = rig.project_world(X)[f.camera[idx]]                                      # (M, 5, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        error = np.nanmedian(np.linalg.norm(projected - f.keypoints_px[idx], axis=-1), axis=1)
    return X, np.where(np.isfinite(error), error / f.size_px[idx], np.inf)


def _grow_groups(rig: CameraRig, f: _Faces, cost: np.ndarray, config: CrossViewConfig) -> list[list[int]]:
    """Greedy growth over the kept pairs, best first (module docstring, step 2): a pair of
    free faces starts a group; a pair touching a group brings in its other face, or the
    other face's group, when the views stay distinct and every member then reprojects
    within ``max_reprojection``."""
    group_of = np.full(len(f.camera), -1)
    groups: list[list[int]] = []
    iu, iv = np.nonzero(np.triu(np.isfinite(cost)))
    for k in np.argsort(cost[iu, iv], kind="stable"):
        u, v = int(iu[k]), int(iv[k])
        gu, gv = int(group_of[u]), int(group_of[v])
        if gu >= 0 and gu == gv:
            continue
        merged = (groups[gu] if gu >= 0 else [u]) + (groups[gv] if gv >= 0 else [v])
        if len(set(f.camera[merged].tolist())) < len(merged):
            continue
        if (gu >= 0 or gv >= 0) and not (_reprojection(rig, f, merged)[1] <= config.max_reprojection).all():
            continue
        target = gu if gu >= 0 else (gv if gv >= 0 else len(groups))
        if target == len(groups):
            groups.append([])
        if gu >= 0 and gv >= 0:
            groups[gv] = []
        groups[target] = merged
        group_of[merged] = target
    return [g for g in groups if len(g) >= 2]


def _check_group(rig: CameraRig, f: _Faces, members: list[int], config: CrossViewConfig):
    """Drop views that reproject badly (module docstring, step 3): (members, keypoints (5, 3),
    median reprojection px) or None when fewer than two views are left."""
    members = list(members)
    while len(members) >= 2:
        X, relative = _reprojection(rig, f, members)
        worst = int(np.argmax(relative))
        if relative[worst] <= config.max_reprojection:
            error_px = relative * f.size_px[np.array(members)]
            return members, X, float(np.median(error_px))
        members.pop(worst)
    return None


def _merge_close(f: _Faces, members: list[list[int]], heads: list[np.ndarray], errors: list[float],
                 merge_cm: float) -> None:
    """Step 4 (in place): two groups whose face centres lie within ``merge_cm`` are one person
    split (no two faces are that close): the smaller joins the larger, except in the views
    the larger already has (those faces are left to step 5)."""
    merged = True
    while merged and len(members) > 1:
        merged = False
        d = np.linalg.norm(np.asarray(heads)[:, None] - np.asarray(heads)[None], axis=-1)
        d[np.diag_indices(len(d))] = np.inf
        a, b = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[a, b] <= merge_cm:
            big, small = (a, b) if len(members[a]) >= len(members[b]) else (b, a)
            cams = set(f.camera[members[big]].tolist())
            members[big] += [i for i in members[small] if f.camera[i] not in cams]
            for lst in (members, heads, errors):
                del lst[small]
            merged = True


def _drop_explained_groups(rig: CameraRig, f: _Faces, members: list[list[int]], heads: list[np.ndarray],
                           errors: list[float], config: CrossViewConfig) -> None:
    """Step 5 (in place): a group at least half of whose faces each lie within ``max_attach``
    face sizes of the projected face centre of a larger group, in a view that group lacks,
    is a chance match of other people's leftover faces (many cameras make such matches
    likely): it dissolves, and step 6 gives its faces to the groups they belong to."""
    if len(members) < 2:
        return
    size = np.array([len(m) for m in members])
    centre_px = rig.project_world(np.asarray(heads))                                     # (C, G, 2)
    drop = []
    for g in np.argsort(size, kind="stable"):
        larger = [k for k in range(len(members)) if size[k] > size[g] and k not in drop]
        explained = 0
        for i in members[g]:
            c = f.camera[i]
            lacking = [k for k in larger if c not in f.camera[members[k]]]
            d = np.linalg.norm(centre_px[c, lacking] - f.centroid_px[i], axis=-1) / f.size_px[i]
            explained += bool((d <= config.max_attach).any())
        if 2 * explained >= len(members[g]):
            drop.append(int(g))
    for g in sorted(drop, reverse=True):
        for lst in (members, heads, errors):
            del lst[g]


def _attach_leftovers(rig: CameraRig, f: _Faces, members: list[list[int]], heads: np.ndarray,
                      config: CrossViewConfig) -> None:
    """Step 6 (in place): faces in no group (typically views showing too little of the face
    for its keypoints: a cheek, a jaw seen from behind) join the group whose projected
    face centre is nearest their landmarks' centroid, within ``max_attach`` face sizes, one
    face per group and view (Hungarian per view)."""
    if not members:
        return
    taken = {i for g in members for i in g}
    centre_px = rig.project_world(heads)                                                 # (C, G, 2)
    for c in range(len(rig)):
        free = [i for i in np.flatnonzero(f.camera == c) if i not in taken]
        open_groups = [g for g, m in enumerate(members) if c not in f.camera[m]]
        if not free or not open_groups:
            continue
        d = np.linalg.norm(f.centroid_px[free][:, None] - centre_px[c, open_groups][None], axis=-1)
        cost = np.where(np.isfinite(d), d / f.size_px[free][:, None], np.inf)
        cost = np.where(cost <= config.max_attach, cost, 1e9)
        rows, cols = linear_sum_assignment(cost)
        for r, k in zip(rows, cols):
            if cost[r, k] < 1e9:
                members[open_groups[k]].append(int(free[r]))


def associate_frame(rig: CameraRig, faces: list[FaceDetections],
                    config: CrossViewConfig = CrossViewConfig()) -> FrameGroups:
    """Group one frame's faces (``faces[c]``: camera c's detections) into people."""
    C = len(rig)
    if len(faces) != C:
        raise ValueError(f"need the detections of all {C} views, got {len(faces)}")
    f = _gather(rig, faces)
    if len(f.camera) < 2:
        return FrameGroups(np.zeros((0, C), np.int64), np.zeros((0, 3)), np.zeros(0))
    members, heads, errors = [], [], []
    for group in _grow_groups(rig, f, _pair_costs(rig, f, config), config):
        checked = _check_group(rig, f, group, config)
        if checked is None:
            continue
        idx, X, error = checked
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            head = np.nanmean(X, axis=0)
        if np.isfinite(head).all():
            members.append(list(idx))
            heads.append(head)
            errors.append(error)
    if not members:
        return FrameGroups(np.zeros((0, C), np.int64), np.zeros((0, 3)), np.zeros(0))
    _merge_close(f, members, heads, errors, config.merge_cm)
    _drop_explained_groups(rig, f, members, heads, errors, config)
    if not members:
        return FrameGroups(np.zeros((0, C), np.int64), np.zeros((0, 3)), np.zeros(0))
    heads = np.stack(heads)
    _attach_leftovers(rig, f, members, heads, config)
    rows = np.full((len(members), C), -1, dtype=np.int64)
    for g, idx in enumerate(members):
        rows[g, f.camera[idx]] = f.index[idx]
    return FrameGroups(rows, heads, np.asarray(errors))
