"""Facial expressions of the synthetic people: a few parameters, their landmark motion, their timing.

An expression is 4 numbers per (frame, person), each in [0, 1] (0 = neutral face):

=====  ==========  =========================================================================
index  name        what 1 means (amplitudes for the base face; they scale with the face)
=====  ==========  =========================================================================
0      jaw         mandible opened by JAW_MAX_DEG about a hinge near the ears: the chin
                   drops ~1.5 cm (and moves ~2 cm back), the lower lip with it
1      smile       mouth corners 0.6 cm outward, 0.45 cm up (and 0.2 cm back)
2      brow        brows 0.9 cm up (and 0.15 cm forward)
3      blink       upper lids down on the lower lids: eyes closed
=====  ==========  =========================================================================

``expression_offsets`` turns a neutral face and parameters into landmark displacements in
the head frame (x toward the subject's left ear, y up, z out of the face, origin at the head
centre; cm): expressive landmarks = shape + offsets. The skull does not move: eye corners,
nose and the contour ends by the ears stay where they are, so the ground-truth head pose is
the same with and without expressions. Pupils 68/69 are not moved either (a detector still
places them at the eye centre when the eye closes).

``simulate_expressions`` draws realistic timing in seconds (people talking: jaw opening in
syllable bursts, slow smiles, occasional brow raises, short blinks), each person their own.

Landmarks: the 70-point Panoptic face layout (iBUG 68 + right pupil 68 + left pupil 69;
points 36-41 are the subject's right eye, at negative x). Pure numpy, no file I/O.
"""
from __future__ import annotations

import numpy as np

JAW, SMILE, BROW, BLINK = range(4)
EXPRESSION_NAMES = ("jaw", "smile", "brow", "blink")
NUM_EXPRESSIONS = 4

# Face size unit: the outer eye corner distance (ex-ex, Farkas' 9.0 cm of the base face).
BIOCULAR_CM = 9.0
# Jaw: a hinge axis parallel to x near the ear canals (the temporomandibular joints), placed
# from the eye line so that it follows each face and the head-frame convention.
HINGE_BELOW_EYES_CM = 2.5
HINGE_BEHIND_EYES_CM = 8.5
# Pure rotation about the condyles is how the jaw opens for speech (the forward glide of the
# condyles only starts with wider openings). The chin sits ~12.5 cm from the hinge, so 11 deg
# drops it ~1.5 cm: a wide speaking opening, ~1.7 cm between the lips.
JAW_MAX_DEG = 11.0
SMILE_CM = np.array([0.6, 0.45, -0.2])          # outward (x, signed per side), up, back
BROW_CM = np.array([0.0, 0.9, 0.15])            # up, slightly forward


def _weights(pairs: dict) -> np.ndarray:
    w = np.zeros(70)
    for index, value in pairs.items():
        w[list(np.atleast_1d(index))] = value
    return w


# Share of the mandible's rotation each landmark follows. The lower contour and chin, the
# lower lips move fully; the mouth corners (outer 48/54, inner 60/64) sit on both lips and
# move by half; contour 3/13 taper the jaw line to 0-2/14-16, which stay on the skull.
JAW_WEIGHT = _weights({tuple(range(4, 13)): 1.0, (3, 13): 0.5, tuple(range(55, 60)): 1.0,
                       (65, 66, 67): 1.0, (48, 54, 60, 64): 0.5})
# Share of SMILE_CM each landmark moves: the corners fully, their lip neighbours by half.
SMILE_WEIGHT = _weights({(48, 54, 60, 64): 1.0, (49, 53, 59, 55, 61, 63, 67, 65): 0.5})
# Side of each smile point: -1 the subject's right (negative x), +1 the left.
SMILE_SIDE = _weights({(48, 49, 59, 60, 61, 67): -1.0, (54, 53, 55, 64, 63, 65): 1.0})
BROWS = np.arange(17, 27)
# Blink: each upper-lid point closes onto the lower-lid point below it (iBUG order).
UPPER_LIDS = np.array([37, 38, 43, 44])
LOWER_LIDS = np.array([41, 40, 47, 46])


def expression_offsets(shape_head: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Landmark displacements (..., 70, 3) cm, head frame, of expressions on neutral faces.

    shape_head: (..., 70, 3) neutral landmarks, head frame, cm (a person's shape).
    params: (..., 4) ``[jaw, smile, brow, blink]`` in [0, 1]. Leading axes broadcast, e.g.
    shapes (P, 70, 3) with params (F, P, 4) give (F, P, 70, 3).
    Expressive landmarks = shape_head + offsets. Offsets are exactly zero at params 0 and on
    the rigid points (eye corners, nose, contour 0-2 and 14-16, pupils).
    """
    shape = np.asarray(shape_head, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    lead = np.broadcast_shapes(shape.shape[:-2], params.shape[:-1])
    shape = np.broadcast_to(shape, lead + shape.shape[-2:])
    params = np.broadcast_to(params, lead + (NUM_EXPRESSIONS,))
    size = np.linalg.norm(shape[..., 45, :] - shape[..., 36, :], axis=-1) / BIOCULAR_CM     # (...,)
    eyes = shape[..., [36, 39, 42, 45], :].mean(axis=-2)                                  # (..., 3)
    out = np.zeros(shape.shape)

    # Jaw: rotate each point about the hinge by its share of the opening angle; (R - I)(p - h)
    # is written with -2 sin^2(a/2) so that a zero angle gives an exact zero.
    hinge_y = eyes[..., 1] - HINGE_BELOW_EYES_CM * size
    hinge_z = eyes[..., 2] - HINGE_BEHIND_EYES_CM * size
    angle = np.deg2rad(JAW_MAX_DEG) * params[..., JAW, None] * JAW_WEIGHT                # (..., 70)
    dy, dz = shape[..., 1] - hinge_y[..., None], shape[..., 2] - hinge_z[..., None]
    cos_m1, sin = -2.0 * np.sin(0.5 * angle) ** 2, np.sin(angle)
    out[..., 1] += cos_m1 * dy - sin * dz                  # positive angle: the chin goes down
    out[..., 2] += sin * dy + cos_m1 * dz                  # and back

    smile = SMILE_WEIGHT[:, None] * SMILE_CM * np.stack([SMILE_SIDE, np.ones(70), np.ones(70)], -1)
    out += (params[..., SMILE] * size)[..., None, None] * smile
    out[..., BROWS, :] += (params[..., BROW] * size)[..., None, None] * BROW_CM
    lids = shape[..., LOWER_LIDS, :] - shape[..., UPPER_LIDS, :]
    out[..., UPPER_LIDS, :] += params[..., BLINK, None, None] * lids
    return out


# ------------------------------------------------------------------------------- timing

def simulate_expressions(rng: np.random.Generator, num_frames: int, num_people: int,
                         fps: float = 29.97, scale: float = 1.0) -> np.ndarray:
    """(F, P, 4) expression parameters in [0, 1] of P people over F frames at ``fps``.

    Each person draws their own timing (seconds, whatever the frame rate):
    - jaw: talking in segments of 1-5 s separated by 0.5-4 s of silence; inside them the
      jaw opens and closes once per syllable, 3-5 syllables a second (the person's rate,
      each syllable 0.7-1.3 times its mean length), peak opening 0.2-1 per syllable;
    - smile: slow smiles of 1.5-6 s (0.5-1.2 s to come and go), level 0.3-1, every 4-12 s;
    - brow: raises of 0.5-2 s, level 0.4-1, every 3-10 s;
    - blink: full blinks of 0.1-0.3 s every 2-6 s.
    scale: amplitude multiplier (the result is clipped to [0, 1]). Deterministic from ``rng``.
    """
    t = np.arange(num_frames) / float(fps)
    out = np.zeros((num_frames, num_people, NUM_EXPRESSIONS))
    for p in range(num_people):
        out[:, p, JAW] = _talking(rng, t)
        out[:, p, SMILE] = _events(rng, t, (4.0, 12.0), (1.5, 6.0), (0.3, 1.0), sharpness=3.0)
        out[:, p, BROW] = _events(rng, t, (3.0, 10.0), (0.5, 2.0), (0.4, 1.0), sharpness=1.5)
        out[:, p, BLINK] = _events(rng, t, (2.0, 6.0), (0.1, 0.3), (1.0, 1.0), sharpness=2.0)
    return np.clip(scale * out, 0.0, 1.0)


def _bump(u: np.ndarray, sharpness: float) -> np.ndarray:
    """0 at u = 0 and 1, up to 1 between: ``min(1, sharpness sin^2(pi u))`` (> 1: a plateau)."""
    return np.minimum(1.0, sharpness * np.sin(np.pi * u) ** 2)


def _events(rng: np.random.Generator, t: np.ndarray, interval_s, duration_s, amplitude,
            sharpness: float) -> np.ndarray:
    """(F,) non-overlapping-ish bumps at times t (s): starts ``interval_s`` apart (the first
    anywhere from one duration before the start), each ``duration_s`` long with peak
    ``amplitude`` (uniform ranges); overlaps keep the larger value."""
    out = np.zeros_like(t)
    if len(t) == 0:
        return out
    start = rng.uniform(-duration_s[1], interval_s[1])
    while start <= t[-1]:
        duration, peak = rng.uniform(*duration_s), rng.uniform(*amplitude)
        i0, i1 = np.searchsorted(t, [start, start + duration])
        u = (t[i0:i1] - start) / duration
        out[i0:i1] = np.maximum(out[i0:i1], peak * _bump(u, sharpness))
        start += rng.uniform(*interval_s)
    return out


def _talking(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """(F,) jaw opening of one person talking on and off (see ``simulate_expressions``)."""
    if len(t) == 0:
        return np.zeros(0)
    total = t[-1] + 1.0
    rate = rng.uniform(3.0, 5.0)                               # syllables per second
    n = int(np.ceil(total * rate / 0.7)) + 1                   # enough syllables to cover t
    length = rng.uniform(0.7, 1.3, n) / rate
    peak = rng.uniform(0.2, 1.0, n)
    end = np.cumsum(length)
    start = end - length
    # Talk and silence alternate; the pattern starts anywhere in its first talk segment.
    talk, edge, speaking = [], -rng.uniform(0.0, 5.0), True
    while edge <= total:
        span = rng.uniform(1.0, 5.0) if speaking else rng.uniform(0.5, 4.0)
        if speaking:
            talk.append((edge, edge + span))
        edge, speaking = edge + span, not speaking
    middle = 0.5 * (start + end)
    voiced = np.zeros(n, dtype=bool)
    for a, b in talk:                                          # whole syllables: no cut-off bursts
        voiced |= (middle >= a) & (middle < b)
    s = np.minimum(np.searchsorted(end, t, side="right"), n - 1)
    u = np.clip((t - start[s]) / length[s], 0.0, 1.0)
    return np.where(voiced[s], peak[s] * _bump(u, 1.0), 0.0)
