"""The synthetic capture: a camera dome, people walking and turning their heads, noisy faces.

Frames and units (docs/conventions.md): world in cm with the Panoptic axes, whose y points DOWN (floor
at y = 0, a standing adult's head centre near y = -160); OpenCV cameras; head frame x toward
the subject's left ear, y up, z out of the face, origin at the head centre. The world is
itself a valid "level camera" (x right, y down), so a head pose relative to the upright is
``matrix_from_euler(yaw, pitch, roll)`` read in world axes, and head "up" maps to world -y.

Everything is deterministic from ``SceneConfig.seed``: each ingredient (cameras, shapes,
motion, missing faces, landmark noise, expressions) draws from its own child of one
``SeedSequence``, so changing, say, the noise parameters leaves the cameras and the motion
unchanged.

Faces are expressive (``annotate.synth.expressions``: talking, smiles, brow raises, blinks)
unless ``SceneConfig.expressions`` is off. The ground-truth pose is the skull's: expressions
move the jaw, lips, brows and lids, never the head frame.

Pure computation: no file I/O (``annotate.synth.generate`` writes the files).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from annotate.geometry.cameras import CameraRig
from annotate.geometry.rotations import FLIP_YZ, euler_from_matrix, matrix_from_euler, rot_y, rot_z
from annotate.synth.expressions import NUM_EXPRESSIONS, expression_offsets, simulate_expressions
from annotate.head.face_model import (LEFT_PUPIL, RIGHT_PUPIL, base_face_landmarks, person_shape,
                                       shape_scale)

# Independent random streams, children of SeedSequence(seed) (order fixed forever; new
# streams go at the end, so the earlier ones keep their draws).
(STREAM_CAMERAS, STREAM_SHAPES, STREAM_MOTION, STREAM_PRESENCE, STREAM_BODY, STREAM_NOISE,
 STREAM_APPEARANCE, STREAM_EXPRESSIONS) = range(8)
NUM_STREAMS = 8

# COCO-19 joint indices of the Panoptic body files (annotate.panoptic.bodies.JOINT_NAMES).
NECK, NOSE, BODY_CENTRE = 0, 1, 2
L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE, L_ANKLE = 3, 4, 5, 6, 7, 8
R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE, R_ANKLE = 9, 10, 11, 12, 13, 14
L_EYE, L_EAR, R_EYE, R_EAR = 15, 16, 17, 18
NUM_JOINTS = 19
# Face landmarks the body's face joints sit on (iBUG: 30 nose tip, 0/16 contour ends by the
# right/left ear; 68/69 pupils).
FACE_JOINT_LANDMARK = {NOSE: 30, L_EYE: LEFT_PUPIL, R_EYE: RIGHT_PUPIL, L_EAR: 16, R_EAR: 0}


@dataclass(frozen=True)
class SceneConfig:
    """Everything that defines a synthetic sequence. cm, degrees, frames.

    Motion is defined over the sequence (time runs from 0 at the first frame to 1 at the
    last), so a short test sequence still holds full head turns.
    """

    seed: int = 0
    num_frames: int = 120
    num_people: int = 3
    num_cameras: int = 31
    image_size: tuple[int, int] = (1920, 1080)    # (width, height) px
    start_frame: int = 0                          # number of the first HD frame
    fps: float = 29.97
    # published landmark noise
    landmark_sigma_cm: float = 0.3                # isotropic, per coordinate
    outlier_fraction: float = 0.05                # gross outlier landmarks
    outlier_sigma_cm: float = 3.0                 # their extra error, per coordinate
    min_views_per_landmark: int = 2               # fewer: not reconstructed (as Panoptic)
    # people
    shape_scale_range: float = 0.07               # head size 1 +- this
    shape_landmark_sigma_cm: float = 0.15         # per-landmark shape variation
    face_mouth_forward_cm: float = 0.0            # the mean face's lips and chin moved forward (face variants)
    face_width_scale: float = 1.0                 # the mean face's width scaled (face variants)
    missing_face_fraction: float = 0.03           # (frame, person) faces not published
    head_height_cm: tuple[float, float] = (150.0, 166.0)   # head centre above the floor
    body_joint_sigma_cm: float = 0.5              # noise of the non-face body joints
    # motion
    walk_radius_cm: tuple[float, float] = (30.0, 100.0)    # neck pivots from the dome axis
    min_head_separation_cm: float = 35.0
    body_turns: tuple[float, float] = (1.2, 1.6)  # full body turns over the sequence
    max_neck_yaw_deg: float = 30.0                # head yaw relative to the body
    max_pitch_deg: float = 55.0                   # relative to the upright, either way
    max_roll_deg: float = 45.0
    # facial expressions (talking, smiles, brow raises, blinks; annotate.synth.expressions)
    expressions: bool = True
    expression_scale: float = 1.0                 # amplitude multiplier (parameters clipped to 1)
    # dome (the real one: radius 215-305 cm around (-4, -222, 7))
    dome_centre_cm: tuple[float, float, float] = (-4.0, -222.0, 7.0)
    dome_radius_cm: tuple[float, float] = (215.0, 305.0)
    camera_aim_cm: tuple[float, float, float] = (0.0, -150.0, 0.0)

    @property
    def frames(self) -> np.ndarray:
        """(F,) int64 HD frame numbers."""
        return self.start_frame + np.arange(self.num_frames, dtype=np.int64)


def random_streams(seed: int) -> list[np.random.Generator]:
    """The NUM_STREAMS independent generators of a scene, indexed by STREAM_*."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(NUM_STREAMS)]


# --------------------------------------------------------------------------------- cameras

def _look_at(centres_world: np.ndarray, targets_world: np.ndarray) -> np.ndarray:
    """(C, 3, 3) R_cam_world of level OpenCV cameras at ``centres`` looking at ``targets``.

    Level: the camera's x axis is horizontal, so image "down" is as close to world +y
    (down) as the viewing direction allows (no roll).
    """
    z = targets_world - centres_world
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    down = np.array([0.0, 1.0, 0.0])
    x = np.cross(down, z)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-2)


def _intrinsics(rng: np.random.Generator, num_cameras: int, image_size) -> tuple[np.ndarray, np.ndarray]:
    """K (C, 3, 3) and dist (C, 5) like the real HD cameras, scaled to ``image_size``.

    The real dome has mostly f ~ 1396 px lenses (k1 ~ -0.286, k2 ~ 0.183, k3 ~ -0.05) and
    some longer ones up to f ~ 1650 px with weaker barrel distortion (k1 ~ -0.223,
    k3 ~ +0.03); fy is ~0.25% below fx and the principal point sits ~15 px left of centre.
    """
    width, height = image_size
    long_lens = rng.random(num_cameras) < 0.35
    f_1080p = np.where(long_lens, rng.uniform(1420.0, 1650.0, num_cameras),
                       rng.normal(1397.0, 3.0, num_cameras))
    u = (f_1080p - 1396.0) / (1634.0 - 1396.0)               # 0 short lens, 1 long lens
    fx = f_1080p * width / 1920.0
    K = np.zeros((num_cameras, 3, 3))
    K[:, 0, 0] = fx
    K[:, 1, 1] = fx * (1.0 - 0.0025)
    K[:, 0, 2] = width / 2.0 + (rng.normal(-15.0, 8.0, num_cameras)) * width / 1920.0
    K[:, 1, 2] = height / 2.0 + (rng.normal(0.0, 7.0, num_cameras)) * width / 1920.0
    K[:, 2, 2] = 1.0
    dist = np.stack([
        -0.286 + 0.063 * u + rng.normal(0.0, 0.003, num_cameras),
        0.183 + 0.010 * u + rng.normal(0.0, 0.008, num_cameras),
        rng.normal(-0.0002, 0.0003, num_cameras),
        rng.normal(0.0005, 0.0004, num_cameras),
        -0.050 + 0.080 * u + rng.normal(0.0, 0.008, num_cameras),
    ], axis=-1)
    return K, dist


def make_dome_rig(num_cameras: int, image_size=(1920, 1080), rng: np.random.Generator | None = None,
                  dome_centre_cm=(-4.0, -222.0, 7.0), dome_radius_cm=(215.0, 305.0),
                  aim_cm=(0.0, -150.0, 0.0)) -> CameraRig:
    """HD cameras ``00_00``.. on a dome like Panoptic's, looking at the capture centre.

    Cameras are spread evenly in azimuth (jittered) and at elevations between -32 and +33
    degrees seen from the dome centre (the real range: 74 to 340 cm above the floor), at
    distances ``dome_radius_cm`` from it (the top ones at most ~125 cm above it); each aims at ``aim_cm`` (head height) plus a
    jitter of ~15 cm, level, with a roll of about a degree, as mounted cameras are.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    c = int(num_cameras)
    if c < 1:
        raise ValueError("make_dome_rig needs at least one camera")
    azimuth = 2.0 * np.pi * (np.arange(c) + rng.uniform(-0.3, 0.3, c)) / c
    # Golden-ratio stratification mixes high and low cameras all around the dome.
    strata = np.mod(np.arange(c) * 0.6180339887498949 + rng.uniform(0.0, 1.0), 1.0)
    elevation = np.deg2rad(-32.0 + 65.0 * strata)
    radius = rng.uniform(dome_radius_cm[0], dome_radius_cm[1], c)
    # The real dome is flattened on top: its highest cameras sit ~120 cm above the centre.
    rise = np.maximum(np.sin(elevation), 1e-9)
    radius = np.maximum(np.minimum(radius, 125.0 / rise), dome_radius_cm[0])
    # World y is down: a positive elevation means above the centre, i.e. smaller y.
    offsets = np.stack([np.cos(elevation) * np.sin(azimuth), -np.sin(elevation),
                        np.cos(elevation) * np.cos(azimuth)], axis=-1) * radius[:, None]
    centres = np.asarray(dome_centre_cm, dtype=np.float64) + offsets
    targets = np.asarray(aim_cm, dtype=np.float64) + rng.normal(0.0, [15.0, 8.0, 15.0], (c, 3))
    R = rot_z(np.deg2rad(rng.normal(0.0, 1.0, c))) @ _look_at(centres, targets)
    t = -np.einsum("cij,cj->ci", R, centres)
    K, dist = _intrinsics(rng, c, image_size)
    names = tuple(f"00_{i:02d}" for i in range(c))
    size = np.tile(np.asarray(image_size, dtype=np.int64), (c, 1))
    return CameraRig(names, K, dist, R, t, size)


# ---------------------------------------------------------------------------------- motion

# Head centre above the neck pivot (the upper cervical spine), head frame, cm: nodding and
# tilting swing the head about this point, as real heads do.
PIVOT_TO_HEAD_CM = np.array([0.0, 9.0, 0.5])


def _sequence_time(num_frames: int) -> np.ndarray:
    """(F,) time from 0 (first frame) to 1 (last frame)."""
    return np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)


def smooth_signal(rng: np.random.Generator, tau: np.ndarray, bound: float, shape=(),
                  num_terms: int = 3, cycles=(0.3, 2.0)) -> np.ndarray:
    """A smooth random signal (*shape, F) with |value| <= bound: a sum of sinusoids.

    Each of ``num_terms`` terms has a random phase, a frequency of ``cycles`` per sequence
    and a random share of ``bound`` as amplitude (the shares sum to 1, hence the bound).
    """
    shares = rng.dirichlet(np.ones(num_terms), size=shape)                 # (*shape, K)
    freq = rng.uniform(cycles[0], cycles[1], size=shape + (num_terms,))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=shape + (num_terms,))
    waves = np.sin(2.0 * np.pi * freq[..., None] * tau + phase[..., None])  # (*shape, K, F)
    return bound * np.einsum("...k,...kf->...f", shares, waves)


def _min_walk_radius(config: SceneConfig, angle_wobble_rad: float) -> float:
    """Smallest head distance from the axis that keeps people ``min_head_separation_cm`` apart.

    People keep their order around the axis, 2 pi / P apart give or take twice the wobble.
    Two points at angular separation d with radii >= r are at least 2 r sin(d / 2) apart
    (for d <= pi), so neck pivots at r >= (separation + margin) / (2 sin(d / 2)) keep the
    heads apart as long as the margin covers both heads swinging about their pivots.
    """
    p = config.num_people
    if p < 2:
        return config.walk_radius_cm[0]
    d = min(np.pi, 2.0 * np.pi / p - 2.0 * angle_wobble_rad)
    if d <= 0:
        raise ValueError(f"{p} people cannot keep apart with this angular wobble")
    margin = 2.0 * np.linalg.norm(PIVOT_TO_HEAD_CM) + 2.0
    needed = (config.min_head_separation_cm + margin) / (2.0 * np.sin(d / 2.0))
    return max(config.walk_radius_cm[0], needed)


def _walk_paths(rng: np.random.Generator, config: SceneConfig, tau: np.ndarray) -> np.ndarray:
    """(F, P, 2) horizontal (x, z) positions of the neck pivots, cm, world.

    People stand in a ring around the dome axis, in a fixed order, the ring slowly turning
    as a whole while each person drifts in radius and a little in angle: they wander
    without ever meeting (``_min_walk_radius``) and without leaving ``walk_radius_cm``.
    """
    p = config.num_people
    wobble = 0.1 * (2.0 * np.pi / max(p, 1))
    r_min = _min_walk_radius(config, wobble)
    r_max = config.walk_radius_cm[1]
    if r_min > r_max:
        raise ValueError(f"{p} people need a walk radius of at least {r_min:.0f} cm "
                         f"(walk_radius_cm = {config.walk_radius_cm})")
    ring_turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9)            # rad per sequence
    start = rng.uniform(0.0, 2.0 * np.pi) + 2.0 * np.pi * np.arange(p) / max(p, 1)
    angle = (start[:, None] + ring_turn * tau[None, :]
             + smooth_signal(rng, tau, wobble, (p,), num_terms=2, cycles=(0.2, 1.0)))
    mid, half = 0.5 * (r_min + r_max), 0.5 * (r_max - r_min)
    radius = mid + smooth_signal(rng, tau, half, (p,), num_terms=2, cycles=(0.2, 1.0))
    axis_xz = np.asarray(config.dome_centre_cm)[[0, 2]]
    xz = axis_xz + np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=-1)
    return np.transpose(xz, (1, 0, 2))                                     # (F, P, 2)


def head_rotation(heading: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """R_world_head (..., 3, 3) from the head's heading, pitch and roll (radians, (...,)).

    ``heading`` turns about the vertical (world y); pitch and roll are the head's angles
    relative to a level camera that faces it (docs/conventions.md's Euler convention with zero yaw).
    The inverse is ``level_head_angles``.
    """
    return rot_y(heading) @ matrix_from_euler(np.zeros_like(pitch), pitch, roll)


def level_head_angles(R_world_head: np.ndarray) -> np.ndarray:
    """(..., 3) ``[heading, pitch, roll]`` radians of head rotations (..., 3, 3).

    The heading is the horizontal direction the face points to; pitch and roll are the
    Euler angles seen by a level camera placed in front of the face (yaw 0 by
    construction), i.e. how far the head is nodded and tilted from the upright.
    """
    R = np.asarray(R_world_head, dtype=np.float64)
    face = R[..., :, 2]                                   # head z axis in the world
    # rot_y(h) maps the frontal face direction (0, 0, -1) to (-sin h, 0, -cos h).
    heading = np.arctan2(-face[..., 0], -face[..., 2])
    angles = euler_from_matrix(rot_y(-heading) @ R)
    return np.stack([heading, angles[..., 1], angles[..., 2]], axis=-1)


@dataclass(frozen=True)
class Motion:
    """Per frame f and person p. heading/pitch/roll: (F, P) radians of the head;
    body_heading: (F, P) radians of the torso; pivot: (F, P, 3) neck pivot, world cm."""

    heading: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    body_heading: np.ndarray
    pivot: np.ndarray


def simulate_motion(rng: np.random.Generator, config: SceneConfig, head_heights_cm: np.ndarray) -> Motion:
    """Walk paths and head angles of ``config.num_people`` over ``config.num_frames``.

    head_heights_cm: (P,) head centre height above the floor of each person, upright.
    """
    p, tau = config.num_people, _sequence_time(config.num_frames)
    xz = _walk_paths(rng, config, tau)
    turns = rng.uniform(*config.body_turns, p) * rng.choice([-1.0, 1.0], p)
    body = (rng.uniform(-np.pi, np.pi, p)[:, None] + 2.0 * np.pi * turns[:, None] * tau).T
    neck = smooth_signal(rng, tau, np.deg2rad(config.max_neck_yaw_deg), (p,)).T
    pitch = smooth_signal(rng, tau, np.deg2rad(config.max_pitch_deg), (p,)).T
    roll = smooth_signal(rng, tau, np.deg2rad(config.max_roll_deg), (p,)).T
    bob = smooth_signal(rng, tau, 1.0, (p,), num_terms=1, cycles=(2.0, 4.0)).T
    pivot_y = -(head_heights_cm - PIVOT_TO_HEAD_CM[1]) + bob                # (F, P), y down
    pivot = np.stack([xz[..., 0], pivot_y, xz[..., 1]], axis=-1)
    heading = np.angle(np.exp(1j * (body + neck)))                         # wrap to (-pi, pi]
    return Motion(heading, pitch, roll, np.angle(np.exp(1j * body)), pivot)


# ------------------------------------------------------------------------------ skeletons

def _body_template(head_height_cm: float) -> np.ndarray:
    """(19, 3) joints of an upright person standing still, in a body frame, cm.

    Body frame: origin on the floor under the neck pivot, x toward the person's left,
    y up, z forward (like the head frame). Segment lengths follow adult proportions scaled
    by the head height; face joints are left at 0 (they come from the face landmarks).
    """
    k = head_height_cm / 158.0
    neck_y = head_height_cm - 18.0
    hip_y, knee_y, ankle_y = 0.57 * head_height_cm, 0.30 * head_height_cm, 7.0
    j = np.zeros((NUM_JOINTS, 3))
    j[NECK] = (0.0, neck_y, -1.5)
    j[BODY_CENTRE] = (0.0, hip_y, -1.0)
    for side, (sh, el, wr, hp, kn, an) in ((1.0, (L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE, L_ANKLE)),
                                           (-1.0, (R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE, R_ANKLE))):
        j[sh] = (side * 17.0 * k, neck_y - 3.0 * k, -2.0)
        j[el] = (side * 19.0 * k, neck_y - 31.0 * k, -2.0)
        j[wr] = (side * 20.0 * k, neck_y - 56.0 * k, 2.0)
        j[hp] = (side * 9.5 * k, hip_y, -1.0)
        j[kn] = (side * 10.0 * k, knee_y, 1.0)
        j[an] = (side * 10.0 * k, ankle_y, -1.0)
    return j


def _gait_offsets(phase: np.ndarray, k: float) -> np.ndarray:
    """(..., 19, 3) forward swings of arms and legs for gait phase (...,) radians, body frame."""
    s = np.sin(phase)[..., None]
    out = np.zeros(phase.shape + (NUM_JOINTS, 3))
    # Opposite arm and leg swing together; hands and feet swing farther than elbows and knees.
    for joint, amount in ((L_ELBOW, -4.0), (L_WRIST, -9.0), (R_ELBOW, 4.0), (R_WRIST, 9.0),
                          (L_KNEE, 5.0), (L_ANKLE, 9.0), (R_KNEE, -5.0), (R_ANKLE, -9.0)):
        out[..., joint, 2] = amount * k * s[..., 0]
    return out


def body_joints(rng: np.random.Generator, config: SceneConfig, motion: Motion,
                head_heights_cm: np.ndarray, landmarks_world: np.ndarray) -> np.ndarray:
    """(F, P, 19, 4) COCO-19 joints (x, y, z cm world, confidence) consistent with the heads.

    The torso stands upright on the floor under the neck pivot, turned to ``body_heading``;
    arms and legs swing with a slow gait; the nose, eyes and ears are exactly the nose tip,
    pupils and contour ends of the face landmarks (F, P, 70, 3). Non-face joints get
    ``body_joint_sigma_cm`` of noise; confidences are drawn like real ones (0.3-0.9).
    """
    f, p = motion.heading.shape
    tau = _sequence_time(f)
    joints = np.zeros((f, p, NUM_JOINTS, 3))
    for person in range(p):
        k = head_heights_cm[person] / 158.0
        phase = 2.0 * np.pi * rng.uniform(1.0, 3.0) * tau + rng.uniform(0.0, 2.0 * np.pi)
        local = _body_template(head_heights_cm[person]) + _gait_offsets(phase, k)     # (F, 19, 3)
        # body frame -> world: heading about the vertical, y up -> world -y.
        R_world_body = rot_y(motion.body_heading[:, person]) @ FLIP_YZ                # (F, 3, 3)
        floor = motion.pivot[:, person] * np.array([1.0, 0.0, 1.0])                   # (F, 3)
        joints[:, person] = np.einsum("fij,fnj->fni", R_world_body, local) + floor[:, None]
    joints += rng.normal(0.0, config.body_joint_sigma_cm, joints.shape)
    for joint, landmark in FACE_JOINT_LANDMARK.items():
        joints[:, :, joint] = landmarks_world[:, :, landmark]
    confidence = rng.uniform(0.3, 0.9, (f, p, NUM_JOINTS, 1))
    return np.concatenate([joints, confidence], axis=-1)


# ------------------------------------------------------------------------------- the scene

@dataclass(frozen=True)
class SceneState:
    """The ground truth of a synthetic sequence (F frames, P people, C cameras).

    rig: the C cameras. frames: (F,) HD frame numbers. person_ids: (P,) Panoptic ids.
    base_face: (70, 3) the mean face, canonical head frame, cm.
    shapes_head: (P, 70, 3) each person's face in their own head frame, cm, at their size.
    scale: (P,) similarity scale from base_face to shapes_head (the rotation is identity
        and the translation zero by construction: see ``person_shape``).
    R_world_head: (F, P, 3, 3); t_world_head: (F, P, 3) head centre, world cm: the skull's
        pose, so that clean world landmarks = R_world_head @ (shapes_head + expression
        offsets) + t_world_head (``landmarks_world``).
    present: (F, P) bool, the face is published that frame.
    joints19: (F, P, 19, 4) body joints (x, y, z world cm, confidence), all people, all frames.
    head_heights_cm: (P,) upright head centre height above the floor.
    expressions: (F, P, 4) ``[jaw, smile, brow, blink]`` in [0, 1] (zeros when off).
    """

    config: SceneConfig
    rig: CameraRig
    frames: np.ndarray
    person_ids: np.ndarray
    base_face: np.ndarray
    shapes_head: np.ndarray
    scale: np.ndarray
    R_world_head: np.ndarray
    t_world_head: np.ndarray
    present: np.ndarray
    joints19: np.ndarray
    head_heights_cm: np.ndarray
    expressions: np.ndarray

    def landmarks_world(self) -> np.ndarray:
        """(F, P, 70, 3) clean (noise-free) face landmarks with the frame's expression, world cm."""
        return pose_landmarks(self.shapes_head, self.R_world_head, self.t_world_head, self.expressions)


def pose_landmarks(shapes_head: np.ndarray, R_world_head: np.ndarray, t_world_head: np.ndarray,
                   expressions: np.ndarray | None = None) -> np.ndarray:
    """shapes_head (P, 70, 3), R (F, P, 3, 3), t (F, P, 3) -> (F, P, 70, 3) world cm.

    expressions: (F, P, 4) parameters whose offsets (``expression_offsets``) move each
    frame's shapes before posing; None or all zero: the neutral shapes, exactly as posed
    without expressions.
    """
    if expressions is None or not np.any(expressions):
        return np.einsum("fpij,pnj->fpni", R_world_head, shapes_head) + t_world_head[:, :, None, :]
    shapes = shapes_head + expression_offsets(shapes_head, expressions)   # (F, P, 70, 3)
    return np.einsum("fpij,fpnj->fpni", R_world_head, shapes) + t_world_head[:, :, None, :]


def _missing_faces(rng: np.random.Generator, num_frames: int, num_people: int, fraction: float) -> np.ndarray:
    """(F, P) bool ``present``: exactly round(fraction * F * P) faces left out, at random."""
    present = np.ones(num_frames * num_people, dtype=bool)
    n_missing = int(round(fraction * present.size))
    present[rng.choice(present.size, size=n_missing, replace=False)] = False
    return present.reshape(num_frames, num_people)


def simulate_scene(config: SceneConfig = SceneConfig()) -> SceneState:
    """Cameras, people, their motion and skeletons for ``config`` (noise-free)."""
    if config.num_frames < 1 or config.num_people < 1:
        raise ValueError("a scene needs at least one frame and one person")
    streams = random_streams(config.seed)
    rig = make_dome_rig(config.num_cameras, config.image_size, streams[STREAM_CAMERAS],
                        config.dome_centre_cm, config.dome_radius_cm, config.camera_aim_cm)
    base = base_face_landmarks(mouth_forward_cm=config.face_mouth_forward_cm, width_scale=config.face_width_scale)
    shape_rng = streams[STREAM_SHAPES]
    shapes_head = np.stack([person_shape(shape_rng, base, config.shape_scale_range,
                                         config.shape_landmark_sigma_cm)
                            for _ in range(config.num_people)])
    scale = shape_scale(base, shapes_head)
    motion_rng = streams[STREAM_MOTION]
    heights = motion_rng.uniform(*config.head_height_cm, config.num_people)
    motion = simulate_motion(motion_rng, config, heights)
    R = head_rotation(motion.heading, motion.pitch, motion.roll)           # (F, P, 3, 3)
    t = motion.pivot + np.einsum("fpij,j->fpi", R, PIVOT_TO_HEAD_CM)
    expressions = np.zeros((config.num_frames, config.num_people, NUM_EXPRESSIONS))
    if config.expressions:
        expressions = simulate_expressions(streams[STREAM_EXPRESSIONS], config.num_frames, config.num_people,
                                           config.fps, config.expression_scale)
    # The face joints sit on rigid landmarks (nose tip, pupils, contour ends): expressions
    # do not move them.
    landmarks = pose_landmarks(shapes_head, R, t, expressions)
    joints = body_joints(streams[STREAM_BODY], config, motion, heights, landmarks)
    present = _missing_faces(streams[STREAM_PRESENCE], config.num_frames, config.num_people,
                             config.missing_face_fraction)
    return SceneState(config, rig, config.frames, np.arange(config.num_people, dtype=np.int64),
                      base, shapes_head, scale, R, t, present, joints, heights, expressions)


# ------------------------------------------------------------------------ published faces

class PublishedLandmarks(NamedTuple):
    """What Panoptic's face reconstruction would publish, before visibility is applied.

    landmarks_world: (F, P, 70, 3) cm; scores: (F, P, 70) in [0, 1];
    repro_errors_px: (F, P, 70) px; outlier_mask: (F, P, 70) bool (gross errors).
    """

    landmarks_world: np.ndarray
    scores: np.ndarray
    repro_errors_px: np.ndarray
    outlier_mask: np.ndarray


def published_landmarks(state: SceneState, config: SceneConfig | None = None,
                        rng: np.random.Generator | None = None) -> PublishedLandmarks:
    """Noisy world landmarks with scores and reprojection errors, deterministic from the seed.

    Every landmark gets isotropic Gaussian noise of ``landmark_sigma_cm`` per coordinate;
    a random ``outlier_fraction`` of them additionally get ``outlier_sigma_cm`` (gross
    errors). Outliers get lower detection scores (Beta(5, 4), mean 0.56, vs Beta(8, 3),
    mean 0.73) and larger reprojection errors (median 5 px vs 2 px, log-normal) on
    average, with overlapping distributions, so neither flags them reliably, as in real data.
    rng: default the scene's noise stream of ``config.seed``.
    """
    config = state.config if config is None else config
    rng = random_streams(config.seed)[STREAM_NOISE] if rng is None else rng
    clean = state.landmarks_world()
    shape = clean.shape[:-1]                                               # (F, P, 70)
    noisy = clean + rng.normal(0.0, config.landmark_sigma_cm, clean.shape)
    outlier = rng.random(shape) < config.outlier_fraction
    noisy = noisy + outlier[..., None] * rng.normal(0.0, config.outlier_sigma_cm, clean.shape)
    scores = np.where(outlier, rng.beta(5.0, 4.0, shape), rng.beta(8.0, 3.0, shape))
    repro = np.where(outlier, rng.lognormal(np.log(5.0), 0.6, shape),
                     rng.lognormal(np.log(2.0), 0.45, shape))
    return PublishedLandmarks(noisy, scores, repro, outlier)
