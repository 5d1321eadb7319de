"""Shards -> augmented tensors vs a HopeNet-style folder of JPEGs + per-sample .mat files.

    python benchmarks/bench_loader.py [--dataset results/dataset] [--samples 2000] [--repeats 3]

Both loaders produce the same thing for the same samples: a (3, 224, 224) float tensor,
normalised, from a random 224 crop of a head image with a random horizontal flip, plus the
(yaw, pitch, roll) labels (negated yaw and roll when flipped).

- shards: ``ShardIterableDataset`` reads row groups of the Parquet shards and decodes the
  stored 256 px JPEG crop (libjpeg-turbo), augmentation in numpy, one ``torch`` conversion;
- HopeNet style: the same samples exported as ``<name>.jpg`` + ``<name>.mat``
  (annotate.datasets.exports.w300lp), read as HopeNet's ``Pose_300W_LP`` does: PIL opens
  the JPEG, ``scipy.io.loadmat`` reads ``pt2d`` and ``Pose_Para``, the face box from pt2d is
  enlarged and cropped, then torchvision ``Resize(240)``, ``RandomCrop(224)``, flip,
  ``ToTensor``, ``Normalize``.

Single process (``num_workers=0``) for both, so the figure is per core; runs alternate and
the best of each is reported.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io as sio
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from annotate.datasets.exports.w300lp import export_300wlp
from annotate.datasets.readers import shard_paths
from annotate.datasets.torch_dataset import ShardIterableDataset

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


class CropFlip:
    """Shard transform: random 224 crop of the 256 px crop, random flip, normalised tensor."""

    def __init__(self, size: int = 224, seed: int = 0):
        self.size = size
        self.rng = np.random.default_rng(seed)

    def __call__(self, record: dict) -> dict:
        image = record["image"]
        h, w = image.shape[:2]
        y0 = self.rng.integers(0, h - self.size + 1)
        x0 = self.rng.integers(0, w - self.size + 1)
        image = image[y0:y0 + self.size, x0:x0 + self.size]
        yaw, pitch, roll = record["yaw"], record["pitch"], record["roll"]
        if self.rng.random() < 0.5:
            image, yaw, roll = image[:, ::-1], -yaw, -roll
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)
        return {"image": (tensor - MEAN) / STD, "euler_deg": torch.tensor([yaw, pitch, roll], dtype=torch.float32)}


class HopeNetStyle(Dataset):
    """A folder of ``<name>.jpg`` + ``<name>.mat`` read the way HopeNet's Pose_300W_LP reads it."""

    def __init__(self, data_dir: Path, names: list[str]):
        self.data_dir = data_dir
        self.names = names
        self.transform = transforms.Compose([transforms.Resize(240), transforms.RandomCrop(224), transforms.ToTensor(),
                                             transforms.Normalize(mean=[0.485, 0.456, 0.406],
                                                                  std=[0.229, 0.224, 0.225])])

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        name = self.names[i]
        img = Image.open(self.data_dir / f"{name}.jpg").convert("RGB")
        mat = sio.loadmat(self.data_dir / f"{name}.mat")
        pt2d = mat["pt2d"]
        x_min, y_min, x_max, y_max = pt2d[0].min(), pt2d[1].min(), pt2d[0].max(), pt2d[1].max()
        k = np.random.random_sample() * 0.2 + 0.2
        x_min -= 0.6 * k * abs(x_max - x_min)
        y_min -= 2 * k * abs(y_max - y_min)
        x_max += 0.6 * k * abs(x_max - x_min)
        y_max += 0.6 * k * abs(y_max - y_min)
        img = img.crop((int(x_min), int(y_min), int(x_max), int(y_max)))
        pitch, yaw, roll = mat["Pose_Para"][0][:3] * 180 / np.pi
        if np.random.random_sample() < 0.5:
            yaw, roll = -yaw, -roll
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return {"image": self.transform(img), "euler_deg": torch.tensor([yaw, pitch, roll], dtype=torch.float32)}


def drain(loader) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    for batch in loader:
        n += batch["image"].shape[0]
    return n, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="results/dataset")
    ap.add_argument("--samples", type=int, default=2000, help="about this many samples (whole shards)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    dataset = Path(args.dataset)
    # Whole shards until about --samples samples; the same samples go to the .jpg/.mat folder.
    import pyarrow.parquet as pq

    chosen, total = [], 0
    for path in shard_paths(dataset):
        if total >= args.samples:
            break
        chosen.append(path)
        total += pq.ParquetFile(path).metadata.num_rows
    work = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        subset = work / "subset"
        for path in chosen:
            target = subset / path.relative_to(dataset)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())
        result = export_300wlp(subset, work / "folder", max_angle_deg=180.0)
        names = [n for split in result["written"] for n in (work / "folder" / f"{split}_filenames.txt").read_text().split()]
        if result["skipped"]:
            print(f"note: {result['skipped']} samples have no .mat (no landmarks); the folder loader reads {len(names)}")
        shard_loader = DataLoader(ShardIterableDataset(list(chosen), transform=CropFlip(), shuffle_buffer=256),
                                  batch_size=64, num_workers=0)
        folder_loader = DataLoader(HopeNetStyle(work / "folder", names), batch_size=64, shuffle=True, num_workers=0)
        best_shards = best_folder = np.inf
        for _ in range(args.repeats):
            n_shards, t = drain(shard_loader)
            best_shards = min(best_shards, t)
            n_folder, t = drain(folder_loader)
            best_folder = min(best_folder, t)
        print(f"{len(chosen)} shards, {n_shards} samples (256 px JPEG crops -> 224 px tensors), 1 process, "
              f"best of {args.repeats}")
        print(f"shards (ShardIterableDataset)      : {n_shards / best_shards:8.1f} samples/s")
        print(f"HopeNet-style folder (.jpg + .mat) : {n_folder / best_folder:8.1f} samples/s")
        print(f"ratio: {(n_shards / best_shards) / (n_folder / best_folder):.2f}x (target >= 3x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
