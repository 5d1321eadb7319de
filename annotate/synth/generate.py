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

from annotate.core.atomic import atomic_file, replace_folder
from annotate.geometry.cameras import CameraRig
from annotate.head.head_mesh import HeadMesh, build_head_mesh
from annotate.head.raycast import HeadFrameCaster
from annotate.head.visibility import VISIBLE, HeadPoses, landmark_visibility
from annotate.panoptic.bodies import write_body_frame
from annotate.panoptic.calibration import write_calibration
from annotate.panoptic.faces import FacePerson, write_face_frame
from annotate.panoptic.layout import SequenceLayout, write_panoptic_json
from annotate.synth.expressions import EXPRESSION_NAMES, JAW_MAX_DEG, NUM_EXPRESSIONS
from annotate.synth.face_deform import FaceDeformer
from annotate.synth.render import RenderPerson, random_palette
from annotate.synth.videos import render_videos
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
