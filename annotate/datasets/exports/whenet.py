"""WHENet-style export: JPEG folders and one list file per split.

Layout under ``out_dir``::

    images/<split>/<sequence>/<camera>/<frame:08d>_<person>.jpg    the stored head crops
    <split>.txt                                                    image,yaw,pitch,roll

Each line of ``<split>.txt`` is ``<image path relative to out_dir>,<yaw>,<pitch>,<roll>``
(degrees, no header), angles in this project's convention, which is WHENet's: positive yaw
turns the face toward the image's left, positive pitch is chin up, positive roll is the
subject's left ear down; yaw is full range (-180, 180]. The crops are the shards' JPEG
bytes, unchanged (``image_size`` px square, head centred with the configured margin).
"""
from __future__ import annotations

from pathlib import Path

from annotate.core.atomic import staged_folder
from annotate.datasets.exports.common import dataset_splits, sample_stem, split_records, write_bytes

COLUMNS = ["sequence", "camera", "frame", "person", "image", "yaw", "pitch", "roll"]


def export_whenet(dataset_dir: str | Path, out_dir: str | Path) -> dict:
    """Write the WHENet export; returns {split: number of lines}."""
    counts = {}
    with staged_folder(out_dir) as stage:
        for split in dataset_splits(dataset_dir):
            lines = []
            for r in split_records(dataset_dir, split, COLUMNS, desc=f"whenet export {split}"):
                rel = f"images/{split}/{sample_stem(r)}.jpg"
                write_bytes(stage / rel, r["image"])
                lines.append(f"{rel},{r['yaw']:.4f},{r['pitch']:.4f},{r['roll']:.4f}")
            (stage / f"{split}.txt").write_text("".join(line + "\n" for line in lines))
            counts[split] = len(lines)
    return counts


def read_whenet_list(path: str | Path) -> list[tuple[str, float, float, float]]:
    """Parse a ``<split>.txt``: [(image, yaw, pitch, roll)]."""
    out = []
    for line in Path(path).read_text().splitlines():
        image, yaw, pitch, roll = line.rsplit(",", 3)
        out.append((image, float(yaw), float(pitch), float(roll)))
    return out
