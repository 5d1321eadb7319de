"""One frame's faces in every camera view, assigned to people, for the triangulation stage.

- ``make_backend``: the landmark backend a resolved config names;
- ``CameraImages``: every camera's frames, from its video or its hdImgs JPEGs;
- ``BodyIndex``: the body skeletons of the selected frames, the head priors of each;
- ``detect_views``: the backend on every view, the faces assigned to the body priors'
  people (``annotate.detect.association``);
- ``detect_views_cross``: the backend on every view (whole images, or spheres around the
  tracked heads), the faces grouped into people across views (``annotate.detect.cross_view``)
  and given ids over frames (``annotate.detect.tracking``).

Both return a ``FrameViews``: (C, P, 70, 2) points per camera and person, the faces nobody
claimed, the cameras without an image.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from annotate.detect.association import associate_view
from annotate.detect.base import LandmarkBackend
from annotate.detect.cross_view import CrossViewConfig, associate_frame
from annotate.detect.heads import HeadPriors, head_boxes_px, priors_from_bodies, project_priors
from annotate.detect.tracking import Tracker
from annotate.geometry.cameras import CameraRig
from annotate.geometry.crop_consensus import ConsensusConfig
from annotate.geometry.face_views import face_size_px, threshold_tolerance
from annotate.head.head_frame import NUM_LANDMARKS
from annotate.labels.view_search import ParallelViews, SerialViews, choose_crops
from annotate.panoptic.tables import load_bodies

ViewSearch = SerialViews | ParallelViews

@dataclass
class BodyIndex:
    """Bodies of the selected frames, indexed by frame."""

    rows: dict[int, np.ndarray]            # frame -> row indices into the bodies arrays
    person: np.ndarray
    joints: np.ndarray
    confidence: np.ndarray

    def priors(self, frame: int) -> HeadPriors:
        r = self.rows.get(frame, np.zeros(0, np.int64))
        return priors_from_bodies(self.person[r], self.joints[r], self.confidence[r])


def body_index(bodies_path: str | Path | None) -> BodyIndex:
    if bodies_path is None or not Path(bodies_path).is_file():
        return BodyIndex({}, np.zeros(0, np.int64), np.zeros((0, 19, 3)), np.zeros((0, 19)))
    b = load_bodies(bodies_path)
    rows: dict[int, list[int]] = {}
    for i, f in enumerate(b.frame.tolist()):
        rows.setdefault(f, []).append(i)
    return BodyIndex({f: np.array(r) for f, r in rows.items()}, b.person, b.joints, b.confidence)


class CameraImages:
    """Every camera's frames, pulled frame by frame: one sequential decoder per video
    (``annotate.media.video``), or one JPEG per frame from hdImgs (per camera, source 'auto'
    taking the video where there is one). ``missing`` says why a
    camera's last missing image is missing: (a rejection reason code of the video reader,
    the reader's message naming the file and what is wrong with it). offsets: camera ->
    the picture number of frame 0 (``annotate.panoptic.frame_offsets``; absent: 0);
    decode_threads: each video decoder's threads (0: FFmpeg's choice, one per core)."""

    def __init__(self, seq_dir: Path, cameras: tuple[str, ...], frames: np.ndarray, source: str,
                 offsets: dict[str, int] | None = None, decode_threads: int = 0):
        from annotate.media.video import camera_frame_source, iter_camera_frames

        self.seq_dir, self.cameras = seq_dir, cameras
        self.offsets = [int((offsets or {}).get(name, 0)) for name in cameras]
        self.sources = [camera_frame_source(seq_dir, name, source) for name in cameras]     # per camera
        self._iters = [iter_camera_frames(seq_dir, name, frames, source="video", offset=offset,
                                          threads=decode_threads)
                       if kind == "video" else None
                       for name, kind, offset in zip(cameras, self.sources, self.offsets)]
        self._next: list = [None] * len(cameras)
        self._done = [False] * len(cameras)
        self.missing: dict[int, tuple[str, str]] = {}

    def image(self, camera: int, frame: int) -> np.ndarray | None:
        """(H, W, 3) RGB of ``frame``; None when it cannot be had (see ``missing``)."""
        from annotate.media.video import (MISSING_IMAGE, VIDEO_TOO_SHORT, VideoError, camera_image_dir,
                                          read_image_frame)

        name, picture = self.cameras[camera], frame + self.offsets[camera]
        if picture < 0:
            self.missing[camera] = (MISSING_IMAGE, f"camera {name} has no picture of frame {frame}: its pictures "
                                                   f"are frame + {self.offsets[camera]} (ingest.frame_offsets)")
            return None
        if self.sources[camera] == "images":
            try:
                return read_image_frame(camera_image_dir(self.seq_dir, name), name, picture).rgb()
            except VideoError as err:
                self.missing[camera] = (err.reason, str(err))
                return None
        while not self._done[camera] and (self._next[camera] is None or self._next[camera].index < frame):
            try:
                self._next[camera] = next(self._iters[camera])
            except StopIteration:
                self._done[camera] = True
                self.missing[camera] = (VIDEO_TOO_SHORT, f"the {self.cameras[camera]} video ends before frame {frame}")
            except VideoError as err:
                self._done[camera], self.missing[camera] = True, (err.reason, str(err))
        got = self._next[camera]
        return got.rgb() if got is not None and got.index == frame else None



@dataclass(frozen=True)
class FrameViews:
    """One frame's detections, assigned to people: points_px (C, P, 70, 2) (NaN = none),
    confidence (C, P, 70); detections: faces found; unassociated: (camera, face, faces in
    the view, points (70, 2), confidence (70,)) of faces nobody claimed; no_image: cameras
    skipped for want of an image; views_read: views looked at; alternatives: (camera,
    person) -> (K, 70, 2) the face's points from other crops, where the backend gives them
    (``FaceDetections.alternatives_px``)."""

    points_px: np.ndarray
    confidence: np.ndarray
    detections: int
    unassociated: list
    no_image: list
    views_read: int = 0
    alternatives: dict = field(default_factory=dict)


def detect_views(rig: CameraRig, views: ViewSearch, frame: int, priors: HeadPriors, max_cost: float) -> FrameViews:
    """Run the backend on every view of ``frame`` (``annotate.labels.view_search``: in this
    process or in workers) and assign the faces to the priors' people."""
    C, P = len(rig), len(priors)
    points = np.full((C, P, NUM_LANDMARKS, 2), np.nan)
    conf = np.zeros((C, P, NUM_LANDMARKS))
    boxes = head_boxes_px(rig, priors)                                       # (C, P, 4)
    anchors_px, centre_px, radius_px = project_priors(rig, priors)
    found = views.detect(frame, [b[np.isfinite(b).all(axis=1)] for b in boxes])
    detections, unassociated, alternatives = 0, [], {}
    no_image = [(c, *found[c].no_image) for c in range(C) if found[c].no_image is not None]
    for c in range(C):
        faces = found[c].faces
        owner = associate_view(faces, anchors_px[c], centre_px[c], radius_px[c], max_cost)
        detections += len(faces)
        unassociated += [(c, int(d), len(faces), faces.points_px[d], faces.confidence[d])
                         for d in np.flatnonzero(owner < 0)]
        mine = owner >= 0
        points[c, owner[mine]] = faces.points_px[mine]
        conf[c, owner[mine]] = faces.confidence[mine]
        if faces.alternatives_px is not None:
            alternatives.update({(c, int(owner[d])): faces.alternatives_px[d] for d in np.flatnonzero(mine)})
    return FrameViews(points, conf, detections, unassociated, no_image, C - len(no_image), alternatives)


def detect_views_cross(rig: CameraRig, views: ViewSearch, frame: int, tracker: Tracker,
                       config: CrossViewConfig = CrossViewConfig(),
                       search: HeadPriors | None = None) -> tuple[FrameViews, np.ndarray]:
    """The prior-free path for one frame: faces in every view, grouped into people across
    views (``annotate.detect.cross_view``), ids from the tracker. Returns the frame's views
    and the (G,) person ids of its people (frames in increasing order).

    search: None = whole images; else only these head spheres are searched (the tracker's
    ``search_priors``), and a view that sees none of them is not searched.
    """
    C = len(rig)
    if search is None:
        requests = [np.zeros((0, 4))] * C
    else:
        boxes = head_boxes_px(rig, search)                                                 # (C, P, 4)
        requests = [b[np.isfinite(b).all(axis=1)] for b in boxes]
        requests = [r if len(r) else None for r in requests]                  # no tracked head in this view
    found = views.detect(frame, requests)
    faces = [found[c].faces for c in range(C)]
    no_image = [(c, *found[c].no_image) for c in range(C) if found[c].no_image is not None]
    groups = associate_frame(rig, faces, config)
    person = tracker.update(frame, groups.head_world) if len(groups) else np.zeros(0, np.int64)
    G = len(groups)
    points = np.full((C, G, NUM_LANDMARKS, 2), np.nan)
    conf = np.zeros((C, G, NUM_LANDMARKS))
    claimed = [set() for _ in range(C)]
    alternatives = {}
    for g, c in zip(*np.nonzero(groups.members >= 0)):
        d = groups.members[g, c]
        points[c, g], conf[c, g] = faces[c].points_px[d], faces[c].confidence[d]
        claimed[c].add(int(d))
        if faces[c].alternatives_px is not None:
            alternatives[(int(c), int(g))] = faces[c].alternatives_px[d]
    unassociated = [(c, d, len(faces[c]), faces[c].points_px[d], faces[c].confidence[d])
                    for c in range(C) for d in range(len(faces[c])) if d not in claimed[c]]
    views = FrameViews(points, conf, sum(len(f) for f in faces), unassociated, no_image, C - len(no_image),
                       alternatives)
    return views, person


def with_crop_consensus(rig: CameraRig, views: FrameViews, threshold_face_px: float | None,
                        config: ConsensusConfig = ConsensusConfig(), search: ViewSearch | None = None
                        ) -> tuple[FrameViews, int]:
    """The frame's views with each person's points taken from the alternative crops the
    views agree on (``annotate.geometry.crop_consensus``: the ``max_views`` views with the
    largest faces of at least ``min_face_px``), where the backend gave alternatives; and how
    many people changed. threshold_face_px: as the triangulation's
    (pixel thresholds grow with faces over it). search: where the consensus of each face is
    computed (``ViewSearch.choose_crops``: in its workers); None = here."""
    if not views.alternatives:
        return views, 0
    C, P = views.points_px.shape[:2]
    tolerance = threshold_tolerance(views.points_px, threshold_face_px)                  # (C, P)
    size = face_size_px(views.points_px)                                                 # (C, P)
    people, tasks = [], []
    for p in range(P):
        taking_part = np.flatnonzero(size[:, p] >= config.min_face_px)
        taking_part = taking_part[np.argsort(-size[taking_part, p], kind="stable")[:config.max_views]]
        alternatives = [views.alternatives.get((c, p)) if c in taking_part else None for c in range(C)]
        if sum(a is not None for a in alternatives) >= 2:
            people.append(p)
            tasks.append((alternatives, tolerance[:, p]))
    choices = (search.choose_crops if search is not None else choose_crops)(rig, tasks, config)
    points = views.points_px.copy()
    changed = 0
    for p, (alternatives, _), chosen in zip(people, tasks, choices):
        for c in np.flatnonzero(chosen >= 0):
            points[c, p] = alternatives[c][chosen[c]]
        changed += bool((chosen >= 0).any())
    confidence = np.where(np.isfinite(points).all(-1), views.confidence, 0.0)      # an alternative may lack a pupil
    return replace(views, points_px=points, confidence=confidence), changed


# ---------------------------------------------------------------------------- backends

def make_backend(config: dict, seq_dir: str | Path, rig: CameraRig) -> LandmarkBackend:
    """The landmark backend a resolved config names (``detect.backend``), image backends with
    the face detector ``detect.face_detector``, seeing each camera's images turned upright
    (``detect.image_rotation``, ``annotate.detect.orientation``)."""
    d = config["detect"]
    if d["backend"] == "synthetic":
        from annotate.detect.synthetic import SyntheticDetector, SyntheticDetectorConfig

        return SyntheticDetector(seq_dir, rig, SyntheticDetectorConfig(**d["synthetic"]))
    from annotate.detect.orientation import CameraTurns, UprightBackend, parse_rotation_setting

    backend = image_backend(d)
    settings = parse_rotation_setting(d["image_rotation"], rig.names)
    if all(s == 0 for s in settings):
        return backend
    return UprightBackend(backend, CameraTurns(settings, min_score=d["image_rotation_min_score"]))


def image_backend(d: dict) -> LandmarkBackend:
    """The image landmark backend of the resolved ``detect`` section, on the images as they are."""
    from annotate.detect.faces import make_face_detector

    faces = make_face_detector(d["face_detector"], d.get(d["face_detector"], {}))
    if d["backend"] == "fan":
        from annotate.detect.fan import FanConfig, FanDetector

        return FanDetector(FanConfig(**d["fan"]), faces)
    if d["backend"] == "dlib":
        from annotate.detect.dlib68 import DlibConfig, DlibDetector

        return DlibDetector(DlibConfig(**d["dlib"]), faces)
    if d["backend"] == "facemesh":
        from annotate.detect.facemesh import FaceMeshConfig, FaceMeshDetector

        return FaceMeshDetector(FaceMeshConfig(**d["facemesh"]), faces)
    raise ValueError(f"unknown detect.backend {d['backend']!r} (synthetic, fan, dlib, facemesh)")
