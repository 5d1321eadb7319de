"""Variants of the real test frames (tests/data/haggling_demo), each with its calibration to
match: cameras on their side or upside down (JPEGs stored turned), the frames at a lower or
higher resolution, and cameras started at different times (images renumbered). Used by
tests/test_no_bodies.py, tests/test_frame_offsets.py and benchmarks (bench_image_rotation,
bench_face_scale)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
SEQUENCE = "haggling_demo"
# Degrees clockwise each camera's images are stored turned by (the turn that makes them
# upright is the rest of a full turn).
STORED_TURNS = {"00_06": 180, "00_12": 90, "00_23": 270}


def turned_camera(camera: dict, degrees_cw: int) -> dict:
    """A Panoptic calibration entry for the camera's images turned clockwise by degrees_cw:
    each quarter turn maps pixel (u, v) to (H-1-v, u), i.e. camera axes x' = -y, y' = x, with
    fx, fy and cx, cy swapped (cx' = H-1-cy) and the tangential terms p1' = p2, p2' = -p1."""
    K, R = np.asarray(camera["K"], float), np.asarray(camera["R"], float)
    t, dist = np.asarray(camera["t"], float).reshape(3), np.asarray(camera["distCoef"], float)
    (w, h) = camera["resolution"]
    quarter = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for _ in range(degrees_cw // 90):
        K = np.array([[K[1, 1], 0.0, h - 1 - K[1, 2]], [0.0, K[0, 0], K[0, 2]], [0.0, 0.0, 1.0]])
        R, t = quarter @ R, quarter @ t
        dist = np.array([dist[0], dist[1], dist[3], -dist[2], dist[4]])
        w, h = h, w
    return {**camera, "K": K.tolist(), "R": R.tolist(), "t": t.reshape(3, 1).tolist(), "distCoef": dist.tolist(),
            "resolution": [w, h]}


def write_turned_sequence(root: Path, turns: dict = STORED_TURNS, quality: int = 100) -> Path:
    """``root/haggling_demo``: the test frames with the cameras of ``turns`` stored turned
    (JPEGs re-encoded at ``quality``, the others too, so every camera is encoded alike) and
    the calibration to match. Returns the sequence folder."""
    import cv2

    from annotate.geometry.image_turns import turn_image

    seq = Path(root) / SEQUENCE
    doc = json.loads((DATA / SEQUENCE / f"calibration_{SEQUENCE}.json").read_text())
    doc["cameras"] = [turned_camera(c, turns[c["name"]]) if c["name"] in turns else c for c in doc["cameras"]]
    seq.mkdir(parents=True)
    (seq / f"calibration_{SEQUENCE}.json").write_text(json.dumps(doc))
    for folder in sorted((DATA / SEQUENCE / "hdImgs").iterdir()):
        (seq / "hdImgs" / folder.name).mkdir(parents=True)
        for jpg in sorted(folder.glob("*.jpg")):
            image = cv2.imread(str(jpg))
            if folder.name in turns:
                image = turn_image(image, turns[folder.name])
            cv2.imwrite(str(seq / "hdImgs" / folder.name / jpg.name), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return seq


def scaled_camera(camera: dict, scale: float) -> dict:
    """A Panoptic calibration entry for the camera's images resized by ``scale``: focal
    lengths scaled, and the principal point where pixel centres (OpenCV's (u, v) = (col,
    row)) put it, c' = (c + 0.5) scale - 0.5."""
    K = np.asarray(camera["K"], float).copy()
    K[:2, :2] *= scale
    K[:2, 2] = (K[:2, 2] + 0.5) * scale - 0.5
    w, h = camera["resolution"]
    return {**camera, "K": K.tolist(), "resolution": [round(w * scale), round(h * scale)]}


def write_scaled_sequence(root: Path, scale: float, quality: int = 95) -> Path:
    """``root/haggling_demo``: the test frames resized by ``scale`` (area averaging down,
    bicubic up; JPEG ``quality``; at scale 1 the original files, since re-encoding alone
    moves the landmarks) and the calibration to match. Returns the sequence folder."""
    import cv2

    seq = Path(root) / SEQUENCE
    doc = json.loads((DATA / SEQUENCE / f"calibration_{SEQUENCE}.json").read_text())
    doc["cameras"] = [scaled_camera(c, scale) for c in doc["cameras"]]
    seq.mkdir(parents=True)
    (seq / f"calibration_{SEQUENCE}.json").write_text(json.dumps(doc))
    for folder in sorted((DATA / SEQUENCE / "hdImgs").iterdir()):
        (seq / "hdImgs" / folder.name).mkdir(parents=True)
        for jpg in sorted(folder.glob("*.jpg")):
            target = seq / "hdImgs" / folder.name / jpg.name
            if scale == 1:
                target.write_bytes(jpg.read_bytes())
                continue
            image = cv2.imread(str(jpg))
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            cv2.imwrite(str(target), resized, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return seq


def write_video_sequence(root: Path, display_rotation_ccw: dict, crf: int = 12) -> Path:
    """``root/haggling_demo`` with each camera's two test frames as a 2-frame video
    ``hdVideos/hd_<camera>.mp4`` (frames 0 and 1: the JPEGs of frames 4500 and 9348) and the
    calibration as it is. The cameras of ``display_rotation_ccw`` get a display matrix
    rotating their pictures counter-clockwise by that many degrees, as phones tag portrait
    video, and their pictures are stored turned the other way, so that shown they are the
    original frames. Returns the sequence folder."""
    import shutil

    import av

    from annotate.geometry.image_turns import turn_image
    from annotate.media.jpeg import decode_jpeg_rgb

    seq = Path(root) / SEQUENCE
    (seq / "hdVideos").mkdir(parents=True)
    shutil.copy(DATA / SEQUENCE / f"calibration_{SEQUENCE}.json", seq)
    for folder in sorted((DATA / SEQUENCE / "hdImgs").iterdir()):
        shown_cw = -display_rotation_ccw.get(folder.name, 0) % 360         # what a player turns them by
        stored = [turn_image(decode_jpeg_rgb(p.read_bytes()), (360 - shown_cw) % 360)
                  for p in sorted(folder.glob("*.jpg"))]
        with av.open(str(seq / "hdVideos" / f"hd_{folder.name}.mp4"), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=30, options={"crf": str(crf), "preset": "ultrafast"})
            stream.height, stream.width = stored[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            if folder.name in display_rotation_ccw:
                stream.set_display_rotation(display_rotation_ccw[folder.name])
            for k, picture in enumerate(stored):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = k
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return seq


def nearest_faces(reference_landmarks: np.ndarray, other_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each reference face (R, 70, 3), the face of ``other`` (O, 70, 3) nearest to it:
    (R,) its index and (R,) the median distance over their common landmarks, cm (the same
    person, when a variant of the frames gives the same people)."""
    with np.errstate(invalid="ignore"):
        distance = np.linalg.norm(np.asarray(other_landmarks)[None] - np.asarray(reference_landmarks)[:, None], axis=-1)
    median = np.nanmedian(distance, axis=-1)                                           # (R, O)
    index = np.argmin(median, axis=1)
    return index, median[np.arange(len(median)), index]


def write_renumbered_sequence(root: Path, shifts: dict[str, int]) -> Path:
    """The test frames with camera c's images renumbered picture = frame + shifts[c] (the
    same bytes, the same calibration), as a rig whose cameras were started at different
    times: ``ingest.frame_offsets`` = shifts puts them back in step."""
    source = DATA / SEQUENCE
    seq = root / SEQUENCE
    shutil.copytree(source, seq, ignore=shutil.ignore_patterns("hdImgs"))
    for cam_dir in sorted((source / "hdImgs").iterdir()):
        out = seq / "hdImgs" / cam_dir.name
        out.mkdir(parents=True)
        for image in sorted(cam_dir.glob("*.jpg")):
            frame = int(image.stem.rsplit("_", 1)[1])
            shutil.copyfile(image, out / f"{cam_dir.name}_{frame + shifts.get(cam_dir.name, 0):08d}.jpg")
    return seq
