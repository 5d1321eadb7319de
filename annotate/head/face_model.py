"""A plausible adult face as 70 Panoptic landmarks, and per-person variations of it.

``base_face_landmarks()`` is the synthetic generator's mean face: iBUG-68 + two pupils in
the canonical head frame of ``annotate.head.head_frame`` (x toward the subject's left
ear, y up, z out of the face, origin at the head centre), in centimetres.

The coordinates below are laid out by hand from published adult anthropometry (Farkas,
*Anthropometry of the Head and Face*, 1994, mean of the male and female norms, rounded):

==========================================  =========  ======================================
measure                                     value      where it shows below
==========================================  =========  ======================================
interpupillary distance                     6.3 cm     pupils 68/69 at x = -/+3.15
palpebral fissure (eye) width ex-en         3.0 cm     corners 36/39 at x = -4.475 / -1.65,
                                                         the outer one 1.0 cm further back
intercanthal width en-en                    3.3 cm     inner corners 39/42 at x = -/+1.65
biocular width ex-ex                        9.0 cm     outer corners 36/45
nasal tip protrusion, ahead of the          2.3 cm     tip 30 at z = 1.8 (inner corners z = 0,
  coronal plane of the four eye corners                outer corners z = -1.0: mean -0.5)
nasion - subnasale (nose height)            4.7 cm     27 at y = 0.35, 33 at y = -4.35
nostril base width (iBUG 31-35)             2.7 cm     31/35 at x = -/+1.35 (the alar wings,
                                                         not landmarks, are ~3.4 cm apart)
mouth width ch-ch                           5.0 cm     corners 48/54 at x = -/+2.5
upper / lower vermilion height              0.7 / 1.0  51 to stomion / stomion to 57
eye line - menton (chin)                    11.5 cm    chin 8 at y = -11.5
bizygomatic width (contour near the ears)   14.0 cm    contour ends 0/16 at x = -/+7.0
bigonial width (jaw angles)                 11.2 cm    contour 4/12 at x = -/+5.6
brow height above the pupil                 2.0-2.5    brows 17-26
==========================================  =========  ======================================

The jaw contour 0-16 runs from just in front of the subject's right ear, down around the
chin (8), to the left ear, receding 6.5 cm behind the inner eye corners at its ends, as the
outline of a face does when seen from the front. The table is written in a provisional
frame (origin between the inner eye corners, y up, z forward) and then passed through
``canonicalize_landmarks``, so the result is exactly in the project's canonical frame.
"""
from __future__ import annotations

import functools

import numpy as np

from annotate.head.head_frame import (LEFT_EYE, NUM_LANDMARKS, RIGHT_EYE, HeadFrameSpec,
                                          canonicalize_landmarks)
from annotate.geometry.procrustes import umeyama
from annotate.head.whenet_reference import WHENET_FACE70, reference_points_cm

RIGHT_PUPIL = 68
LEFT_PUPIL = 69

# iBUG points on the subject's RIGHT half of the face (negative x) and on the midline, in
# the provisional frame, cm. The left half is their mirror image (x -> -x) with the iBUG
# index given by _MIRROR.
_RIGHT_AND_MIDLINE: dict[int, tuple[float, float, float]] = {
    # jaw contour: right ear (0) -> chin (8)
    0: (-7.00, -0.60, -6.50), 1: (-6.95, -2.50, -5.90), 2: (-6.70, -4.40, -5.10),
    3: (-6.30, -6.20, -4.20), 4: (-5.60, -7.90, -3.10), 5: (-4.60, -9.30, -1.90),
    6: (-3.35, -10.40, -0.90), 7: (-1.80, -11.15, -0.25), 8: (0.00, -11.50, 0.00),
    # right brow, outer (17) -> inner (21)
    17: (-5.50, 1.45, -1.70), 18: (-4.60, 2.15, -0.70), 19: (-3.50, 2.45, 0.00),
    20: (-2.40, 2.35, 0.50), 21: (-1.30, 2.05, 0.80),
    # nose bridge (27 nasion-ish -> 30 tip) and base (31 right wing -> 33 subnasale)
    27: (0.00, 0.35, 0.60), 28: (0.00, -0.75, 0.95), 29: (0.00, -1.95, 1.30),
    30: (0.00, -3.20, 1.80),
    31: (-1.35, -3.85, -0.35), 32: (-0.70, -4.15, 0.00), 33: (0.00, -4.35, 0.15),
    # right eye: outer corner 36, upper lid 37-38, inner corner 39, lower lid 40-41
    36: (-4.475, 0.15, -1.00), 37: (-3.75, 0.50, -0.45), 38: (-2.6375, 0.50, -0.12),
    39: (-1.65, 0.00, 0.00), 40: (-2.6375, -0.45, -0.17), 41: (-3.75, -0.40, -0.50),
    # outer lips: right corner 48, upper 49-51 (51 = top centre), lower 57 (centre) - 59
    48: (-2.50, -6.50, -0.90), 49: (-1.75, -6.05, -0.25), 50: (-0.85, -5.65, 0.25),
    51: (0.00, -5.80, 0.35), 57: (0.00, -7.55, 0.10), 58: (-0.90, -7.45, 0.00),
    59: (-1.75, -7.10, -0.40),
    # inner lips (closed mouth): right corner 60, upper 61-62, lower 66-67
    60: (-2.30, -6.50, -0.80), 61: (-0.90, -6.40, 0.05), 62: (0.00, -6.45, 0.15),
    66: (0.00, -6.55, 0.10), 67: (-0.90, -6.55, 0.00),
}

# iBUG index of the mirror image of each right-half point.
_MIRROR: dict[int, int] = {
    **{i: 16 - i for i in range(8)},                         # jaw 0-7 <-> 16-9
    **{17 + i: 26 - i for i in range(5)},                    # brows 17-21 <-> 26-22
    31: 35, 32: 34,                                          # nose wings
    36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46,          # eyes
    48: 54, 49: 53, 50: 52, 59: 55, 58: 56,                  # outer lips
    60: 64, 61: 63, 67: 65,                                  # inner lips
}


def _provisional_landmarks() -> np.ndarray:
    """(70, 3) the table above, mirrored, pupils at the eye centres; provisional frame, cm."""
    points = np.full((NUM_LANDMARKS, 3), np.nan)
    for index, xyz in _RIGHT_AND_MIDLINE.items():
        points[index] = xyz
    for right, left in _MIRROR.items():
        points[left] = points[right] * np.array([-1.0, 1.0, 1.0])
    set_pupils(points)
    assert np.isfinite(points).all(), "every iBUG point must be defined"
    return points


def set_pupils(landmarks: np.ndarray) -> np.ndarray:
    """Set points 68/69 of (..., 70, 3) in place to the centres of eyes 36-41 / 42-47."""
    landmarks[..., RIGHT_PUPIL, :] = landmarks[..., RIGHT_EYE, :].mean(axis=-2)
    landmarks[..., LEFT_PUPIL, :] = landmarks[..., LEFT_EYE, :].mean(axis=-2)
    return landmarks


# The mouth region a face variant moves forward or back: lips 48-67 and the chin 5-11.
MOUTH_REGION = tuple(range(48, 68)) + tuple(range(5, 12))


@functools.lru_cache(maxsize=16)
def _base_face(spec: HeadFrameSpec, mouth_forward_cm: float, width_scale: float) -> np.ndarray:
    points = _provisional_landmarks()
    points[list(MOUTH_REGION), 2] += mouth_forward_cm
    points[:, 0] *= width_scale
    set_pupils(points)
    face = canonicalize_landmarks(points, spec)
    face.setflags(write=False)
    return face


def base_face_landmarks(spec: HeadFrameSpec = HeadFrameSpec(), mouth_forward_cm: float = 0.0,
                        width_scale: float = 1.0) -> np.ndarray:
    """(70, 3) the mean adult face in the canonical head frame of ``spec``, cm (a copy).

    Variants for tests of the zero pose on other face shapes: ``mouth_forward_cm`` moves the
    lips and chin (``MOUTH_REGION``) forward (negative: back) before canonicalisation, and
    ``width_scale`` scales the face's width (x).
    """
    return _base_face(spec, float(mouth_forward_cm), float(width_scale)).copy()


# --- per-person shapes ---------------------------------------------------------------------

def _pupil_map() -> np.ndarray:
    """(70, 68) linear map from points 0-67 to all 70 (pupils = eye centres)."""
    M = np.zeros((NUM_LANDMARKS, 68))
    M[:68, :68] = np.eye(68)
    M[RIGHT_PUPIL, list(RIGHT_EYE)] = 1.0 / len(RIGHT_EYE)
    M[LEFT_PUPIL, list(LEFT_EYE)] = 1.0 / len(LEFT_EYE)
    return M


def _frame_constraints(base: np.ndarray) -> np.ndarray:
    """(9, 68*3) linear functionals of a perturbation of points 0-67 of ``base`` that
    move the face as a whole or turn its canonical axes, to first order.

    base: (70, 3) a face in its canonical head frame. Rows: translation (3), rotation about
    the centroid (3), isotropic scale (1), as Umeyama sees them over all 70 points; then the
    three small rotations of the canonical axes, i.e. of WHENet's reference head fitted to
    the 14 corresponding landmarks (``head_axes``). That fit's rotation is stationary where
    ``sum_i a_i x (y_i - y_mean) = 0`` (a_i: the centred, fitted reference points), so a
    perturbation n turns it, to first order, by a multiple of ``sum_i a_i x n_i``: one row
    ``e x a_i`` per axis e. The pupils 68/69 are not free: they follow the eye centres.
    """
    centred = base - base.mean(axis=0)                        # (70, 3)
    rows = []                                                 # each (70, 3), on all points
    for axis in range(3):                                     # translation: sum n_i
        row = np.zeros((NUM_LANDMARKS, 3))
        row[:, axis] = 1.0
        rows.append(row)
    for axis in range(3):                                     # rotation: e . sum (b_i x n_i)
        rows.append(np.cross(np.eye(3)[axis], centred))       # = sum (e x b_i) . n_i
    rows.append(centred.copy())                               # scale: sum b_i . n_i
    index = list(WHENET_FACE70)
    reference = reference_points_cm()
    fit = umeyama(reference, base[index])
    fitted = fit.apply(reference)
    fitted -= fitted.mean(axis=0)                             # a_i, (14, 3)
    for axis in range(3):
        row = np.zeros((NUM_LANDMARKS, 3))
        row[index] = np.cross(np.eye(3)[axis], fitted)
        rows.append(row)
    # Functionals on the 68 free points: pull each row back through the pupil map.
    M = _pupil_map()
    return np.stack([(M.T @ row).reshape(-1) for row in rows])


@functools.lru_cache(maxsize=4)
def _shape_projector(base_bytes: bytes) -> np.ndarray:
    """(204, 204) orthogonal projector onto perturbations that leave the frame alone."""
    base = np.frombuffer(base_bytes, dtype=np.float64).reshape(NUM_LANDMARKS, 3)
    A = _frame_constraints(base)
    return np.eye(A.shape[1]) - A.T @ np.linalg.solve(A @ A.T, A)


def person_shape(rng: np.random.Generator, base: np.ndarray, scale_range: float = 0.07,
                 landmark_sigma_cm: float = 0.15) -> np.ndarray:
    """One person's face (70, 3) in their own head frame, cm, at their own size.

    base: (70, 3) a face in its canonical head frame (``base_face_landmarks()``).
    The person is ``base`` scaled by a factor drawn uniformly in ``1 +- scale_range``
    plus an independent Gaussian perturbation of sigma ``landmark_sigma_cm`` per coordinate
    of points 0-67 (the pupils stay the eye centres).

    Why the perturbation is projected: the ground-truth head pose of a person must be
    well defined. A raw random perturbation also contains a small rigid motion (about
    1 degree and 0.1 cm at these sigmas), and then "the person's head frame" would depend on
    which definition one picks: the rigid transform that best aligns the base face to the
    person (what the pipeline's Procrustes fit of a mean head estimates) or the canonical
    frame of the person's own landmarks (``head_axes``: WHENet's reference head fitted on
    14 of them). The perturbation is
    therefore projected onto the subspace with no translation, rotation or scale component
    and no first-order change of the canonical axes; a final exact Umeyama fit removes what
    is left at second order. So the best similarity from ``base`` to the returned shape is
    the identity rotation, zero translation and the drawn scale (``shape_scale``), and the
    canonical axes of the shape agree with the head frame to well under 0.1 degree.
    """
    base = np.asarray(base, dtype=np.float64)
    scale = 1.0 + rng.uniform(-scale_range, scale_range)
    noise = rng.normal(0.0, landmark_sigma_cm, size=(68, 3))
    projector = _shape_projector(np.ascontiguousarray(base).tobytes())
    noise = (projector @ noise.reshape(-1)).reshape(68, 3)
    shape = scale * base
    shape[:68] += noise
    set_pupils(shape)
    # Exact removal of the (second-order) rigid residue: express the shape in the frame
    # of the best similarity from the base face.
    fit = umeyama(base, shape, with_scale=True)
    return (shape - fit.t) @ fit.R                # R^T (x - t) for each row x


def shape_scale(base: np.ndarray, shapes_head: np.ndarray) -> np.ndarray:
    """(...,) similarity scale from ``base`` (70, 3) to shapes (..., 70, 3) in its frame.

    For ``person_shape`` outputs the best similarity has identity rotation and zero
    translation, so ``shapes_head ~ scale * base``: the ground-truth head scale.
    """
    shapes = np.asarray(shapes_head, dtype=np.float64)
    return umeyama(np.broadcast_to(base, shapes.shape), shapes, with_scale=True).scale


# Landmarks whose layout is the same for every face detector and head pose (brows, nose,
# eyes, lips): the jaw line 0-16 is the visible outline for iBUG-style detectors and a fixed
# contour for Face Mesh, and moves over the face as it turns.
INNER_FACE = tuple(range(17, 68))
MIN_INNER_POINTS = 6


def scale_against_mean_face(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How big faces are against the mean adult face (``base_face_landmarks``).

    landmarks: (P, 70, 3) cm, NaN = not triangulated. Returns (P,) the similarity scale of
    the best fit of the mean face's ``INNER_FACE`` points onto each face's finite ones,
    (P,) the fit's RMS residual, cm, and (P,) the points fitted; scale and RMS are NaN for a
    face with fewer than ``MIN_INNER_POINTS`` of them. The real test faces triangulated
    right come out at 1.00-1.16; a face triangulated from landmarks that sit on different
    parts of the face in different views comes out far from 1 (1.83 and 1.91 there,
    docs/triangulation.md).
    """
    faces = np.asarray(landmarks, dtype=np.float64).reshape(-1, NUM_LANDMARKS, 3)
    base = base_face_landmarks()
    inner = np.asarray(INNER_FACE)
    scale, rms = np.full(len(faces), np.nan), np.full(len(faces), np.nan)
    used = np.isfinite(faces[:, inner]).all(axis=-1)                          # (P, 51)
    for p in np.flatnonzero(used.sum(axis=1) >= MIN_INNER_POINTS):
        idx = inner[used[p]]
        fit = umeyama(base[idx], faces[p, idx], with_scale=True)
        residual = np.linalg.norm(fit.apply(base[idx]) - faces[p, idx], axis=-1)
        scale[p], rms[p] = float(fit.scale), float(np.sqrt(np.mean(residual ** 2)))
    return scale, rms, used.sum(axis=1)
