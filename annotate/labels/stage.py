"""The label stage: mean head model, per-face fits and per-camera labels, chunked on disk.

Reads the ingest tables (``faces3d.parquet``, ``cameras.parquet``) and writes
``head_fits.parquet`` and ``labels.parquet``: per (face, camera) the pose labels
(``per_view``), the 70 landmarks in full-frame pixels and their visibility
(``visibility``). Faces are processed in chunks of about ``chunk_faces`` rows made of whole
frames (occlusion needs every person of a frame together), streamed from and to Parquet, so
peak memory does not grow with the sequence length. No videos are needed.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from annotate.core.atomic import write_text_atomic
from annotate.core.results import LABEL_FILES
from annotate.core.tables import StreamingTableWriter, fixed_list_to_numpy, iter_batches, read_table
from annotate.geometry.cameras import CameraRig
from annotate.head.head_frame import HeadFrameSpec
from annotate.labels.fit import FitConfig, HeadFits, fit_heads
from annotate.head.head_mesh import build_head_mesh
from annotate.head.head_model import HeadModel, build_head_model, subsample_indices
from annotate.head.per_view import (ViewConfig, ViewLabels, camera_labels, model_landmarks_world,
                                      project_landmarks)
from annotate.head.raycast import HeadFrameCaster
from annotate.labels.smoothing import SmoothingConfig, smooth_rotations
from annotate.labels.subjects import SubjectConfig, SubjectModels, learn_subjects
from annotate.head.visibility import (CODE_NAMES, HeadPoses, LandmarkVisibility, ListAgreement,
                                        face_visible, landmark_visibility, occluder_sets,
                                        untested_codes, visible_fraction)
from annotate.panoptic.tables import load_cameras

FACE_COLUMNS = ["sequence", "frame", "person", "landmarks_world", "score", "visibility", "source"]


@dataclass
class LabelSummary:
    faces: int = 0
    fits_ok: int = 0
    labels: int = 0
    labels_valid: int = 0
    fit_status: Counter = field(default_factory=Counter)
    reject_reasons: Counter = field(default_factory=Counter)
    visibility: bool = True
    landmark_codes: Counter = field(default_factory=Counter)
    views_face_visible: int = 0
    face70: ListAgreement = field(default_factory=ListAgreement)
    seconds: float = 0.0

    def visibility_json(self) -> dict:
        """The visibility part of summary.json: code counts and agreement with face70 lists."""
        return {
            "ray_cast": self.visibility,
            "landmark_codes": {CODE_NAMES[k]: self.landmark_codes.get(k, 0) for k in CODE_NAMES},
            "views_face_visible": self.views_face_visible,
            "face70_agreement": {
                "measures": "our visible flag (code 0) against membership in the faces3d "
                            "visibility camera lists, over (face, landmark, camera) triples of "
                            "faces with a successful fit and at least one listed camera, "
                            "ingested cameras only; positive = visible / listed",
                **self.face70.to_json()},
        }

    def __str__(self) -> str:
        lines = [f"faces fitted: {self.faces} ({self.fits_ok} ok)",
                 f"camera labels: {self.labels} ({self.labels_valid} valid) in {self.seconds:.1f} s"]
        if self.face70.faces:
            agreement = self.face70.to_json()
            lines.append(f"visibility vs face70 lists: agreement {agreement['agreement']}, "
                         f"precision {agreement['precision']}, recall {agreement['recall']} "
                         f"({agreement['faces']} faces)")
        if self.fit_status:
            lines.append("fit status: " + ", ".join(f"{k}={v}" for k, v in sorted(self.fit_status.items())))
        bad = {k: v for k, v in self.reject_reasons.items() if k}
        if bad:
            lines.append("rejected views: " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
        return "\n".join(lines)


def sample_faces(faces3d_paths: Iterable[str | Path], max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced faces across the given tables: ((M,70,3) landmarks, (M,70) scores).

    Reads in row batches and keeps only the sampled rows, so memory stays bounded.
    """
    paths = [Path(p) for p in faces3d_paths]
    counts = [pq.ParquetFile(p).metadata.num_rows for p in paths]
    keep = subsample_indices(sum(counts), max_faces)
    marks, scores, offset = [], [], 0
    for path, n in zip(paths, counts):
        local = keep[(keep >= offset) & (keep < offset + n)] - offset
        start = 0
        for batch in iter_batches(path, "faces3d", 4096, columns=["landmarks_world", "score"]):
            sel = local[(local >= start) & (local < start + batch.num_rows)] - start
            if len(sel):
                marks.append(fixed_list_to_numpy(batch.column("landmarks_world"), (70, 3))[sel])
                scores.append(fixed_list_to_numpy(batch.column("score"), (70,))[sel])
            start += batch.num_rows
        offset += n
    if not marks:
        raise ValueError(f"no faces to build a head model from in {[str(p) for p in paths]}: "
                         + "; ".join(empty_faces_cause(p) for p in paths))
    return np.concatenate(marks).astype(np.float64), np.concatenate(scores).astype(np.float64)


def empty_faces_cause(path: Path) -> str:
    """Which upstream step left the faces3d table ``path`` empty, from the files beside it:
    the triangulation (its summary.json counts) or the ingest (published hdFace3d)."""
    import json

    summary = path.parent / "summary.json"
    if summary.is_file():
        counts = json.loads(summary.read_text())
        if "faces_written" in counts:
            return (f"{path}: the triangulate stage wrote no face ({counts.get('detections')} faces detected in "
                    f"{counts.get('views_read')} views, {counts.get('people_found')} people associated; rejections "
                    f"{counts.get('rejections')} in {path.parent / 'rejections.parquet'})")
    if (path.parent / "detections2d.parquet").is_file():
        return (f"{path}: the triangulate stage wrote no face (its error, in its log, names the step that found "
                f"nothing; {path.parent / 'rejections.parquet'} lists what it rejected)")
    return (f"{path}: the ingest read no published face (no hdFace3d/ folder, or every file rejected: "
            f"{path.parent / 'rejections.parquet'} names the reason and the file); a capture without hdFace3d "
            f"needs landmarks3d: triangulated")


def build_model_from_tables(faces3d_paths: Iterable[str | Path], max_faces: int = 1000,
                            spec: HeadFrameSpec = HeadFrameSpec()) -> HeadModel:
    """Mean head model (GPA) from up to ``max_faces`` faces sampled across sequences."""
    paths = [str(p) for p in faces3d_paths]
    landmarks, scores = sample_faces(paths, max_faces)
    return build_head_model(landmarks, scores, spec, source=f"GPA over {len(landmarks)} faces from {', '.join(paths)}")


def _fit_columns(batch, fits: HeadFits, R_world_head_raw: np.ndarray, smoothed: np.ndarray,
                 variance_ratio: np.ndarray) -> dict:
    return {
        "sequence": batch.column("sequence"), "frame": batch.column("frame"), "person": batch.column("person"),
        "R_world_head": fits.R_world_head.reshape(-1, 9), "t_world_head": fits.t_world_head,
        "R_world_head_raw": R_world_head_raw.reshape(-1, 9), "smoothed": smoothed,
        "smoothing_variance_ratio": variance_ratio,
        "rotation_sigma_deg": fits.rotation_sigma_deg,
        "scale": fits.scale, "rms_cm": fits.rms_cm, "landmarks_used": fits.landmarks_used,
        "landmark_weight": fits.landmark_weight, "status": fits.status,
        "landmark_rigidity": fits.landmark_rigidity,
        "landmarks_source": batch.column("source"),
    }


@dataclass(frozen=True)
class LandmarkLabels:
    """2D landmarks and visibility of M faces in C cameras; arrays (C, M, ...).

    fitted_px, observed_px: (C, M, 70, 2) full-frame pixels of the fitted model's landmarks
    and of the face row's own landmarks (``per_view.LandmarkViews``); visibility: codes and
    occluder head indices (into the M faces) of the fitted landmarks.
    """

    fitted_px: np.ndarray
    observed_px: np.ndarray
    visibility: LandmarkVisibility


def landmark_labels(model: HeadModel, rig: CameraRig, fits: HeadFits, frames: np.ndarray,
                    observed_world: np.ndarray, caster: HeadFrameCaster | None,
                    shapes_head: np.ndarray | None = None) -> LandmarkLabels:
    """Project and ray-cast the landmarks of M fitted faces: the stage's landmark core.

    frames: (M,) frame of each face (heads occlude each other within a frame);
    observed_world: (M, 70, 3) the faces' own landmarks, cm, NaN = missing;
    caster: the head model's mesh (``model_caster``), or None to skip ray casting (codes
    inside the image are then NOT_TESTED); shapes_head: (M, 70, 3) each face's fitted shape
    (subject shapes), default the model's. The occluding mesh is the mean head's either way.
    """
    shapes = model.landmarks_head if shapes_head is None else shapes_head
    fitted_world = model_landmarks_world(shapes, fits.R_world_head, fits.t_world_head, fits.scale)
    views = project_landmarks(rig, fitted_world)
    heads = HeadPoses.one_mesh(fits.R_world_head, fits.t_world_head, fits.scale, fits.ok, frames)
    if caster is None:
        code = untested_codes(views.inside, heads.ok)
        visibility = LandmarkVisibility(code, np.full(code.shape, -1, dtype=np.int32))
    else:
        visibility = landmark_visibility(rig, caster, heads, fitted_world, views)
    observed = project_landmarks(rig, observed_world)
    return LandmarkLabels(views.pixels(), observed.pixels(), visibility)


def model_caster(model: HeadModel, nthreads: int = 1) -> HeadFrameCaster:
    """A caster over the head model's closed mesh (a surface through its landmarks
    completed by a skull), built once per model."""
    return HeadFrameCaster([build_head_mesh(model.landmarks_head)], nthreads)


def _label_columns(batch, rig: CameraRig, camera_index: np.ndarray, fits: HeadFits,
                   helmet: np.ndarray, views: ViewLabels, marks: LandmarkLabels) -> dict:
    """Rows in (face, camera) order: arrays (C, M, ...) are transposed to (M, C, ...)."""
    C, M = len(rig), batch.num_rows

    def rows(a):
        a = np.asarray(a)
        return np.swapaxes(a, 0, 1).reshape((M * C,) + a.shape[2:])

    def per_face(a):
        return np.repeat(np.asarray(a), C, axis=0)

    reject = rows(views.reject)
    code = rows(marks.visibility.code)                                     # (M*C, 70)
    persons = batch.column("person").to_numpy()
    occluder = rows(marks.visibility.occluder)
    offsets, occluder_ids = occluder_sets(np.where(occluder >= 0, persons[np.maximum(occluder, 0)], -1))
    return {
        "sequence": per_face(batch.column("sequence").to_numpy(zero_copy_only=False)),
        "frame": per_face(batch.column("frame").to_numpy()),
        "person": per_face(persons),
        "camera": np.tile(np.asarray(rig.names, dtype=object), M),
        "camera_index": np.tile(camera_index, M),
        "yaw": rows(views.euler_deg[..., 0]), "pitch": rows(views.euler_deg[..., 1]),
        "roll": rows(views.euler_deg[..., 2]),
        "R_cam_head": rows(views.R_cam_head).reshape(-1, 9), "rot6d": rows(views.rot6d),
        "quat_cam_head": rows(views.quat), "head_centre_cam": rows(views.centre_cam),
        "head_scale": per_face(fits.scale), "helmet_radius_cm": per_face(helmet),
        "box": rows(views.box), "box_unclipped": rows(views.box_unclipped),
        "box_fraction_inside": rows(views.fraction_inside), "facing_camera": rows(views.facing),
        "fit_rms_cm": per_face(fits.rms_cm), "fit_landmarks_used": per_face(fits.landmarks_used),
        "valid": reject == "", "reject_reason": reject,
        "landmarks_2d": rows(marks.fitted_px).reshape(-1, 140),
        "landmarks_2d_observed": rows(marks.observed_px).reshape(-1, 140),
        "landmark_visibility": code, "visible_fraction": visible_fraction(code),
        "face_visible": face_visible(code),
        "occluders": pa.ListArray.from_arrays(pa.array(offsets), pa.array(occluder_ids)),
    }


def label_faces(model: HeadModel, rig: CameraRig, landmarks_world: np.ndarray, scores: np.ndarray | None,
                fit_config: FitConfig = FitConfig(), view_config: ViewConfig = ViewConfig(),
                subject: dict | None = None) -> tuple[HeadFits, np.ndarray, ViewLabels]:
    """Fit M faces and label them in every camera: the pure core of the stage.

    landmarks_world (M,70,3) cm; scores (M,70) or None; subject: the faces' subject shapes,
    modes and weights (``SubjectModels.for_faces``), or None for the mean head, rigid,
    unweighted. Returns the fits, the helmet radii (M,) cm and the (C, M) view labels.
    """
    fits = fit_heads(model, landmarks_world, scores, fit_config, **(subject or {}))
    helmet, views = view_labels(model, rig, fits, view_config)
    return fits, helmet, views


def view_labels(model: HeadModel, rig: CameraRig, fits: HeadFits, view_config: ViewConfig = ViewConfig()
                ) -> tuple[np.ndarray, ViewLabels]:
    """Helmet radii (M,) cm and the (C, M) view labels of M fitted faces."""
    helmet = model.spec.helmet_radius_cm * np.where(np.isfinite(fits.scale), fits.scale, 1.0)
    # A face whose fit was refused keeps its fitted values (NaN where there are none) and
    # every one of its views is marked fit_failed.
    views = camera_labels(rig, fits.R_world_head, fits.t_world_head, helmet, fits.ok, view_config)
    return helmet, views


@dataclass(frozen=True)
class SequenceFits:
    """Every face's fit of a sequence, in faces3d row order.

    fits: the fits, ``R_world_head`` smoothed along the tracks where ``smoothed``;
    R_world_head_raw: (N, 3, 3) the per-frame fits; smoothed: (N,) bool; variance_ratio:
    (N,) the smoothed rotation's error variance relative to a raw fit's.
    """

    fits: HeadFits
    R_world_head_raw: np.ndarray
    smoothed: np.ndarray
    variance_ratio: np.ndarray


def fit_sequence(faces3d_path: str | Path, model: HeadModel, fit_config: FitConfig,
                 subjects: SubjectModels | None, smoothing: SmoothingConfig, chunk_faces: int = 4096
                 ) -> SequenceFits:
    """Fit every face of a faces3d table, then smooth the rotations along each track
    (sequence, person) over time (``annotate.labels.smoothing``)."""
    parts, tracks, frames, frame_sigma = [], [], [], []
    for batch in iter_batches(faces3d_path, "faces3d", chunk_faces,
                              columns=["sequence", "frame", "person", "landmarks_world", "score"]):
        landmarks = fixed_list_to_numpy(batch.column("landmarks_world"), (70, 3)).astype(np.float64)
        scores = fixed_list_to_numpy(batch.column("score"), (70,)).astype(np.float64)
        persons = batch.column("person").to_numpy()
        given = {} if subjects is None else subjects.for_faces(persons)
        parts.append(fit_heads(model, landmarks, scores, fit_config, **given))
        frame_sigma.append(np.zeros(len(persons)) if subjects is None else subjects.frame_sigma_for(persons))
        sequence = np.asarray(batch.column("sequence").to_pylist(), dtype=object)
        tracks.append(np.array([f"{q}\x00{p}" for q, p in zip(sequence, persons)], dtype=object))
        frames.append(batch.column("frame").to_numpy())
    if not parts:
        raise ValueError(f"{faces3d_path}: no faces to label")
    fits = HeadFits.concat(parts)
    track = np.unique(np.concatenate(tracks), return_inverse=True)[1]
    R_smooth, smoothed, ratio = smooth_rotations(track, np.concatenate(frames), fits.R_world_head, fits.ok,
                                                 smoothing)
    raw = fits.R_world_head
    # Smoothing averages the per-frame errors (variance ratio); the subject frame's error is
    # shared by all of the subject's faces and adds in quadrature.
    sigma = np.sqrt(fits.rotation_sigma_deg ** 2 * ratio + np.concatenate(frame_sigma) ** 2)
    return SequenceFits(dataclasses.replace(fits, R_world_head=R_smooth, rotation_sigma_deg=sigma), raw, smoothed,
                        ratio)


def iter_frame_chunks(path: str | Path, chunk_faces: int, columns: list[str]):
    """``pa.Table`` chunks of a faces3d table made of whole frames, about ``chunk_faces``
    rows each (more when one frame has more faces).

    The rows must be sorted by frame, as ingest and triangulation write them; memory holds
    one chunk plus the next frame's rows.
    """
    carry, last = None, None
    for batch in iter_batches(path, "faces3d", chunk_faces, columns=columns):
        frames = batch.column("frame").to_numpy()
        if len(frames) == 0:
            continue
        if np.any(np.diff(frames) < 0) or (last is not None and frames[0] < last):
            raise ValueError(f"{path}: rows are not sorted by frame (the label stage needs every "
                             f"person of a frame together)")
        last = frames[-1]
        table = pa.Table.from_batches([batch])
        table = table if carry is None else pa.concat_tables([carry, table])
        all_frames = table.column("frame").to_numpy()
        cut = int(np.searchsorted(all_frames, all_frames[-1], side="left"))  # last frame may go on
        if cut:
            yield table.slice(0, cut)
        carry = table.slice(cut)
    if carry is not None and carry.num_rows:
        yield carry


def listed_cameras(visibility: pa.ChunkedArray | pa.Array, camera_index: np.ndarray) -> np.ndarray:
    """(M, C, 70) bool: face m's list for landmark l names the camera at rig position c.

    visibility: the faces3d ``visibility`` column (M rows of 70 lists of camera_index
    values); camera_index: (C,) the camera_index of each rig camera. Indices of cameras not
    in the rig (not ingested) are ignored.
    """
    col = visibility.combine_chunks() if isinstance(visibility, pa.ChunkedArray) else visibility
    M, C = len(col), len(camera_index)
    lists = col.flatten()                                         # one list per (face, landmark)
    face_of_list = pc.list_parent_indices(col).to_numpy()
    starts = np.concatenate([[0], np.cumsum(pc.list_value_length(col).to_numpy())[:-1]])
    landmark_of_list = np.arange(len(lists)) - starts[face_of_list]
    cameras = lists.flatten().to_numpy().astype(np.int64)
    owner = pc.list_parent_indices(lists).to_numpy()
    position = np.full(max(int(camera_index.max(initial=0)), int(cameras.max(initial=0))) + 1, -1, np.int64)
    position[np.asarray(camera_index, np.int64)] = np.arange(C)
    pos = position[cameras]
    keep = (pos >= 0) & (landmark_of_list[owner] < 70)
    listed = np.zeros((M, C, 70), dtype=bool)
    listed[face_of_list[owner][keep], pos[keep], landmark_of_list[owner][keep]] = True
    return listed


def _count(summary: LabelSummary, fits: HeadFits, cols: dict, code_mcl: np.ndarray, listed: np.ndarray) -> None:
    """Add one chunk to the summary; code_mcl (M, C, 70), listed (M, C, 70)."""
    summary.faces += len(fits.ok)
    summary.fits_ok += int(fits.ok.sum())
    summary.fit_status.update(fits.status.tolist())
    summary.labels += len(cols["valid"])
    summary.labels_valid += int(cols["valid"].sum())
    summary.reject_reasons.update(cols["reject_reason"].tolist())
    summary.landmark_codes.update({int(k): int(n) for k, n in zip(*np.unique(code_mcl, return_counts=True))})
    summary.views_face_visible += int(cols["face_visible"].sum())
    compared = fits.ok & listed.any(axis=(1, 2))
    if summary.visibility and compared.any():
        summary.face70.add(code_mcl[compared], listed[compared])


def learn_sequence_subjects(faces3d_path: str | Path, model: HeadModel, fit_config: FitConfig,
                            config: SubjectConfig = SubjectConfig(), chunk_faces: int = 4096) -> SubjectModels:
    """First pass of the label stage: learn subject shapes and rigidity weights from the
    faces (at most ``config.max_faces`` per subject, evenly spaced; ``learn_subjects``)."""
    persons = read_table(faces3d_path, "faces3d", columns=["person"]).column("person").to_numpy()
    keep = np.zeros(len(persons), bool)
    for p in np.unique(persons):
        rows = np.flatnonzero(persons == p)
        keep[rows[subsample_indices(len(rows), config.max_faces)]] = True
    landmarks, scores, ids, start = [], [], [], 0
    for batch in iter_batches(faces3d_path, "faces3d", chunk_faces, columns=["person", "landmarks_world", "score"]):
        sel = keep[start:start + batch.num_rows]
        start += batch.num_rows
        if sel.any():
            landmarks.append(fixed_list_to_numpy(batch.column("landmarks_world"), (70, 3))[sel])
            scores.append(fixed_list_to_numpy(batch.column("score"), (70,))[sel])
            ids.append(batch.column("person").to_numpy()[sel])
    if not landmarks:
        raise ValueError(f"{faces3d_path}: no faces to learn subject shapes from")
    return learn_subjects(model, np.concatenate(landmarks).astype(np.float64),
                          np.concatenate(scores).astype(np.float64), np.concatenate(ids), fit_config, config)


def label_sequence(faces3d_path: str | Path, cameras_path: str | Path, model: HeadModel,
                   out_dir: str | Path, fit_config: FitConfig = FitConfig(),
                   view_config: ViewConfig = ViewConfig(), chunk_faces: int = 200,
                   progress: bool | None = None, nthreads: int = 1,
                   subject_config: SubjectConfig = SubjectConfig(),
                   smoothing: SmoothingConfig = SmoothingConfig()) -> LabelSummary:
    """Write ``out_dir/head_fits.parquet``, ``out_dir/labels.parquet`` and
    ``out_dir/subjects.json`` (subject rest faces, modes and weights) for one sequence.

    Three passes over the faces: learn the subjects (a sample of faces), fit every face and
    smooth along the tracks (the fits of a whole sequence are held in memory, about 1.3 kB
    a face), then label every camera in chunks of whole frames.
    nthreads: open3d threads for the visibility casts (1: Snakemake runs jobs side by side).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    subjects = learn_sequence_subjects(faces3d_path, model, fit_config, subject_config) \
        if subject_config.enabled else None
    sequence_fits = fit_sequence(faces3d_path, model, fit_config, subjects, smoothing)
    rig = load_cameras(cameras_path)
    cams = read_table(cameras_path, "cameras", columns=["camera", "camera_index"]).to_pydict()
    index_of = dict(zip(cams["camera"], cams["camera_index"]))
    camera_index = np.array([index_of[n] for n in rig.names], dtype=np.int16)
    caster = model_caster(model, nthreads) if view_config.visibility else None
    total = pq.ParquetFile(faces3d_path).metadata.num_rows
    summary = LabelSummary(visibility=view_config.visibility)
    with StreamingTableWriter(out_dir / LABEL_FILES["head_fits"], "head_fits") as fits_out, \
            StreamingTableWriter(out_dir / LABEL_FILES["labels"], "labels") as labels_out, \
            tqdm(total=total, unit="face", desc="label", disable=None if progress is None else not progress) as bar:
        done = 0
        for batch in iter_frame_chunks(faces3d_path, chunk_faces, FACE_COLUMNS):
            landmarks = fixed_list_to_numpy(batch.column("landmarks_world"), (70, 3)).astype(np.float64)
            rows = slice(done, done + batch.num_rows)
            done += batch.num_rows
            fits = sequence_fits.fits.take(rows)
            helmet, views = view_labels(model, rig, fits, view_config)
            shapes = None if subjects is None else subjects.shapes_for(batch.column("person").to_numpy())
            marks = landmark_labels(model, rig, fits, batch.column("frame").to_numpy(), landmarks, caster, shapes)
            fits_out.write(_fit_columns(batch, fits, sequence_fits.R_world_head_raw[rows],
                                        sequence_fits.smoothed[rows], sequence_fits.variance_ratio[rows]))
            cols = _label_columns(batch, rig, camera_index, fits, helmet, views, marks)
            labels_out.write(cols)
            _count(summary, fits, cols, np.swapaxes(marks.visibility.code, 0, 1),
                   listed_cameras(batch.column("visibility"), camera_index))
            bar.update(batch.num_rows)
    write_text_atomic(out_dir / LABEL_FILES["subjects"],
                      json.dumps(subjects.to_json() if subjects is not None else {"subjects": []}, indent=1))
    summary.seconds = time.perf_counter() - start
    return summary
