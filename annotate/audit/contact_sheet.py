"""Contact sheets for the audit report: head crops from the dataset shards, with the pose
axes and the 2D landmarks drawn on them.

``CropSource`` finds samples in the shards (schemas/samples.schema.yaml) by their label
key (sequence, frame, person, camera); a key with no sample (a rejected label, or one the
dataset plan did not keep) is reported back as missing, never an error. ``contact_sheet``
draws a grid of crops as PNG bytes.

Axes: ``R_cam_head``'s columns are the head's x, y, z axes in camera coordinates. Each is
projected with the camera's own model (``annotate.geometry.cameras.project_camera_points``,
distortion included) from the head centre, mapped into the crop through
``crop_from_image`` (``annotate.media.crops.apply_transform``) and drawn from the crop
centre: x red, y green, z blue.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.audit.figures import pyplot, to_png
from annotate.geometry.cameras import project_camera_points
from annotate.media.crops import apply_transform
from annotate.media.jpeg import decode_jpeg_rgb

Key = tuple[str, int, int, str]
KEY_COLUMNS = ["sequence", "frame", "person", "camera"]
CROP_COLUMNS = KEY_COLUMNS + ["image", "image_size", "crop_from_image", "landmarks_crop", "landmark_visibility",
                              "R_cam_head", "K", "dist", "head_centre_cam", "helmet_radius_cm", "yaw", "pitch", "roll"]
# Visibility codes of annotate.head.visibility (restated: importing it loads the head mesh
# code, over a second; tests/test_audit_report.py checks they agree).
VISIBLE, SELF_OCCLUDED, OCCLUDED_BY_OTHER = 0, 2, 3
AXIS_COLOURS = ("#e41a1c", "#2ca02c", "#1f4fff")                # x red, y green, z blue
VISIBILITY_COLOURS = {VISIBLE: "#2ca02c", SELF_OCCLUDED: "#ff8c00", OCCLUDED_BY_OTHER: "#e41a1c"}
OTHER_VISIBILITY_COLOUR = "#9e9e9e"
COLUMNS_PER_SHEET = 6


def normalise_key(key: Sequence) -> Key:
    """(sequence, frame, person, camera) with plain Python types."""
    sequence, frame, person, camera = key
    return str(sequence), int(frame), int(person), str(camera)


@dataclass
class Crop:
    """One sample: its key, the decoded RGB crop (H, W, 3) and its shard record."""

    key: Key
    image: np.ndarray
    record: dict


class CropSource:
    """Head crops from dataset shards, looked up by label key.

    shards: a dataset folder (``results/dataset``; optionally one ``split``), one shard, or
    a list of shards, as ``annotate.datasets.readers.ShardRecords`` takes them.
    """

    def __init__(self, shards: str | Path | Sequence[str | Path], split: str | None = None):
        from annotate.datasets.readers import ShardRecords, read_columns

        self.records = ShardRecords(shards, split, columns=CROP_COLUMNS)
        keys = read_columns(self.records.paths, KEY_COLUMNS).to_pandas()
        self._index = {normalise_key(k): i for i, k in enumerate(keys.itertuples(index=False, name=None))}

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[Key]:
        """Every key the shards hold, in shard order."""
        return list(self._index)

    def has(self, keys: Iterable[Sequence]) -> np.ndarray:
        """(N,) bool: which keys have a sample."""
        return np.array([normalise_key(k) in self._index for k in keys], dtype=bool)

    def read(self, keys: Iterable[Sequence]) -> tuple[list[Crop], list[Key]]:
        """The crops of ``keys`` that exist, and the keys that do not (or whose JPEG is unreadable)."""
        found, missing = [], []
        for key in map(normalise_key, keys):
            i = self._index.get(key)
            if i is None:
                missing.append(key)
                continue
            record = self.records[i]
            try:
                image = decode_jpeg_rgb(record["image"])
            except Exception:                                    # a corrupt JPEG is a missing crop
                missing.append(key)
                continue
            found.append(Crop(key, image, record))
        return found, missing


def visibility_colours(codes: np.ndarray) -> list[str]:
    """Colour per visibility code: 0 visible green, 2 self-occluded orange, 3 occluded by
    another head red, anything else grey."""
    return [VISIBILITY_COLOURS.get(int(c), OTHER_VISIBILITY_COLOUR) for c in np.asarray(codes).reshape(-1)]


def _vector(record: dict, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """A fixed-size-list field as an array of ``shape``; None when absent or null."""
    value = record.get(name)
    if value is None:
        return None
    a = np.asarray(value, np.float64)
    return a.reshape(shape) if a.size == int(np.prod(shape)) else None


def head_axes_in_crop(record: dict, length_cm: float | None = None) -> np.ndarray | None:
    """(3, 2) crop-pixel vectors of the head's x, y, z axes, drawn from the crop centre.

    Each axis is the projection of ``head_centre + length_cm * R_cam_head[:, k]`` minus the
    projection of the head centre, both through the camera model and ``crop_from_image``.
    length_cm defaults to the sample's crop-sphere radius. None when a needed field is
    missing or the projection is not finite (an axis end behind the camera).
    """
    R = _vector(record, "R_cam_head", (3, 3))
    centre = _vector(record, "head_centre_cam", (3,))
    K, dist = _vector(record, "K", (3, 3)), _vector(record, "dist", (5,))
    A = _vector(record, "crop_from_image", (2, 3))
    if any(v is None for v in (R, centre, K, dist, A)):
        return None
    if length_cm is None:
        radius = float(record.get("helmet_radius_cm") or np.nan)
        length_cm = radius if np.isfinite(radius) and radius > 0 else 10.0
    points = np.vstack([centre, centre + length_cm * R.T])                 # centre, then x, y, z ends
    crop_px = apply_transform(A, project_camera_points(points, K, dist))
    axes = crop_px[1:] - crop_px[0]
    return axes if np.isfinite(axes).all() else None


def _draw_crop(ax, crop: Crop, caption: str) -> None:
    """One tile: the crop, its landmarks by visibility, and the pose axes from its centre."""
    h, w = crop.image.shape[:2]
    ax.imshow(crop.image, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    landmarks = _vector(crop.record, "landmarks_crop", (70, 2))
    codes = crop.record.get("landmark_visibility")
    if landmarks is not None:
        colours = visibility_colours(codes) if codes is not None else [OTHER_VISIBILITY_COLOUR] * 70
        ax.scatter(landmarks[:, 0], landmarks[:, 1], s=9, c=colours, edgecolors="black", linewidths=0.3)
    axes = head_axes_in_crop(crop.record)
    if axes is not None:
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        for (dx, dy), colour in zip(axes, AXIS_COLOURS):
            ax.plot([cx, cx + dx], [cy, cy + dy], color=colour, lw=2)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(caption, fontsize=7)
    ax.axis("off")


def default_caption(crop: Crop) -> str:
    """``sequence frame person camera`` and the yaw/pitch/roll of a crop."""
    sequence, frame, person, camera = crop.key
    angles = [crop.record.get(k) for k in ("yaw", "pitch", "roll")]
    text = "/".join("?" if a is None else f"{float(a):.0f}" for a in angles)
    return f"{sequence} f{frame} p{person} {camera}\nypr {text}"


def contact_sheet(crops: Sequence[Crop], captions: Sequence[str] | None = None,
                  columns: int = COLUMNS_PER_SHEET) -> bytes | None:
    """A grid of crops with axes and landmarks as PNG bytes; None when there are no crops."""
    if not crops:
        return None
    captions = list(captions) if captions is not None else [default_caption(c) for c in crops]
    columns = max(1, min(columns, len(crops)))
    rows = -(-len(crops) // columns)
    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, crop, caption in zip(axes.ravel(), crops, captions):
        _draw_crop(ax, crop, caption)
    return to_png(fig)
