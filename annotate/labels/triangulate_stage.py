"""The triangulation stage: 2D face landmarks in every view -> 3D faces (faces3d, triangulated).

Two ways to find the people, chosen per sequence (``detect.association``; ``auto`` takes
the first when the ingest's ``bodies`` table has rows, else the second):

- **body priors** (``priors``): for each selected frame, head priors per person from the
  body skeleton or, for a person whose body is missing, from their triangulated face of
  the previous frame; in every camera view the landmark backend (synthetic, FAN, dlib or Face Mesh)
  detects faces, looking at the projected head boxes, and ``annotate.detect.association``
  assigns the faces to people (detections nobody claims become ``unassociated_face``
  rejections).
- **cross-view** (``cross_view``, no body skeletons): in every view the backend finds the
  faces in the whole image (``detect.face_detector`` for image backends) and places their
  landmarks; ``annotate.detect.cross_view`` groups the faces of the views into people by
  epipolar and triangulation consistency, and ``annotate.detect.tracking`` gives them ids
  over frames from their 3D positions (faces in no group become ``unassociated_face``
  rejections).

The per-frame detection and assignment of both is ``annotate.labels.frame_views``. Then,
for both:

3. Robust triangulation (``annotate.geometry.triangulation``) of every person's 70
   landmarks, batched over ``chunk_frames`` frames.
4. One ``faces3d`` row per (frame, person) with at least ``min_landmarks`` landmarks
   (same schema as the published faces, ``source = triangulated``), else a
   ``too_few_landmarks`` rejection. Per landmark: ``score`` = mean confidence of the views
   used x min(1, (views - 1) / (full_score_views - 1)) (two views cannot expose an
   outlier, so few-view points weigh less in the head fit), ``repro_error`` = mean
   reprojection error in px over the views used, ``visibility`` = those views' camera
   indices. Landmarks not triangulated: NaN, score 0, repro_error 1e5 (Panoptic's marker).

When the run writes no face at all, ``NothingTriangulatedError`` says which step found
nothing (no image read, no face detected, no face seen by two views consistently, no
landmark triangulated) and which settings to change; the outputs are written first.

``crosscheck_faces3d`` compares published and triangulated faces (``landmarks3d: both``)
and writes the combined table the labels then use.

Rejection reason codes of this stage (rejections table, stage ``triangulate``):
``unassociated_face``, ``inconsistent_views``, ``too_few_landmarks``, ``implausible_face``,
and the video reader's codes
(``annotate.media.video``: missing_video, unreadable_video, corrupt_video,
video_too_short, missing_image, unreadable_image) for views whose image could not be read.
"""
from __future__ import annotations

import time
import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotate.core.cpus import capped_workers, memory_capped_workers
from annotate.core.tables import StreamingTableWriter, read_table, write_table
from annotate.detect.base import LandmarkBackend
from annotate.detect.cross_view import CrossViewConfig
from annotate.detect.heads import HeadPriors, priors_from_landmarks, stack_priors
from annotate.geometry.cameras import CameraRig
from annotate.detect.tracking import Tracker, TrackingConfig
from annotate.head.face_model import scale_against_mean_face
from annotate.head.head_frame import NUM_LANDMARKS
from annotate.labels.frame_views import (BodyIndex, CameraImages, FrameViews, ViewSearch, body_index, detect_views,
                                         detect_views_cross, with_crop_consensus)
from annotate.labels.view_search import ParallelViews, SerialViews
from annotate.labels.triangulate_errors import NothingTriangulatedError, nothing_triangulated_message
from annotate.geometry.face_views import consistent_views, threshold_tolerance
from annotate.geometry.triangulation import TriangulationConfig, seen_views, triangulate_points
from annotate.panoptic.tables import SOURCE_TRIANGULATED, load_camera_info, load_faces3d, load_frame_offsets
from annotate.core.rowkeys import frame_person_keys

STAGE = "triangulate"
UNASSOCIATED_FACE = "unassociated_face"
TOO_FEW_LANDMARKS = "too_few_landmarks"
INCONSISTENT_VIEWS = "inconsistent_views"
IMPLAUSIBLE_FACE = "implausible_face"
NOT_RECONSTRUCTED_REPRO_ERROR_PX = 1e5      # Panoptic's marker, as in published rows
ASSOCIATION_MODES = ("auto", "priors", "cross_view")
# Memory one view worker takes (its own torch, MTCNN, Face Mesh and iris models, a frame's
# images): 0.57 GB private and 0.34 GB of shared libraries on the real test frames.
WORKER_MEMORY_BYTES = 1.0 * 2 ** 30


@dataclass(frozen=True)
class StageConfig:
    """association_max_cost: a face farther than this many head radii (median over nose,
    eyes, ears) from every person stays unassigned. min_landmarks: fewer triangulated
    landmarks -> no faces3d row. max_view_error_px: the views of a face must agree within
    this median reprojection error (``annotate.geometry.face_views``; None = off).
    threshold_face_px: the pixel thresholds (max_view_error_px and the triangulation's)
    hold for a face up to this size in a view and grow in proportion above it
    (``face_views.threshold_tolerance``; None = fixed px).
    full_score_views: views needed for a full score.
    chunk_frames: frames triangulated together. triangulation: the solver's settings.
    association: ``auto``, ``priors`` or ``cross_view`` (module docstring); cross_view and
    tracking: the settings of the prior-free path. face_scale_range: a triangulated face
    whose size against the mean adult face (``annotate.head.face_model.
    scale_against_mean_face``) is outside it is an ``implausible_face`` rejection (None =
    off)."""

    association_max_cost: float = 0.6
    min_landmarks: int = 8
    max_view_error_px: float | None = 4.0
    threshold_face_px: float | None = 120.0
    full_score_views: int = 4
    chunk_frames: int = 32
    triangulation: TriangulationConfig = TriangulationConfig()
    association: str = "auto"
    cross_view: CrossViewConfig = CrossViewConfig()
    tracking: TrackingConfig = TrackingConfig()
    face_scale_range: tuple[float, float] | None = (0.75, 1.33)

    def __post_init__(self) -> None:
        if self.association not in ASSOCIATION_MODES:
            raise ValueError(f"association must be one of {ASSOCIATION_MODES}, got {self.association!r}")


@dataclass
class StageSummary:
    """Counts of one run. views_read: views whose image (or, for image-free backends, whose
    detections) were looked at; views_no_image: views skipped for want of an image;
    people_found: (frame, person) pairs the association produced; association: the mode used;
    views_dropped: face views left out because they disagree with the face's other views;
    whole_image_frames: cross-view frames whose whole images were searched for faces (the
    others: around the tracked heads, ``annotate.detect.tracking``); image_rotation: the
    cameras' turns for detection (``annotate.detect.orientation.UprightBackend.turn_summary``;
    empty when every camera is taken as it is); crop_consensus_faces: (frame, person) pairs
    whose points some views took from other crops of the face
    (``annotate.geometry.crop_consensus``)."""

    frames: int = 0
    faces_written: int = 0
    detections: int = 0
    associated: int = 0
    views_read: int = 0
    views_no_image: int = 0
    people_found: int = 0
    association: str = ""
    landmarks_triangulated: int = 0
    views_dropped: int = 0
    median_views: float = float("nan")
    median_repro_error_px: float = float("nan")
    whole_image_frames: int = 0
    crop_consensus_faces: int = 0
    image_rotation: dict = field(default_factory=dict)
    rejections: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"frames": self.frames, "faces_written": self.faces_written, "detections": self.detections,
                "associated": self.associated, "landmarks_triangulated": self.landmarks_triangulated,
                "association": self.association, "views_read": self.views_read,
                "views_no_image": self.views_no_image, "people_found": self.people_found,
                "views_dropped": self.views_dropped, "whole_image_frames": self.whole_image_frames,
                "crop_consensus_faces": self.crop_consensus_faces,
                # None, not NaN, when nothing was triangulated: NaN is not valid JSON.
                "median_views": None if np.isnan(self.median_views) else self.median_views,
                "median_repro_error_px": None if np.isnan(self.median_repro_error_px) else self.median_repro_error_px,
                "image_rotation": self.image_rotation,
                "rejections": dict(self.rejections), "seconds": round(self.seconds, 3)}

    def __str__(self) -> str:
        return (f"triangulated {self.faces_written} faces in {self.frames} frames "
                f"({self.associated}/{self.detections} detections associated, {self.views_dropped} views "
                f"left out as inconsistent; median "
                f"{self.median_views:.0f} views, {self.median_repro_error_px:.2f} px) in {self.seconds:.1f} s"
                + (f"; whole images searched in {self.whole_image_frames} of {self.frames} frames, around "
                   f"the tracked heads in the others" if 0 < self.whole_image_frames < self.frames else "")
                + "".join(f"; camera {name} turned {deg} degrees clockwise for detection"
                          for name, deg in self.image_rotation.get("degrees_cw", {}).items() if deg)
                + (f"; rejections {dict(self.rejections)}" if self.rejections else ""))


# --------------------------------------------------------------------------- the stage

@dataclass
class _Pending:
    """Detections of frames waiting to be triangulated together."""

    frames: list = field(default_factory=list)          # (frame, person ids (P,))
    points: list = field(default_factory=list)          # (C, P, 70, 2)
    confidence: list = field(default_factory=list)      # (C, P, 70)

    def __len__(self) -> int:
        return len(self.frames)


class _Run:
    """State of one stage run: inputs, outputs, previous frame's faces, counters."""

    def __init__(self, rig: CameraRig, camera_index: np.ndarray, sequence: str, backend: LandmarkBackend,
                 config: StageConfig, views: ViewSearch, faces_out, rejections_out, detections_out):
        self.rig, self.camera_index, self.sequence = rig, camera_index, sequence
        self.backend, self.config, self.views = backend, config, views
        self.faces_out, self.rejections_out, self.detections_out = faces_out, rejections_out, detections_out
        self.pending = _Pending()
        self.previous: tuple[np.ndarray, np.ndarray] | None = None   # person ids, (P, 70, 3)
        self.summary = StageSummary()
        self.mode = "priors"
        self.tracker = Tracker(config.tracking)
        self._views: list[np.ndarray] = []
        self._errors: list[np.ndarray] = []

    def priors(self, frame: int, bodies: BodyIndex) -> HeadPriors:
        """Body priors, plus previous-frame faces for people without a body this frame."""
        from_bodies = bodies.priors(frame)
        have = np.isfinite(from_bodies.centre_world).all(axis=1)
        from_bodies = HeadPriors(from_bodies.person[have], from_bodies.centre_world[have],
                                 from_bodies.radius_cm[have], from_bodies.anchors_world[have])
        if self.previous is None:
            return from_bodies
        person, landmarks = self.previous
        missing = ~np.isin(person, from_bodies.person)
        if not missing.any():
            return from_bodies
        return stack_priors(from_bodies, priors_from_landmarks(person[missing], landmarks[missing]))

    def needs_previous(self, frame: int, bodies: BodyIndex) -> bool:
        """Whether some person tracked so far has no body this frame (then the previous
        frame must be triangulated before this one is detected). Never without priors."""
        if self.mode != "priors" or not len(self.pending) and self.previous is None:
            return False
        tracked = self.pending.frames[-1][1] if len(self.pending) else self.previous[0]
        body_people = bodies.person[bodies.rows.get(frame, np.zeros(0, np.int64))]
        return bool(np.isin(tracked, body_people, invert=True).any())

    def detect_frame(self, frame: int, bodies: BodyIndex) -> None:
        """Detect and associate in every view; queue the frame's observations."""
        if self.mode == "priors":
            priors = self.priors(frame, bodies)
            views = detect_views(self.rig, self.views, frame, priors, self.config.association_max_cost)
            person, why = priors.person, (f"is farther than {self.config.association_max_cost} head radii "
                                          f"from every person's head prior")
        else:
            search = self.tracker.search_priors(frame) if getattr(self.backend, "searches_head_boxes", False) else None
            self.summary.whole_image_frames += search is None
            views, person = detect_views_cross(self.rig, self.views, frame, self.tracker, self.config.cross_view,
                                               search)
            why = (f"matches no face of another view (median keypoint epipolar distance <= "
                   f"{self.config.cross_view.max_epipolar} face sizes, plausible depth, reprojection <= "
                   f"{self.config.cross_view.max_reprojection} face sizes): seen in one view only, or not "
                   f"consistent with the calibration")
        views, changed = with_crop_consensus(self.rig, views, self.config.threshold_face_px, search=self.views)
        self.summary.crop_consensus_faces += changed
        self.summary.detections += views.detections
        self.summary.associated += views.detections - len(views.unassociated)
        self.summary.views_read += views.views_read
        self.summary.views_no_image += len(views.no_image)
        self.summary.people_found += len(person)
        for camera, d, n, _, _ in views.unassociated:
            self._reject(frame, None, self.rig.names[camera], UNASSOCIATED_FACE, f"face {d} of {n} {why}")
        for camera, reason, message in views.no_image:
            self._reject(frame, None, self.rig.names[camera], reason, message)
        self.pending.frames.append((frame, person))
        self.pending.points.append(views.points_px)
        self.pending.confidence.append(views.confidence)
        self.summary.frames += 1
        self._write_detections(frame, person, views)

    def _write_detections(self, frame: int, person: np.ndarray, views: FrameViews) -> None:
        """detections2d rows of one frame: every associated view with a point, and every
        unassociated face (person -1: a miscalibrated camera's faces miss their priors)."""
        found = np.isfinite(views.points_px).all(-1).any(-1)                       # (C, P)
        cam, p = np.nonzero(found)
        cams = list(cam) + [u[0] for u in views.unassociated]
        n = len(cams)
        if not n:
            return
        # Explicit sizes: a frame with no person yet unclaimed faces has zero associated rows.
        points = [views.points_px[cam, p].reshape(len(cam), 140)] + [u[3].reshape(1, 140) for u in views.unassociated]
        conf = [views.confidence[cam, p].reshape(len(cam), 70)] + [u[4].reshape(1, 70) for u in views.unassociated]
        self.detections_out.write({
            "sequence": [self.sequence] * n,
            "frame": np.full(n, frame, dtype=np.int32),
            "person": np.concatenate([np.asarray(person)[p], np.full(len(views.unassociated), -1)]).astype(np.int32),
            "camera": np.asarray(self.rig.names, dtype=object)[np.asarray(cams, dtype=np.int64)],
            "landmarks_px": np.concatenate(points).astype(np.float32),
            "confidence": np.concatenate(conf).astype(np.float32),
        })

    def flush(self) -> None:
        """Triangulate the queued frames and write their rows."""
        if not len(self.pending):
            return
        points = np.concatenate(self.pending.points, axis=1)                 # (C, M, 70, 2)
        conf = np.concatenate(self.pending.confidence, axis=1)
        tolerance = threshold_tolerance(points, self.config.threshold_face_px)             # (C, M)
        if self.config.max_view_error_px is not None:
            points, conf = self._consistent_views(points, conf, tolerance)
        tri = triangulate_points(self.rig, points, conf, self.config.triangulation, tolerance[..., None])
        start = 0
        for frame, person in self.pending.frames:
            sl = slice(start, start + len(person))
            start = sl.stop
            written = self._write_frame(frame, person, tri.points_world[sl], tri.repro_error_px[sl],
                                        tri.inliers[sl], tri.confidence[sl])
            # People followed into the next frame: those with a face written this frame.
            self.previous = (person[written], tri.points_world[sl][written])
        self.pending = _Pending()

    def _consistent_views(self, points: np.ndarray, conf: np.ndarray, tolerance: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """The queued faces (C, M, 70, ...) with the views that disagree with the rest removed;
        a face none of whose view pairs agree is rejected (``face_views.consistent_views``)."""
        seen = seen_views(points, conf).any(-1)                                          # (C, M)
        keep = consistent_views(self.rig, points, conf, self.config.max_view_error_px, self.config.triangulation,
                                tolerance)
        faces = [(frame, p) for frame, person in self.pending.frames for p in person]
        for m in np.flatnonzero((seen.sum(0) >= 2) & ~keep.any(0)):
            frame, person = faces[m]
            self._reject(frame, int(person), None, INCONSISTENT_VIEWS,
                         f"no two of its views ({', '.join(self.rig.names[c] for c in np.flatnonzero(seen[:, m]))}) "
                         f"agree within triangulate.max_view_error_px = {self.config.max_view_error_px} px "
                         f"(median reprojection error{self._widened_note()})")
        dropped = seen & ~keep
        self.summary.views_dropped += int(dropped.sum())
        return np.where(keep[..., None, None], points, np.nan), np.where(keep[..., None], conf, 0.0)

    def _widened_note(self) -> str:
        size = self.config.threshold_face_px
        return "" if size is None else f"; in proportion for faces over triangulate.threshold_face_px = {size} px"

    def _write_frame(self, frame: int, person: np.ndarray, landmarks: np.ndarray, error: np.ndarray,
                     inliers: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """faces3d rows of one frame: landmarks (P, 70, 3), error (P, 70), inliers (P, 70, C).
        Returns (P,) the faces written (the others are rejections)."""
        ok = np.isfinite(landmarks).all(axis=-1)
        count = ok.sum(axis=1)
        keep = count >= self.config.min_landmarks
        for p in np.flatnonzero(~keep):
            self._reject(frame, int(person[p]), None, TOO_FEW_LANDMARKS,
                         f"{int(count[p])} landmarks triangulated, fewer than {self.config.min_landmarks}")
        keep &= self._plausible(frame, person, landmarks, keep)
        if not keep.any():
            return keep
        views = inliers[keep].sum(axis=-1)
        full = max(self.config.full_score_views - 1, 1)
        score = np.where(ok[keep], confidence[keep] * np.clip((views - 1) / full, 0.0, 1.0), 0.0)
        visibility = [[self.camera_index[np.flatnonzero(v)].tolist() for v in face] for face in inliers[keep]]
        n = int(keep.sum())
        self.faces_out.write({
            "sequence": [self.sequence] * n,
            "frame": np.full(n, frame, dtype=np.int32),
            "person": person[keep].astype(np.int32),
            "landmarks_world": landmarks[keep].reshape(n, -1).astype(np.float32),
            "score": score.astype(np.float32),
            "repro_error": np.where(ok[keep], error[keep], NOT_RECONSTRUCTED_REPRO_ERROR_PX).astype(np.float32),
            "visibility": visibility,
            "source": [SOURCE_TRIANGULATED] * n,
        })
        self.summary.faces_written += n
        self.summary.landmarks_triangulated += int(ok[keep].sum())
        self._views.append(views[ok[keep]])
        self._errors.append(error[keep][ok[keep]])
        return keep

    def _plausible(self, frame: int, person: np.ndarray, landmarks: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(P,) False for the candidate faces whose size against the mean adult face is
        outside ``face_scale_range`` (each recorded as an ``implausible_face`` rejection);
        faces with too few brow, nose, eye and mouth points to tell stay."""
        plausible = np.ones(len(person), dtype=bool)
        if self.config.face_scale_range is None or not candidates.any():
            return plausible
        low, high = self.config.face_scale_range
        scale, rms, used = scale_against_mean_face(landmarks)
        for p in np.flatnonzero(candidates & ((scale < low) | (scale > high))):
            plausible[p] = False
            self._reject(frame, int(person[p]), None, IMPLAUSIBLE_FACE,
                         f"{scale[p]:.2f} times the size of a mean adult face (similarity fit of its {int(used[p])} "
                         f"brow, nose, eye and mouth landmarks, RMS {rms[p]:.2f} cm), outside "
                         f"triangulate.face_scale_range = [{low}, {high}]: its views' landmarks lie on different "
                         f"parts of the face")
        return plausible

    def _reject(self, frame, person, camera, reason: str, detail: str) -> None:
        self.summary.rejections[reason] += 1
        self.rejections_out.write({"sequence": [self.sequence], "stage": [STAGE], "frame": [frame],
                                   "person": [person], "camera": [camera], "file": [""],
                                   "reason": [reason], "detail": [detail]})

    def finish(self) -> StageSummary:
        self.flush()
        if self._views:
            self.summary.median_views = float(np.median(np.concatenate(self._views)))
            self.summary.median_repro_error_px = float(np.median(np.concatenate(self._errors)))
        return self.summary


def selected_frames(bodies_path: str | Path | None, published_faces_path: str | Path | None) -> np.ndarray:
    """(F,) sorted frame numbers the ingest selected: those of its bodies and faces tables."""
    frames = [np.zeros(0, np.int64)]
    for path, table in ((bodies_path, "bodies"), (published_faces_path, "faces3d")):
        if path is not None and Path(path).is_file():
            frames.append(read_table(path, table, columns=["frame"]).column("frame").to_numpy().astype(np.int64))
    return np.unique(np.concatenate(frames))


def triangulate_sequence(seq_dir: str | Path, cameras_path: str | Path, bodies_path: str | Path | None,
                         frames: np.ndarray, backend: LandmarkBackend, out_dir: str | Path,
                         config: StageConfig = StageConfig(), frame_source: str = "auto",
                         progress: bool | None = None, workers: int = 1,
                         backend_factory: Callable[[], LandmarkBackend] | None = None) -> StageSummary:
    """Write ``out_dir/faces3d.parquet`` (source=triangulated), ``out_dir/rejections.parquet``
    and ``out_dir/detections2d.parquet`` (the associated 2D detections, for the audit).

    seq_dir: the Panoptic sequence folder (videos, or the synthetic ground truth that the
    synthetic backend reads); cameras_path / bodies_path: the ingest tables (bodies may be
    None); frames: (F,) frame numbers to process, in order; frame_source: 'auto', 'video'
    (hdVideos) or 'images' (hdImgs) for image-based backends. progress: a bar over the
    frames (None: only on a terminal, as the label stage; 2D detection of a real sequence
    with FAN takes hours). workers: processes that detect the views of each frame
    (``annotate.labels.view_search``; at most one per camera and per available CPU), for
    image backends, each with its own backend from ``backend_factory`` (picklable; needed
    for workers > 1); the outputs do not depend on it.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    info = load_camera_info(cameras_path)
    rig, sequence = info.rig, str(read_table(cameras_path, "cameras", columns=["sequence"]).column("sequence")[0])
    frames = np.asarray(frames, dtype=np.int64)
    bodies = body_index(bodies_path)
    out_dir = Path(out_dir)
    if not len(frames):
        raise NothingTriangulatedError(
            f"no frame to triangulate: the ingest selected none (bodies table {bodies_path}, frames table "
            f"beside it); check the ingest's frame range (ingest.frame_start/frame_end) and that the sequence "
            f"has hdFace3d/hdPose3d files or images/videos (detect.frames_from)", StageSummary())
    views = view_search(seq_dir, cameras_path, rig, frames, backend, frame_source, workers, backend_factory)
    with views_closed(views), \
            StreamingTableWriter(out_dir / "faces3d.parquet", "faces3d") as faces_out, \
            StreamingTableWriter(out_dir / "rejections.parquet", "rejections") as rejections_out, \
            StreamingTableWriter(out_dir / "detections2d.parquet", "detections2d") as detections_out:
        run = _Run(rig, info.camera_index.astype(np.int16), sequence, backend, config, views, faces_out,
                   rejections_out, detections_out)
        run.mode = association_mode(config.association, bodies)
        run.summary.association = run.mode
        for frame in tqdm(frames.tolist(), unit="frame", desc="detect+triangulate",
                          disable=None if progress is None else not progress):
            if run.needs_previous(frame, bodies):
                run.flush()
            run.detect_frame(frame, bodies)
            if len(run.pending) >= config.chunk_frames:
                run.flush()
        summary = run.finish()
    summary.image_rotation = views.turn_summary(rig.names)
    summary.seconds = time.perf_counter() - start
    if summary.faces_written == 0:
        raise NothingTriangulatedError(nothing_triangulated_message(summary, backend, config, out_dir), summary)
    return summary


def view_search(seq_dir: str | Path, cameras_path: str | Path, rig: CameraRig, frames: np.ndarray,
                backend: LandmarkBackend, frame_source: str, workers: int,
                backend_factory: Callable[[], LandmarkBackend] | None) -> ViewSearch:
    """Where the views are detected: in ``workers`` processes (capped at the cameras, the
    available CPUs and the memory now available at ``WORKER_MEMORY_BYTES`` each) for image
    backends with a factory, else in this process."""
    offsets = load_frame_offsets(cameras_path)
    if not backend.needs_images:
        return SerialViews(backend)
    wanted = min(capped_workers(workers), len(rig))
    workers = memory_capped_workers(wanted, WORKER_MEMORY_BYTES)
    if workers < wanted:
        print(f"triangulate: {workers} view workers, not {wanted}: the memory available now holds "
              f"{workers} at {WORKER_MEMORY_BYTES / 2 ** 30:.1f} GB each")
    if workers > 1 and backend_factory is not None:
        return ParallelViews(backend_factory, seq_dir, rig.names, frames, frame_source, offsets, workers)
    return SerialViews(backend, CameraImages(Path(seq_dir), rig.names, frames, frame_source, offsets))


@contextmanager
def views_closed(views: ViewSearch):
    """Close the view search (its workers) however the run ends."""
    try:
        yield views
    finally:
        views.close()


def association_mode(setting: str, bodies: BodyIndex) -> str:
    """``priors`` or ``cross_view`` for the ``detect.association`` setting (module docstring)."""
    if setting == "auto":
        return "priors" if len(bodies.person) else "cross_view"
    if setting == "priors" and not len(bodies.person):
        raise ValueError("detect.association is 'priors' but the ingest's bodies table has no row (no "
                         "hdPose3d_stage1_coco19 files were read): set detect.association to 'auto' or "
                         "'cross_view' to find the people without body skeletons")
    return setting


# ---------------------------------------------------------------------------- cross-check

def crosscheck_faces3d(published_path: str | Path, triangulated_path: str | Path,
                       crosscheck_path: str | Path, combined_path: str | Path) -> dict:
    """Compare published and triangulated faces; write the cross-check and combined tables.

    Cross-check (schemas/faces3d_crosscheck): one row per (frame, person) in either table,
    with the distance per landmark where both have it. Combined (faces3d): every published
    row, plus the triangulated rows of (frame, person) the published data lacks: the faces
    the labels use with ``landmarks3d: both``. Returns summary figures.
    """
    pub, tri = load_faces3d(published_path), load_faces3d(triangulated_path)
    kp, kt = frame_person_keys(pub.frame, pub.person), frame_person_keys(tri.frame, tri.person)
    keys = np.union1d(kp, kt)
    n = len(keys)
    lm_pub = np.full((n, NUM_LANDMARKS, 3), np.nan)
    lm_tri = np.full((n, NUM_LANDMARKS, 3), np.nan)
    lm_pub[np.searchsorted(keys, kp)] = pub.landmarks
    lm_tri[np.searchsorted(keys, kt)] = tri.landmarks
    distance = np.linalg.norm(lm_pub - lm_tri, axis=-1)                       # (n, 70), NaN = not both
    compared = np.isfinite(distance).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # rows with nothing to compare
        median, p90, worst = (np.nanmedian(distance, axis=1), np.nanpercentile(distance, 90, axis=1),
                              np.nanmax(distance, axis=1))
    sequence = pub.sequence[0] if len(pub) else (tri.sequence[0] if len(tri) else "")
    write_table({"sequence": [sequence] * n, "frame": (keys // 1_000_000).astype(np.int32),
                 "person": (keys % 1_000_000).astype(np.int32), "in_published": np.isin(keys, kp),
                 "in_triangulated": np.isin(keys, kt), "distance_cm": distance.astype(np.float32),
                 "landmarks_compared": compared.astype(np.int16), "median_cm": median.astype(np.float32),
                 "p90_cm": p90.astype(np.float32), "max_cm": worst.astype(np.float32)},
                crosscheck_path, "faces3d_crosscheck")
    published, triangulated = read_table(published_path, "faces3d"), read_table(triangulated_path, "faces3d")
    fill = triangulated.filter(pa.array(~np.isin(kt, kp)))
    combined = pa.concat_tables([published, fill]).combine_chunks()
    order = pc.sort_indices(combined, sort_keys=[("frame", "ascending"), ("person", "ascending")])
    write_table(combined.take(order), combined_path, "faces3d")
    both = np.isfinite(distance)
    return {"faces_published": int(len(kp)), "faces_triangulated": int(len(kt)),
            "faces_both": int((compared > 0).sum()), "faces_filled_in": int(fill.num_rows),
            "landmark_distance_cm": {
                "median": float(np.median(distance[both])) if both.any() else None,
                "p90": float(np.percentile(distance[both], 90)) if both.any() else None,
                "p99": float(np.percentile(distance[both], 99)) if both.any() else None}}

