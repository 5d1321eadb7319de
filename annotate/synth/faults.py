"""Fault injection for the audit benchmark: known label errors planted in copies of a sequence.

The benchmark copies a (synthetic) Panoptic sequence once per fault (``copy_sequence``),
plants one fault in the copy, runs the pipeline and the audit on it, and scores the audit
against the returned ``FaultManifest``: recall = faulty label rows flagged, false-positive
rate = clean label rows flagged (``FaultManifest.label_mask`` gives the faulty rows).

The faults (one function each; every one modifies the copy in place and never the source):

- ``rotate_camera``: one HD camera's extrinsics turned by a few degrees about the camera's
  own x (tilt), y (pan) or z (roll) axis, the camera centre kept (a bumped camera).
  Faulty: every label of that camera.
- ``mirror_landmarks``: left and right landmark labels swapped (the face70 mirror
  permutation, ``annotate.head.face70``) in chosen faces. Faulty: those faces, all cameras.
- ``swap_person_ids``: two people's face ids exchanged from a frame on (hdFace3d only; the
  body skeletons keep their ids, so faces and bodies disagree from then on).
  Faulty: both people's faces from that frame on, all cameras.
- ``garbage_landmarks``: chosen faces' landmarks replaced by uniform random points in a
  cube around the face's centroid. Faulty: those faces, all cameras.
- ``shift_video``: one camera's video re-encoded so that frame k shows the original frame
  k + s (a camera out of sync). Faulty: every label of that camera (what the crops show).

File access goes only through the Panoptic readers and writers (``annotate.panoptic``) and
the video reader/writer (``annotate.media``). JSON edits work on the parsed document, so
every value not targeted by the fault is written back unchanged (same numbers, same keys,
other camera types and people included). Every write is atomic (a temporary file, then a
rename), which also means a hard-linked file in a copy is replaced, never written through.

``choose_fault_targets`` picks the targets deterministically from a seed and the sequence;
``inject_standard_faults`` makes the benchmark's set of faulty copies in one call.
"""
from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.core.atomic import staged_folder
from annotate.head.face70 import FLIP_PERMUTATION_70
from annotate.geometry.rotations import rot_x, rot_y, rot_z
from annotate.panoptic.calibration import read_calibration_info
from annotate.panoptic.faces import N_LANDMARKS, FacePerson, parse_face_document
from annotate.panoptic.layout import (
    FACE_FILE,
    SequenceLayout,
    list_frames,
    read_json,
    write_panoptic_json,
)

SAMPLE_COLUMNS = ("frame", "person", "camera")
# Camera-frame axis of each rotation kind (docs/conventions.md: x right, y down, z forward).
ROTATION_AXES = {"tilt": rot_x, "pan": rot_y, "roll": rot_z}
GROUND_TRUTH_JSON = "ground_truth.json"    # annotate.synth.generate writes it (no import: light)


# ------------------------------------------------------------------------------ manifest

def fault_samples(frames=None, persons=None, cameras=None) -> pd.DataFrame:
    """The ``FaultManifest.samples`` table from equal-length columns (None = all wildcards).

    frame, person: pandas nullable Int64 (NA = every frame / person); camera: object
    (camera name, or None = every camera).
    """
    n = max(len(c) for c in (frames, persons, cameras) if c is not None) if any(
        c is not None for c in (frames, persons, cameras)) else 1

    def fill(column):
        return [None] * n if column is None else list(column)

    return pd.DataFrame({"frame": pd.array(fill(frames), dtype="Int64"),
                         "person": pd.array(fill(persons), dtype="Int64"),
                         "camera": pd.Series(fill(cameras), dtype=object)})


@dataclass(frozen=True)
class FaultManifest:
    """What a fault changed: its name, its parameters, and the faulty sample keys.

    fault: e.g. ``"rotate_camera"``. parameters: JSON-ready dict of the call's arguments
    (and the sequence name). samples: DataFrame with columns frame (Int64), person (Int64),
    camera (object); a missing value is a wildcard: camera None means every camera of that
    (frame, person), and a camera fault lists one row (frame NA, person NA, camera name) =
    every label of that camera.
    """

    fault: str
    parameters: dict
    samples: pd.DataFrame = field(default_factory=fault_samples)

    def label_mask(self, labels: pd.DataFrame) -> np.ndarray:
        """(N,) bool over the rows of ``labels`` (columns frame, person, camera): faulty rows.

        A label row is faulty when some sample row matches it on every column that the
        sample row does not leave as a wildcard.
        """
        out = np.zeros(len(labels), dtype=bool)
        if self.samples.empty or out.size == 0:
            return out
        values = {"frame": labels["frame"].to_numpy(np.int64),
                  "person": labels["person"].to_numpy(np.int64),
                  "camera": labels["camera"].astype(str).to_numpy(object)}
        wild = self.samples[list(SAMPLE_COLUMNS)].isna()
        for pattern, rows in self.samples.groupby([wild[c] for c in SAMPLE_COLUMNS], sort=False):
            keys = [c for c, is_wild in zip(SAMPLE_COLUMNS, pattern) if not is_wild]
            if not keys:
                return np.ones(len(labels), dtype=bool)
            wanted = pd.MultiIndex.from_arrays(
                [rows[c].astype(str if c == "camera" else np.int64).to_numpy() for c in keys])
            have = pd.MultiIndex.from_arrays([values[c] for c in keys])
            out |= have.isin(wanted)
        return out

    def to_dict(self) -> dict:
        """JSON-ready form: fault, parameters, samples as records (wildcards as null)."""
        records = [{c: (None if pd.isna(v) else (str(v) if c == "camera" else int(v)))
                    for c, v in row.items()} for row in self.samples.to_dict("records")]
        return {"fault": self.fault, "parameters": self.parameters, "samples": records}


# ------------------------------------------------------------------------------- copying

def _layout(seq_dir: str | os.PathLike) -> SequenceLayout:
    seq_dir = Path(seq_dir)
    return SequenceLayout(seq_dir.parent, seq_dir.name)


def copy_sequence(src_dir: str | os.PathLike, dst_dir: str | os.PathLike, sequence_name: str,
                  link: bool = True) -> Path:
    """Copy the sequence folder ``src_dir`` to ``<dst_dir>/<sequence_name>/``; return it.

    dst_dir is the destination ROOT (Panoptic folders are named after their sequence). The
    calibration file is renamed ``calibration_<sequence_name>.json`` (the only name that
    embeds the sequence, ``annotate.panoptic.layout``) and ``ground_truth.json``'s
    ``sequence`` is set to the new name. JSON files are copied byte for byte; every other
    file (videos, ``hdImgs`` JPEGs, ``ground_truth.npz``) is HARD-LINKED when ``link``
    (falling back to a copy across file systems). That is safe because every fault writes
    a new file and renames it over the link, never writing through it. Hidden entries
    (temporary files) are skipped. Built in a hidden staging folder and renamed into place;
    an existing destination is an error.
    """
    src = _layout(src_dir)
    dst = SequenceLayout(dst_dir, sequence_name)
    if not src.calibration.is_file():
        raise FileNotFoundError(f"{src.directory}: no {src.calibration.name}; not a Panoptic sequence folder")
    if dst.directory.exists():
        raise FileExistsError(f"{dst.directory} exists; copy_sequence does not overwrite")
    if dst.directory.resolve() == src.directory.resolve():
        raise ValueError("copy_sequence: source and destination are the same folder")
    with staged_folder(dst.directory) as staging:
        for path in sorted(src.directory.rglob("*")):
            rel = path.relative_to(src.directory)
            if any(part.startswith(".") for part in rel.parts) or path.is_dir():
                continue
            if rel == Path(src.calibration.name):
                rel = Path(dst.calibration.name)
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if link and path.suffix != ".json":
                try:
                    os.link(path, target)
                    continue
                except OSError:
                    pass
            shutil.copy2(path, target)
        truth = staging / GROUND_TRUTH_JSON
        if truth.is_file():
            doc = read_json(truth)
            if isinstance(doc, dict) and "sequence" in doc:
                doc["sequence"] = sequence_name
                write_panoptic_json(truth, doc)
    return dst.directory


# --------------------------------------------------------------------------- calibration

def rotate_camera(seq_dir: str | os.PathLike, camera: str, degrees: float,
                  axis: str = "pan") -> FaultManifest:
    """Turn HD camera ``camera``'s extrinsics by ``degrees`` about its own axis, in place.

    axis: ``"pan"`` (camera y), ``"tilt"`` (camera x) or ``"roll"`` (camera z). With
    ``D`` the right-handed rotation by ``degrees`` about that camera axis:
    ``R' = D @ R`` and ``t' = D @ t``, so the camera centre ``-R^T t`` stays where it was and
    ``geodesic(R, R') == degrees``. Only that camera's ``R`` and ``t`` change in the file
    (``t`` keeps its nested shape); everything else is written back as read.
    Faulty samples: every label of that camera.
    """
    if axis not in ROTATION_AXES:
        raise ValueError(f"axis must be one of {sorted(ROTATION_AXES)}, got {axis!r}")
    layout = _layout(seq_dir)
    read_calibration_info(layout.calibration, "hd", [camera])          # validates; names the file
    doc = read_json(layout.calibration)
    entry = next(c for c in doc["cameras"] if c.get("type") == "hd" and c.get("name") == camera)
    D = ROTATION_AXES[axis](np.radians(float(degrees)))
    R = np.asarray(entry["R"], dtype=np.float64)
    t = np.asarray(entry["t"], dtype=np.float64)
    entry["R"] = (D @ R).tolist()
    entry["t"] = (D @ t.reshape(3)).reshape(t.shape).tolist()
    write_panoptic_json(layout.calibration, doc)
    return FaultManifest("rotate_camera",
                         {"sequence": layout.sequence, "camera": camera, "degrees": float(degrees),
                          "axis": axis},
                         fault_samples(cameras=[camera]))


# ---------------------------------------------------------------------------------- faces

def face_presence(seq_dir: str | os.PathLike) -> dict[int, tuple[int, ...]]:
    """frame number -> ids of the faces accepted by the reader in that hdFace3d file."""
    layout = _layout(seq_dir)
    out = {}
    for frame in list_frames(layout.face_dir, FACE_FILE).frames:
        path = layout.face_file(int(frame))
        parsed = parse_face_document(read_json(path), str(path), int(frame))
        out[int(frame)] = tuple(sorted(p.id for p in parsed.people))
    return out


def _edit_faces(layout: SequenceLayout, frames: Iterable[int],
                edit: Callable[[dict, FacePerson], int | None]) -> list[tuple[int, int]]:
    """Apply ``edit(entry, person)`` to the accepted people of the given frames' face files.

    entry: the person's dict in the parsed document (edited in place); person: the reader's
    validated view of it. ``edit`` returns the person id the changed face now carries, or
    None when it left the entry alone. A file is rewritten only when something changed.
    Returns (frame, id) of the changed faces.
    """
    changed = []
    for frame in sorted({int(f) for f in frames}):
        path = layout.face_file(frame)
        if not path.is_file():
            continue
        doc = read_json(path)
        parsed = parse_face_document(doc, str(path), frame)
        accepted = {p.id: p for p in parsed.people}
        hits = []
        for entry in doc.get("people", []):
            pid = entry.get("id") if isinstance(entry, dict) else None
            if type(pid) is int and pid in accepted:
                new_id = edit(entry, accepted[pid])
                if new_id is not None:
                    hits.append((frame, int(new_id)))
        if hits:
            write_panoptic_json(path, doc)
            changed.extend(hits)
    return changed


def _face_manifest(fault: str, parameters: dict, changed: list[tuple[int, int]]) -> FaultManifest:
    if not changed:
        raise ValueError(f"{fault}: no face matched {parameters}; nothing was changed")
    frames, persons = zip(*sorted(changed))
    return FaultManifest(fault, parameters, fault_samples(frames, persons))


def _targets(frames: Iterable[int], persons: Iterable[int] | None) -> tuple[list[int], list[int] | None]:
    frames = sorted({int(f) for f in frames})
    return frames, (None if persons is None else sorted({int(p) for p in persons}))


def mirror_landmarks(seq_dir: str | os.PathLike, frames: Iterable[int],
                     persons: Iterable[int] | None = None) -> FaultManifest:
    """Swap left and right landmark labels of the chosen faces in ``hdFace3d``, in place.

    Every listed person in every listed frame (the Cartesian product; persons None = all)
    whose face is in the file: landmark i becomes the old landmark ``FLIP_PERMUTATION_70[i]``,
    with its score, reprojection error and visibility list (the labels swap, the points
    stay: the face looks like its own mirror image). Faces absent from a frame are skipped;
    it is an error when none matched. Faulty: those faces, all cameras.
    """
    frames, persons = _targets(frames, persons)
    perm = FLIP_PERMUTATION_70

    def edit(entry: dict, person: FacePerson) -> int | None:
        if persons is not None and person.id not in persons:
            return None
        face = entry["face70"]
        face["landmarks"] = np.asarray(face["landmarks"]).reshape(N_LANDMARKS, 3)[perm].reshape(-1).tolist()
        for key in ("averageScore", "averageReproError"):
            face[key] = [face[key][i] for i in perm]
        face["visibility"] = [face["visibility"][i] for i in perm]
        return person.id

    layout = _layout(seq_dir)
    return _face_manifest("mirror_landmarks", {"sequence": layout.sequence, "frames": frames,
                                               "persons": persons},
                          _edit_faces(layout, frames, edit))


def swap_person_ids(seq_dir: str | os.PathLike, person_a: int, person_b: int,
                    from_frame: int) -> FaultManifest:
    """Exchange ids ``person_a`` and ``person_b`` in every hdFace3d file from ``from_frame`` on.

    Faces only: the body skeletons (hdPose3d) keep their ids, so from ``from_frame`` the
    face called a sits on body b and vice versa. A frame holding only one of the two faces
    gives it the other id. Faulty: the swapped faces under their NEW ids (the label rows they
    produce), all cameras.
    """
    a, b = int(person_a), int(person_b)
    if a == b:
        raise ValueError(f"swap_person_ids needs two different ids, got {a} twice")
    layout = _layout(seq_dir)
    frames = [f for f in list_frames(layout.face_dir, FACE_FILE).frames if f >= int(from_frame)]

    def edit(entry: dict, person: FacePerson) -> int | None:
        if person.id not in (a, b):
            return None
        entry["id"] = b if person.id == a else a
        return entry["id"]

    return _face_manifest("swap_person_ids", {"sequence": layout.sequence, "person_a": a,
                                              "person_b": b, "from_frame": int(from_frame)},
                          _edit_faces(layout, frames, edit))


def garbage_landmarks(seq_dir: str | os.PathLike, frames: Iterable[int], persons: Iterable[int] | None,
                      rng: np.random.Generator | int, cube_cm: float = 20.0) -> FaultManifest:
    """Replace the chosen faces' landmarks by random points, in place.

    Faces chosen as in ``mirror_landmarks``. Each reconstructed landmark is redrawn
    uniformly in a ``cube_cm`` cube centred on the centroid of the face's reconstructed
    landmarks; landmarks the file marks as not reconstructed stay so, and scores,
    reprojection errors and visibility are kept (a confident but wrong reconstruction).
    rng: a Generator or a seed; faces are drawn in (frame, file order). Faulty: those faces.
    """
    frames, persons = _targets(frames, persons)
    rng = np.random.default_rng(rng)

    def edit(entry: dict, person: FacePerson) -> int | None:
        if persons is not None and person.id not in persons:
            return None
        ok = np.all(np.isfinite(person.landmarks), axis=1)
        if not ok.any():
            return None
        centre = person.landmarks[ok].mean(axis=0)
        points = np.zeros((N_LANDMARKS, 3))
        points[ok] = centre + rng.uniform(-0.5 * cube_cm, 0.5 * cube_cm, (int(ok.sum()), 3))
        # Not reconstructed stays as Panoptic writes it: (0, 0, 0) with score 0.
        original = np.asarray(entry["face70"]["landmarks"], dtype=np.float64).reshape(N_LANDMARKS, 3)
        points[~ok] = original[~ok]
        entry["face70"]["landmarks"] = points.reshape(-1).tolist()
        return person.id

    layout = _layout(seq_dir)
    return _face_manifest("garbage_landmarks", {"sequence": layout.sequence, "frames": frames,
                                                "persons": persons, "cube_cm": float(cube_cm)},
                          _edit_faces(layout, frames, edit))


# ---------------------------------------------------------------------------------- video

def shift_video(seq_dir: str | os.PathLike, camera: str, frames: int, crf: int = 18,
                preset: str = "ultrafast") -> FaultManifest:
    """Re-encode ``camera``'s video so that its frame k shows what was frame k + ``frames``.

    frames > 0: the first ``frames`` pictures are dropped and the last one is repeated to
    keep the length (the video runs ahead); frames < 0: the first picture is repeated and
    the last ones dropped (it lags). Decoded with ``annotate.media.video``, encoded with
    ``annotate.media.video_writer`` (H.264, same size and rate, ``crf``/``preset`` as the
    synthetic renderer's defaults: a lossy second generation). The new file is written
    beside the old and renamed over it: a hard-linked source is never touched.
    Faulty: every label of that camera.
    """
    from annotate.media.video import iter_video_frames
    from annotate.media.video_writer import rewrite_video

    shift = int(frames)
    if shift == 0:
        raise ValueError("shift_video: a shift of 0 frames changes nothing")
    layout = _layout(seq_dir)
    path = layout.video_file(camera)
    with rewrite_video(path, crf, preset) as writer:
        count, last, held = 0, None, deque()
        for decoded in iter_video_frames(path):
            rgb = decoded.rgb()
            if shift > 0:
                if count >= shift:
                    writer.write(rgb)
            else:
                if count == 0:
                    for _ in range(-shift):
                        writer.write(rgb)
                held.append(rgb)                    # the last -shift pictures are dropped
                if len(held) > -shift:
                    writer.write(held.popleft())
            count, last = count + 1, rgb
        if count <= abs(shift):
            raise ValueError(f"{path}: {count} frames, cannot shift by {shift}")
        for _ in range(max(shift, 0)):
            writer.write(last)
    return FaultManifest("shift_video", {"sequence": layout.sequence, "camera": camera,
                                         "frames": shift, "frame_count": count},
                         fault_samples(cameras=[camera]))


# -------------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class FaultTargets:
    """Where the benchmark's faults go in one sequence (all ids and frame numbers).

    camera: the camera rotated / shifted (from the middle third of the sorted HD cameras);
    face_person / mirror_frames / garbage_frames: the person whose faces are mirrored or
    replaced, and the frames (spread over the frames where that person's face exists, one
    per stratum); swap_persons / swap_from: two people whose faces both exist from
    ``swap_from`` on, and that frame (in the middle third of the sequence); video_shift:
    frames of shift; has_video: whether the camera's video exists.
    """

    camera: str
    face_person: int
    mirror_frames: tuple[int, ...]
    garbage_frames: tuple[int, ...]
    swap_persons: tuple[int, int]
    swap_from: int
    video_shift: int
    has_video: bool


def _spread(frames: Sequence[int], n: int, rng: np.random.Generator) -> tuple[int, ...]:
    """n frames, one drawn from each of n equal consecutive strata of ``frames``."""
    frames = np.asarray(sorted(frames))
    n = min(n, len(frames))
    edges = np.linspace(0, len(frames), n + 1).astype(int)
    return tuple(int(frames[rng.integers(lo, hi)]) for lo, hi in pairwise(edges))


def choose_fault_targets(seq_dir: str | os.PathLike, seed: int = 0, n_frames: int | None = None,
                         video_shift: int = 3) -> FaultTargets:
    """Pick the targets of the standard faults deterministically from ``seed`` and the sequence.

    n_frames: faces mirrored / replaced (default a tenth of the frames, at least 2).
    Needs at least two people whose faces share a frame and one HD camera.
    """
    rng = np.random.default_rng(seed)
    layout = _layout(seq_dir)
    cameras = read_calibration_info(layout.calibration, "hd").rig.names
    third = len(cameras) // 3
    camera = cameras[third + int(rng.integers(0, max(1, len(cameras) - 2 * third)))]
    presence = face_presence(seq_dir)
    all_frames = sorted(presence)
    if not all_frames:
        raise ValueError(f"{layout.face_dir}: no face files")
    n = max(2, len(all_frames) // 10) if n_frames is None else int(n_frames)
    people = sorted({p for ids in presence.values() for p in ids})
    count = {p: sum(p in ids for ids in presence.values()) for p in people}
    person = int(rng.choice([p for p in people if count[p] == max(count.values())]))
    mine = [f for f in all_frames if person in presence[f]]
    mirror = _spread(mine, n, rng)
    garbage = _spread(mine, n, rng)
    # swap: the middle third of the frames, then the pair together most often from there on
    lo, hi = len(all_frames) // 3, max(len(all_frames) // 3 + 1, 2 * len(all_frames) // 3)
    swap_from = all_frames[int(rng.integers(lo, hi))]
    later = [presence[f] for f in all_frames if f >= swap_from]
    pairs = [(a, b) for i, a in enumerate(people) for b in people[i + 1:]]
    together = {pr: sum(pr[0] in ids and pr[1] in ids for ids in later) for pr in pairs}
    best = [pr for pr in pairs if together[pr] == max(together.values(), default=0) and together[pr] > 0]
    if not best:
        raise ValueError(f"{layout.directory}: no two people share a frame from {swap_from} on")
    swap = best[int(rng.integers(0, len(best)))]
    return FaultTargets(camera, person, mirror, garbage, (int(swap[0]), int(swap[1])), int(swap_from),
                        int(video_shift), layout.video_file(camera).is_file())


def inject_standard_faults(src_dir: str | os.PathLike, dst_root: str | os.PathLike, seed: int = 0,
                           degrees: Sequence[float] = (1.0, 3.0),
                           targets: FaultTargets | None = None) -> dict[str, tuple[Path, FaultManifest]]:
    """One faulty copy of ``src_dir`` per standard fault, under ``dst_root``.

    Returns fault key -> (sequence folder, manifest); keys ``rotate_<d>deg`` per entry of
    ``degrees``, ``mirror``, ``swap_ids``, ``garbage`` and, when the camera has a video,
    ``shift_video``. Copies are named ``<source sequence>__<key>``.
    """
    src = Path(src_dir)
    t = choose_fault_targets(src, seed) if targets is None else targets
    plan: dict[str, Callable[[Path], FaultManifest]] = {}
    for d in degrees:
        plan[f"rotate_{d:g}deg"] = lambda seq, d=d: rotate_camera(seq, t.camera, d)
    plan["mirror"] = lambda seq: mirror_landmarks(seq, t.mirror_frames, [t.face_person])
    plan["swap_ids"] = lambda seq: swap_person_ids(seq, *t.swap_persons, t.swap_from)
    plan["garbage"] = lambda seq: garbage_landmarks(seq, t.garbage_frames, [t.face_person], seed)
    if t.has_video:
        plan["shift_video"] = lambda seq: shift_video(seq, t.camera, t.video_shift)
    out = {}
    for key, inject in plan.items():
        seq = copy_sequence(src, dst_root, f"{src.name}__{key}".replace(".", "p"))
        out[key] = (seq, inject(seq))
    return out
