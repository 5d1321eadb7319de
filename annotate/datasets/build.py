"""Head crops from the camera videos into sample shards, one (sequence, camera) unit at a time.

For each camera of a sequence, the planned samples (plan.parquet) are joined with their
labels (annotate.datasets.unit_samples, which also builds every sample column but the
JPEG once per camera), the video is decoded once, in order, and only as far as the selected
frames need (annotate.media.video: unreferenced pictures dropped, jumps to key frames), each
head is cut out of the decoder's YUV planes (annotate.media.crops) and JPEG-encoded
(annotate.media.jpeg), and the rows go to size-bounded shards
``<out>/shards/<split>/<sequence>/<camera>-NNN.parquet`` (annotate.datasets.shards).

Resuming: a unit is finished when its manifest ``<out>/parts/<sequence>/<camera>.json``
exists (written last, atomically) with a fingerprint of the configuration and of the
planned rows. A rerun skips finished units and redoes the others from scratch (removing
their leftover shards first), so an interrupted run ends with the same shards as an
uninterrupted one.

Bad media never stop the run: a missing, unreadable, corrupt or short video (or a missing
or bad extracted image) rejects exactly the samples it cannot provide, with a reason code,
and the other cameras go on. ``<out>/parts/<sequence>.json`` sums up the sequence and
``<out>/parts/<sequence>-rejections.parquet`` lists every rejected sample.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from annotate.core.atomic import write_bytes_atomic, write_json_atomic
from annotate.core.cpus import capped_workers
from annotate.datasets.shards import ShardInfo, ShardLimits, ShardWriter
from annotate.core.tables import read_table, write_table
from annotate.datasets.unit_samples import (UnitSamples, camera_groups, camera_table, label_rows, read_labels,
                                            with_images)
from annotate.media.crops import CropSpec, crop_rgb, crop_transforms, crop_windows, crop_yuv420_window
from annotate.media.jpeg import encode_jpeg_rgb, encode_jpeg_yuv420
from annotate.media.torch_crops import TorchCropEncoder, check_crop_device, is_torch_device
from annotate.media.video import (MISSING_IMAGE, VIDEO_TOO_SHORT, VideoError, camera_frame_source,
                                  as_capture_frames, camera_image_dir, camera_video_path, iter_video_frames,
                                  read_image_frame)
from annotate.core.names import check_name
from annotate.panoptic.frame_offsets import pictures_of

STAGE = "dataset.media"


@dataclass(frozen=True)
class BuildConfig:
    """crop: geometry and size; jpeg_quality (1-100); shard: size limits; source: 'auto' (per
    camera its video, else its images), 'video' (hdVideos) or 'images' (hdImgs); threads:
    cameras processed at once; full_frames: also write each used frame as a JPEG (for the
    COCO export); crop_device: 'cpu' (OpenCV
    + libjpeg-turbo) or a torch device for annotate.media.torch_crops ('cuda', 'cuda:N',
    'torch-cpu')."""

    crop: CropSpec = field(default_factory=CropSpec)
    jpeg_quality: int = 90
    shard: ShardLimits = field(default_factory=ShardLimits)
    source: str = "auto"
    threads: int = 2
    full_frames: bool = False
    crop_device: str = "cpu"

    def fingerprint_doc(self) -> dict:
        d = asdict(self)
        d.pop("threads")                     # does not change the output
        return d


def worker_threads(config: BuildConfig) -> int:
    """Cameras processed at once: ``config.threads``, at most the CPUs this process may use."""
    return capped_workers(config.threads)


def decoder_threads(workers: int) -> int:
    """FFmpeg threads per camera decoder (thread_type 'AUTO'): one each when several cameras
    run at once (they already fill the cores), else 0 = FFmpeg's choice, one per core."""
    return 1 if workers > 1 else 0


@dataclass
class UnitResult:
    """One camera of one sequence: its shards, rejected samples and timing."""

    sequence: str
    camera: str
    shards: list = field(default_factory=list)         # dicts: path (relative), split, rows, bytes
    samples: int = 0
    rejections: list = field(default_factory=list)     # dicts: frame, person, reason, file, detail
    frames_decoded: int = 0
    seconds: float = 0.0
    resumed: bool = False


@dataclass
class SequenceBuild:
    sequence: str
    units: list = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(u.samples for u in self.units)

    def rejection_counts(self) -> Counter:
        return Counter(r["reason"] for u in self.units for r in u.rejections)

    def __str__(self) -> str:
        lines = [f"{self.sequence}: {self.samples} samples in {sum(len(u.shards) for u in self.units)} shards "
                 f"from {len(self.units)} cameras ({sum(u.resumed for u in self.units)} already done)"]
        counts = self.rejection_counts()
        if counts:
            lines.append("rejected samples: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            for u in self.units:
                reasons = Counter(r["reason"] for r in u.rejections)
                if reasons:
                    first = u.rejections[0]
                    lines.append(f"  camera {u.camera}: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
                                 + f" ({first['file']}: {first['detail']})")
        else:
            lines.append("no media rejections")
        return "\n".join(lines)


def fingerprint(config: BuildConfig, sequence: str, camera: str, plan_rows: pd.DataFrame,
                frame_offset: int = 0) -> str:
    """A digest of what a unit's output depends on: the build config, its planned rows and
    which pictures show its frames (``frame_offset``)."""
    h = hashlib.sha256(json.dumps(config.fingerprint_doc(), sort_keys=True, default=str).encode())
    h.update(f"{sequence}/{camera}".encode())
    if frame_offset:
        h.update(f"frame_offset {int(frame_offset)}".encode())
    for column in ("frame", "person", "sample_weight", "yaw"):
        h.update(np.ascontiguousarray(plan_rows[column].to_numpy(), dtype=np.float64).tobytes())
    h.update("\n".join(plan_rows["split"].astype(str)).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------ media

def encode_crops(frame, transforms: np.ndarray, windows: np.ndarray, spec: CropSpec, quality: int,
                 encoder=None) -> list[bytes]:
    """JPEG bytes of the head crops of one decoded frame.

    transforms: (k, 2, 3) crop_from_image; windows: (k, 3) their ``crop_windows``. BT.601
    video pictures are cut from the decoder's YUV 4:2:0 planes (stretched to JPEG's full
    range on the way) and encoded from them, by ``encoder`` (a TorchCropEncoder) when
    given; anything else goes through RGB on the CPU.
    """
    planes = frame.yuv420()
    if planes is not None and frame.colour.bt601:
        full = frame.colour.full_range
        if encoder is not None:
            return encoder.encode(planes, windows, full_range=full)
        return [encode_jpeg_yuv420(*crop_yuv420_window(planes, w, spec, full_range=full, to_full_range=True),
                                   quality=quality, full_range=True) for w in windows]
    rgb = frame.rgb()
    return [encode_jpeg_rgb(crop_rgb(rgb, A, spec), quality) for A in transforms]


def _write_full_frame(frame, path: Path, quality: int) -> None:
    """The whole frame as a JPEG, written atomically (for the COCO export)."""
    planes = frame.yuv420()
    if planes is not None and frame.colour.bt601:
        data = encode_jpeg_yuv420(*planes, quality=quality, full_range=frame.colour.full_range)
    else:
        data = encode_jpeg_rgb(frame.rgb(), quality)
    write_bytes_atomic(path, data)


def frame_path(out_dir: str | Path, sequence: str, camera: str, frame: int) -> Path:
    """``<out>/frames/<sequence>/<camera>/<frame:08d>.jpg``: a full frame for the COCO export."""
    where = Path(out_dir) / "frames"
    return where / check_name(sequence, "sequence name", where) / check_name(camera, "camera name", where) \
        / f"{int(frame):08d}.jpg"


def _decoded_frames(seq_dir: Path, camera: str, frames: np.ndarray, source: str, threads: int, reject,
                    size: tuple[int, int], offset: int = 0):
    """Yield the decoded frames, each DecodedFrame's ``index`` the capture frame; per-image
    problems are passed to ``reject`` and skipped.

    offset: the camera's picture number of frame 0 (``annotate.panoptic.frame_offsets``); a
    frame the camera has no picture of (frame + offset < 0) is rejected as MISSING_IMAGE.
    For videos a VideoError propagates (after the good frames): the caller rejects the rest;
    a video that is not ``size`` (width, height) px yields nothing (VIDEO_SIZE_MISMATCH).
    """
    pictures = pictures_of(frames, offset)
    for k in np.asarray(frames)[pictures < 0]:
        reject(int(k), MISSING_IMAGE, str(seq_dir), f"camera {camera} has no picture of frame {int(k)}: its "
                                                    f"pictures are frame + {offset} (ingest.frame_offsets)")
    frames, pictures = np.asarray(frames)[pictures >= 0], pictures[pictures >= 0]
    if source == "video":
        decoded = iter_video_frames(camera_video_path(seq_dir, camera), pictures, threads=threads, expect_size=size)
        yield from as_capture_frames(decoded, offset)
        return
    image_dir = camera_image_dir(seq_dir, camera)
    for k, picture in zip(frames.tolist(), pictures.tolist()):
        try:
            frame = read_image_frame(image_dir, camera, picture)
        except VideoError as err:
            reject(k, err.reason, err.path, err.detail)
            continue
        frame.index = k
        yield frame


# ------------------------------------------------------------------------------- a unit

class _Unit:
    """Builds the shards of one (sequence, camera)."""

    def __init__(self, samples: UnitSamples, seq_dir: Path, out_dir: Path, config: BuildConfig,
                 decoder_threads: int, on_shard=None, progress=None):
        self.s = samples
        self.seq_dir = seq_dir
        self.out_dir = out_dir
        self.config = config
        self.decoder_threads = decoder_threads
        self.on_shard = on_shard
        self.progress = progress or (lambda n: None)        # called with each batch of samples done
        self.result = UnitResult(samples.sequence, samples.camera)
        self.done = np.zeros(len(samples.rows), dtype=bool)
        self.source = camera_frame_source(seq_dir, samples.camera, config.source)        # video or images
        frames = samples.rows["frame"].to_numpy()
        self.frames = np.unique(frames)
        self.rows_of_frame = {f: np.flatnonzero(frames == f) for f in self.frames}

    def reject_frames(self, frames, reason: str, file: str, detail: str) -> None:
        """Reject every not-yet-done sample of the given frames."""
        rejected = 0
        for f in np.atleast_1d(frames):
            for i in self.rows_of_frame.get(int(f), []):
                if not self.done[i]:
                    r = self.s.rows.iloc[i]
                    self.result.rejections.append({"frame": int(r.frame), "person": int(r.person), "reason": reason,
                                                   "file": str(file), "detail": detail})
                    self.done[i] = True
                    rejected += 1
        self.progress(rejected)

    def _reject_unreached(self) -> None:
        """Frames the video never reached: it is shorter than the labelled frames."""
        if self.source != "video":
            return
        left = np.unique(self.s.rows["frame"].to_numpy()[~self.done])
        if len(left):
            self.reject_frames(left, VIDEO_TOO_SHORT, str(camera_video_path(self.seq_dir, self.s.camera)),
                               f"video ends before frame {int(left[0])} "
                               f"({self.result.frames_decoded} selected frames decoded)")

    def run(self) -> UnitResult:
        """Decode, crop and encode every planned sample, write the shards; the unit's result."""
        start = time.perf_counter()
        writers: dict[str, ShardWriter] = {}
        pending: dict[str, tuple[list, list]] = {}
        spec, quality = self.config.crop, self.config.jpeg_quality
        encoder = None
        if is_torch_device(self.config.crop_device):
            encoder = TorchCropEncoder(spec, quality, self.config.crop_device)
        group = self.config.shard.row_group_samples

        def flush(split: str, force: bool = False) -> None:
            idx, images = pending.get(split, ([], []))
            if idx and (force or len(idx) >= group):
                if split not in writers:
                    writers[split] = ShardWriter(self.out_dir / "shards" / split / self.s.sequence, self.s.camera,
                                                 self.config.shard, self.on_shard)
                writers[split].write(with_images(table, np.asarray(idx), images))
                pending[split] = ([], [])

        def reject(frame, reason, file, detail):
            self.reject_frames([frame], reason, file, detail)

        split_of = self.s.rows["split"].astype(str).to_numpy()
        table = self.s.table(spec)
        size = (self.s.camera_info["width"], self.s.camera_info["height"])
        try:
            try:
                for frame in _decoded_frames(self.seq_dir, self.s.camera, self.frames, self.source,
                                             self.decoder_threads, reject, size,
                                             self.s.camera_info.get("frame_offset", 0)):
                    self.result.frames_decoded += 1
                    if self.config.full_frames:
                        _write_full_frame(frame, frame_path(self.out_dir, self.s.sequence, self.s.camera,
                                                            frame.index), quality)
                    rows = self.rows_of_frame[frame.index]
                    jpegs = encode_crops(frame, self.s.transforms[rows], self.s.windows[rows], spec, quality,
                                         encoder)
                    for i, jpeg in zip(rows, jpegs):
                        idx, images = pending.setdefault(split_of[i], ([], []))
                        idx.append(i)
                        images.append(jpeg)
                        self.done[i] = True
                        flush(split_of[i])
                    self.progress(len(rows))
            except VideoError as err:
                self.reject_frames(self.frames, err.reason, err.path, err.detail)
            self._reject_unreached()
            for split in sorted(pending):
                flush(split, force=True)
            for split in sorted(writers):
                for info in writers[split].close():
                    self.result.shards.append(_shard_doc(info, split, self.out_dir))
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        self.result.samples = sum(s["rows"] for s in self.result.shards)
        self.result.seconds = round(time.perf_counter() - start, 3)
        return self.result


def _shard_doc(info: ShardInfo, split: str, out_dir: Path) -> dict:
    return {"path": info.path.relative_to(out_dir).as_posix(), "split": split, "rows": info.rows, "bytes": info.bytes}


# -------------------------------------------------------------------------- a sequence

def manifest_path(out_dir: str | Path, sequence: str, camera: str) -> Path:
    """``parts/<sequence>/<camera>.json``; the names come from the labels table and are
    checked (``annotate.core.names``) before they make a path."""
    where = Path(out_dir) / "parts"
    return where / check_name(sequence, "sequence name", where) / f"{check_name(camera, 'camera name', where)}.json"


def _write_json(path: Path, doc) -> None:
    """Sorted keys: the same build writes the same manifest bytes."""
    write_json_atomic(path, doc, sort_keys=True)


def _finished(out_dir: Path, sequence: str, camera: str, digest: str) -> UnitResult | None:
    """The manifest of a finished unit with this fingerprint whose shards all exist."""
    path = manifest_path(out_dir, sequence, camera)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if doc.get("fingerprint") != digest or not all((out_dir / s["path"]).is_file() for s in doc["shards"]):
        return None
    doc.pop("fingerprint")
    return UnitResult(**{**doc, "resumed": True})


def _remove_leftovers(out_dir: Path, sequence: str, camera: str) -> None:
    """Shards and frames of an unfinished earlier attempt at this unit."""
    for path in (out_dir / "shards").glob(f"*/{sequence}/{camera}-*.parquet"):
        path.unlink()
    manifest_path(out_dir, sequence, camera).unlink(missing_ok=True)


def _remove_unplanned(out_dir: Path, sequence: str, cameras: list[str]) -> None:
    """Shards and manifests of cameras no longer in the plan (an earlier configuration)."""
    keep = set(cameras)
    for path in (out_dir / "shards").glob(f"*/{sequence}/*.parquet"):
        if path.name.rsplit("-", 1)[0] not in keep:
            path.unlink()
    for path in (out_dir / "parts" / sequence).glob("*.json"):
        if path.stem not in keep:
            path.unlink()


def build_sequence(sequence: str, plan_path: str | Path, labels_path: str | Path, cameras_path: str | Path,
                   seq_dir: str | Path, out_dir: str | Path, config: BuildConfig = BuildConfig(),
                   on_shard=None, show_progress: bool = False, on_progress=None) -> SequenceBuild:
    """Crop every planned sample of ``sequence`` into shards under ``out_dir`` (resumable).

    plan_path: plan.parquet; labels_path, cameras_path: the sequence's labels and cameras
    tables; seq_dir: the Panoptic sequence folder (hdVideos/ or hdImgs/). on_shard: called
    with each finished ShardInfo. show_progress: a progress bar (stderr) over the planned
    samples, advanced as each frame's crops are made or samples are rejected (resumed
    cameras count at once); on_progress: called with each such count too. Writes
    ``parts/<sequence>.json`` and ``parts/<sequence>-rejections.parquet`` last.
    """
    from tqdm import tqdm

    out_dir, seq_dir = Path(out_dir), Path(seq_dir)
    check_crop_device(config.crop_device)                 # before any work: a clear error, not a crash per camera
    plan = read_table(plan_path, "dataset_plan", filters=[("sequence", "=", sequence)]).to_pandas()
    plan["camera"] = plan["camera"].astype(str)
    cameras = camera_table(cameras_path)
    names = sorted(set(plan["camera"]))
    unknown = [c for c in names if c not in cameras]
    if unknown:
        raise ValueError(f"{cameras_path}: no calibration for planned cameras {unknown}")
    build = SequenceBuild(sequence)
    results: dict[str, UnitResult] = {}
    plan_of = dict(tuple(plan.groupby("camera", sort=False)))
    workers = worker_threads(config)
    bar = tqdm(total=len(plan), unit="sample", desc=f"crops {sequence}", disable=not show_progress, mininterval=1.0)

    def progress(n: int) -> None:
        bar.update(n)
        if on_progress is not None:
            on_progress(n)

    def run(job) -> tuple[str, UnitResult]:
        # Preparing a camera (joining its labels, fingerprint, transforms) runs here, in the
        # worker, so it overlaps the other cameras' decoding instead of delaying them all.
        camera, labels = job
        rows, arrays = label_rows(labels, camera, plan_of[camera], labels_path)
        digest = fingerprint(config, sequence, camera, rows, cameras[camera]["frame_offset"])
        done = _finished(out_dir, sequence, camera, digest)
        if done is not None:
            progress(len(rows))
            return camera, done
        _remove_leftovers(out_dir, sequence, camera)
        transforms = crop_transforms(arrays["box_unclipped"], config.crop)
        samples = UnitSamples(sequence, camera, rows, arrays, cameras[camera], transforms,
                               crop_windows(transforms, config.crop.size))
        result = _Unit(samples, seq_dir, out_dir, config, decoder_threads(workers), on_shard, progress).run()
        doc = asdict(result)
        doc.pop("resumed")
        _write_json(manifest_path(out_dir, sequence, camera), {**doc, "fingerprint": digest})
        return camera, result

    try:
        _remove_unplanned(out_dir, sequence, names)
        for group in camera_groups({c: len(plan_of[c]) for c in names}):
            tables = read_labels(labels_path, group)
            jobs = [(camera, tables.pop(camera)) for camera in group]
            if workers > 1 and len(jobs) > 1:
                # The cameras are the parallelism: OpenCV's own threads on each small crop would
                # only add overhead (a 180 -> 256 px resize costs 60% more CPU with 2 threads).
                with _opencv_threads(1), ThreadPoolExecutor(workers) as pool:
                    results.update(pool.map(run, jobs))
            else:
                results.update(map(run, jobs))
    finally:
        bar.close()
    build.units = [results[c] for c in names]
    _write_rejections(out_dir / "parts" / f"{sequence}-rejections.parquet", build)
    _write_json(out_dir / "parts" / f"{sequence}.json", sequence_doc(build))
    return build


@contextlib.contextmanager
def _opencv_threads(n: int):
    """OpenCV's worker-thread count set to ``n`` (process-wide) for the block, then restored."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def sequence_doc(build: SequenceBuild) -> dict:
    """The per-sequence summary the card reads (no per-sample rejections: see the table)."""
    return {"sequence": build.sequence, "samples": build.samples,
            "rejections": dict(sorted(build.rejection_counts().items())),
            "units": [{"camera": u.camera, "samples": u.samples, "frames_decoded": u.frames_decoded,
                       "seconds": u.seconds, "shards": u.shards,
                       "rejections": dict(Counter(r["reason"] for r in u.rejections))} for u in build.units]}


def _write_rejections(path: Path, build: SequenceBuild) -> None:
    rows = [(u.camera, r) for u in build.units for r in u.rejections]
    write_table({
        "sequence": [build.sequence] * len(rows), "stage": [STAGE] * len(rows),
        "frame": np.array([r["frame"] for _, r in rows], dtype=np.int32),
        "person": np.array([r["person"] for _, r in rows], dtype=np.int32),
        "camera": [c for c, _ in rows], "file": [r["file"] for _, r in rows],
        "reason": [r["reason"] for _, r in rows], "detail": [r["detail"] for _, r in rows],
    }, path, "rejections")
