"""The frames of a capture that has only a calibration and images or videos.

Without ``hdFace3d``/``hdPose3d`` files (a Panoptic sequence whose 3D data is not published,
or a rig of one's own), ingest takes its frame list from the media of the cameras it reads:

    hdImgs/<camera>/<camera>_%08d.jpg    the frame numbers in the file names
    hdVideos/hd_<camera>.mp4             frames 0 .. n-1 of a video of n frames

A camera's frames are the union of both, shifted by its offset where its pictures are not
in step with the capture's frames (``annotate.panoptic.frame_offsets``). The frames present
are those of any camera; a
camera with neither is named (a ``missing_media`` rejection), and so is every entry of
``hdImgs/`` or ``hdVideos/`` that is not a camera of the calibration. Counting a video's
frames needs a decoder library, which lives above this package (``annotate.media.video``):
the caller passes ``count_video_frames``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from annotate.panoptic.errors import MISSING_FRAME, MISSING_MEDIA, UNEXPECTED_FILE, Rejection
from annotate.panoptic.frame_offsets import frames_of, pictures_of
from annotate.panoptic.layout import (IMAGE_DIR, VIDEO_DIR, FrameListing, SequenceLayout, image_file_pattern,
                                      list_frames)

STAGE = "ingest.media"


class NoFramesError(ValueError):
    """Ingest found no frame to read; the message says what was searched and what to change."""


@dataclass(frozen=True)
class CameraMedia:
    """The media of one camera.

    images: the listing of ``hdImgs/<camera>/`` (picture numbers). video:
    ``hdVideos/hd_<camera>.mp4`` when it is a file, else None. video_frames: its picture count
    (0 without a video). offset: the picture number of capture frame 0.
    """

    camera: str
    images: FrameListing
    video: Path | None
    video_frames: int
    offset: int = 0

    @property
    def frames(self) -> np.ndarray:
        """(F,) int64 sorted capture frames with an image or a video picture."""
        return frames_of(np.union1d(self.images.frames, np.arange(self.video_frames, dtype=np.int64)), self.offset)

    @property
    def has_media(self) -> bool:
        return len(self.images.frames) > 0 or self.video_frames > 0


@dataclass(frozen=True)
class MediaListing:
    """The media of the cameras read, and the entries of ``hdImgs/``, ``hdVideos/`` that are
    not cameras of the calibration (``strays``)."""

    cameras: tuple[CameraMedia, ...]
    strays: tuple[Path, ...]

    @property
    def present(self) -> np.ndarray:
        """(F,) frame numbers that at least one camera has."""
        frames = [c.frames for c in self.cameras]
        return np.unique(np.concatenate(frames)) if frames else np.zeros(0, dtype=np.int64)

    @property
    def without_media(self) -> list[str]:
        return [c.camera for c in self.cameras if not c.has_media]

    def cameras_with(self, frames: np.ndarray) -> np.ndarray:
        """(F,) int: how many cameras have each of ``frames``."""
        return sum((np.isin(frames, c.frames).astype(np.int64) for c in self.cameras),
                   np.zeros(len(frames), dtype=np.int64))


def _strays(folder: Path, known: set[str]) -> list[Path]:
    """Entries of ``folder`` whose names are not in ``known`` (none if it is absent)."""
    if not folder.is_dir():
        return []
    return sorted(folder / e for e in (p.name for p in folder.iterdir()) if e not in known)


def list_media(layout: SequenceLayout, cameras: Sequence[str], all_cameras: Sequence[str],
               count_video_frames: Callable[[Path], int] | None,
               offsets: Mapping[str, int] | None = None) -> MediaListing:
    """The media of ``cameras``; strays are entries not named after any of ``all_cameras``
    (every camera of the calibration). ``count_video_frames(path) -> int`` counts a video's
    frames; None refuses a camera whose only media is a video (it cannot be counted here).
    offsets: camera -> picture number of frame 0 (absent: 0)."""
    offsets = offsets or {}
    listed = []
    for cam in cameras:
        images = list_frames(layout.image_dir(cam), image_file_pattern(cam))
        video = layout.video_file(cam)
        count = 0
        if video.is_file():
            if count_video_frames is None:
                raise ValueError(f"{video}: counting a video's frames needs count_video_frames "
                                 f"(annotate.media.video.count_video_frames)")
            count = int(count_video_frames(video))
        listed.append(CameraMedia(cam, images, video if video.is_file() else None, count, int(offsets.get(cam, 0))))
    strays = _strays(layout.image_root, set(all_cameras)) + \
        _strays(layout.video_dir, {layout.video_file(c).name for c in all_cameras})
    return MediaListing(tuple(listed), tuple(strays))


def select_present(selected: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The selected frame numbers that some camera has: images are often extracted sparsely,
    so a number between two images is not a gap."""
    return selected[np.isin(selected, present)]


def media_rejections(listing: MediaListing, selected: np.ndarray, sequence: str) -> list[Rejection]:
    """Cameras without media, unexpected entries (strays and misnamed images), and selected
    frames another camera has but this one lacks inside its own first..last frame (files as
    absolute paths: the caller makes them relative)."""
    out = []
    for path in listing.strays:
        out.append(Rejection(sequence, STAGE, None, None, None, str(path), UNEXPECTED_FILE,
                             f"not a camera of the calibration (expected {IMAGE_DIR}/<camera>/ or "
                             f"{VIDEO_DIR}/hd_<camera>.mp4)"))
    for cam in listing.cameras:
        pattern = image_file_pattern(cam.camera)
        for entry in cam.images.unexpected:
            out.append(Rejection(sequence, STAGE, None, None, cam.camera, str(entry), UNEXPECTED_FILE,
                                 f"not a file named {pattern.prefix}%08d{pattern.suffix}"))
        if not cam.has_media:
            out.append(Rejection(sequence, STAGE, None, None, cam.camera, str(cam.images.folder), MISSING_MEDIA,
                                 f"no {IMAGE_DIR}/{cam.camera}/{pattern.prefix}%08d{pattern.suffix} and no "
                                 f"{VIDEO_DIR}/hd_{cam.camera}.mp4: this camera gives no views"))
            continue
        frames = cam.frames
        inside = selected[(selected >= frames[0]) & (selected <= frames[-1])]
        for f in inside[~np.isin(inside, frames)].tolist():
            out.append(Rejection(sequence, STAGE, int(f), None, cam.camera,
                                 str(cam.images.folder / pattern.name(int(pictures_of([f], cam.offset)[0]))),
                                 MISSING_FRAME, f"frame {f} is absent while this camera has frames "
                                 f"{int(frames[0])}..{int(frames[-1])} and another camera has it"
                                 + (f" (its pictures are frame + {cam.offset})" if cam.offset else "")))
    return out


def no_frames_message(layout: SequenceLayout, listing: MediaListing, json_folders: Sequence[FrameListing],
                      frame_start: int | None, frame_end: int | None, frame_step: int) -> str:
    """Why ingest has no frame: what was searched and what to change."""
    seq = layout.directory
    searched = [f"{f.folder.name}/ ({'empty' if f.exists else 'absent'})" for f in json_folders]
    names = [c.camera for c in listing.cameras]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    present = listing.present
    if len(present):
        return (f"{seq}: no frame selected: the media holds frames {int(present[0])}..{int(present[-1])} "
                f"({len(present)} frames), but frame_start={frame_start}, frame_end={frame_end}, "
                f"frame_step={frame_step} select none of them; change the ingest frame settings")
    lines = [f"{seq}: no frames found. Searched: {', '.join(searched)}; "
             f"{IMAGE_DIR}/<camera>/<camera>_%08d.jpg and {VIDEO_DIR}/hd_<camera>.mp4 for the "
             f"{len(names)} camera(s) read from {layout.calibration.name} ({shown}): none present."]
    if listing.strays:
        lines.append("These entries are not cameras of the calibration: "
                     + ", ".join(layout.relative(p) for p in listing.strays[:8])
                     + ". Name the folders and videos after the calibration's cameras (PP_NN; "
                       "`annotate convert-calibration` prints which source camera became which).")
    lines.append(f"Put each camera's frames in {IMAGE_DIR}/<camera>/<camera>_00000000.jpg, ... or its video at "
                 f"{VIDEO_DIR}/hd_<camera>.mp4 (docs/captures.md).")
    return " ".join(lines)
