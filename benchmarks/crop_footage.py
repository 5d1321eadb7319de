"""Long camera-like footage with labels, for benchmarks/bench_crops.py.

A labelled synthetic sequence has 60 frames of 31 flat-shaded cameras; the crop stage's
speed on real recordings depends on minutes of textured HD video per camera. This builds
``<root>/<sequence>/`` with:

- ``hdVideos/hd_00_XX.mp4`` for the ``cameras`` cameras with the most valid labels:
  1920x1080 (the calibration's size) ``annotate.synth.footage.TexturedScene`` footage (a
  textured room, each person a textured body and head at their labelled head box, luma
  sensor noise), libx264 with FFmpeg's defaults (preset medium, CRF 23: High profile,
  CABAC, B-frames) and a key frame at least every ``keyint`` frames;
- ``labels.parquet``: the source labels of those cameras, played forward and back
  (frames 0..59, 58..1, 0.. ...) so that heads move smoothly for as long as asked, each
  row renumbered to the frame it is drawn in;
- ``cameras.parquet``: the source calibration table.

Encoding 1080p at preset medium runs at a few frames per second per core, so each camera's
first ``unit`` frames (whole forth-and-back periods, 472 for 60 source frames) are encoded
once and the video is that stream ``repeats`` times over, remuxed with shifted time stamps
(not re-encoded): the pictures continue seamlessly, each copy starts with its own key
frame, and as ``unit`` is no multiple of ``keyint`` every copy puts the key frames at other
frame numbers. Built once per (cameras, unit, repeats, keyint) and reused.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotate.core.atomic import staged_folder
from annotate.core.tables import fixed_list_to_numpy, read_table, write_table
from annotate.media.video_writer import video_path


def forth_and_back(source_frames: np.ndarray, count: int) -> np.ndarray:
    """(count,) source frame shown at each new frame: forward, back, forward, ..."""
    n = len(source_frames)
    if n == 1:
        return np.repeat(source_frames, count)
    period = 2 * (n - 1)
    t = np.arange(count) % period
    return source_frames[np.where(t < n, t, period - t)]


def busiest_cameras(labels: pa.Table, count: int) -> list[str]:
    """The ``count`` cameras with the most valid labels (ties by name)."""
    valid = labels.filter(pc.equal(labels["reject_reason"], ""))
    names, counts = np.unique(valid["camera"].to_numpy(zero_copy_only=False).astype(str), return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    return [str(names[i]) for i in order[:count]]


def looped_labels(labels: pa.Table, cameras: list[str], frames: int) -> pa.Table:
    """The rows of ``cameras`` replayed forth and back over ``frames`` frames, renumbered."""
    labels = labels.filter(pc.is_in(labels["camera"], pa.array(cameras)))
    frame = labels["frame"].to_numpy()
    source = forth_and_back(np.unique(frame), frames)
    rows_of = {f: np.flatnonzero(frame == f) for f in np.unique(frame)}
    take = np.concatenate([rows_of[f] for f in source])
    new_frame = np.repeat(np.arange(frames), [len(rows_of[f]) for f in source])
    looped = labels.take(pa.array(take))
    field = looped.schema.field("frame")
    return looped.set_column(looped.schema.get_field_index("frame"), field, pa.array(new_frame, type=field.type))


def repeat_video(src: Path, dst: Path, repeats: int) -> int:
    """Write ``dst``: the packets of the constant-rate video ``src`` ``repeats`` times over,
    each copy's pts and dts shifted by the duration of the ones before (remuxed, not
    re-encoded); returns the packets written."""
    import av

    with av.open(str(src)) as inp:
        pts = [p.pts for p in inp.demux(video=0) if p.size]
    tick, rest = divmod(max(pts) - min(pts), len(pts) - 1)
    if rest:
        raise ValueError(f"{src}: time stamps are not evenly spaced; cannot repeat it seamlessly")
    written = 0
    with av.open(str(dst), "w", format="mp4") as out:
        for copy in range(repeats):
            with av.open(str(src)) as inp:
                stream = inp.streams.video[0]
                if copy == 0:
                    ostream = out.add_stream_from_template(stream)
                for packet in inp.demux(stream):
                    if not packet.size:
                        continue
                    packet.pts += copy * tick * len(pts)
                    packet.dts += copy * tick * len(pts)
                    packet.stream = ostream
                    out.mux(packet)
                    written += 1
    return written


def _write_camera(labels: pa.Table, camera: str, frames: int, size: tuple[int, int], seed: int,
                  keyint: int, path: Path) -> int:
    from annotate.synth.footage import write_textured_video

    rows = labels.filter(pc.equal(labels["camera"], camera))
    frame = rows["frame"].to_numpy()
    person = rows["person"].to_numpy()
    boxes = fixed_list_to_numpy(rows["box_unclipped"], (4,))
    drawable = np.isfinite(boxes).all(axis=1)
    order = np.argsort(frame, kind="stable")
    frame, person, boxes = frame[order], person[order], boxes[order]
    drawable = drawable[order]
    cut = np.searchsorted(frame, np.arange(frames + 1))
    pictures = ((person[a:b][drawable[a:b]], boxes[a:b][drawable[a:b]]) for a, b in zip(cut[:-1], cut[1:]))
    return write_textured_video(path, pictures, size[0], size[1], seed=seed, keyint=keyint)


def long_footage(labels_path: Path, cameras_path: Path, root: Path, sequence: str, cameras: int = 4,
                 periods: int = 4, repeats: int = 6, keyint: int = 30, jobs: int = 2) -> Path:
    """``<root>/<sequence>/`` as described above (built on first use); returns the folder.

    periods: forth-and-back periods encoded (the unit); repeats: copies of the unit per video.
    """
    from joblib import Parallel, delayed

    dst = root / sequence
    if (dst / "labels.parquet").is_file():
        return dst
    start = time.perf_counter()
    source = read_table(labels_path, "labels")
    names = busiest_cameras(source, cameras)
    unit = periods * max(2 * (len(np.unique(source["frame"].to_numpy())) - 1), 1)
    frames = unit * repeats
    labels = looped_labels(source, names, frames)
    calib = read_table(cameras_path, "cameras", columns=["camera", "width", "height"]).to_pandas()
    size = {str(c): (int(w), int(h)) for c, w, h in zip(calib["camera"], calib["width"], calib["height"])}
    with staged_folder(dst) as staging:
        (staging / "hdVideos").mkdir()
        units = [staging / f"unit_{cam}.mp4" for cam in names]
        Parallel(n_jobs=jobs)(delayed(_write_camera)(labels, cam, unit, size[cam], seed, keyint, path)
                              for seed, (cam, path) in enumerate(zip(names, units)))
        for cam, path in zip(names, units):
            repeat_video(path, video_path(staging, cam), repeats)
            path.unlink()
        shutil.copyfile(cameras_path, staging / "cameras.parquet")
        write_table(labels, staging / "labels.parquet", "labels")
    print(f"footage: {len(names)} cameras x {frames} frames ({repeats} x {unit}), key frame every {keyint}, in {dst} "
          f"({time.perf_counter() - start:.0f} s)")
    return dst
