"""MTCNN face detector (Zhang et al. 2016), offline, with the weights shipped in this package.

Three small networks in cascade: P-net proposes faces over an image pyramid, R-net and
O-net rescore and refine the boxes on 24 px and 48 px crops; O-net also gives five
keypoints (eyes, nose tip, mouth corners). The weights are those facenet-pytorch
distributes (annotate/detect/weights/mtcnn.npz and its LICENSE-mtcnn.txt, MIT), stored as a
plain numpy archive: nothing is unpickled. The cascade follows facenet-pytorch's
``detect_face`` (same pyramid, thresholds, box regression and non-maximum suppression),
except that crops reaching outside the image are zero-padded, as in the original MTCNN,
instead of clipped and stretched.

Boxes are square-ish face boxes (brows to chin, ear to ear on frontal faces), pixels
(x0, y0, x1, y1); scores are the O-net face probability.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.detect.faces import FaceBoxes

WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "mtcnn.npz"
PYRAMID_FACTOR = 0.709                  # MTCNN's scale step between pyramid levels
PNET_CELL, PNET_STRIDE = 12, 2


@dataclass(frozen=True)
class MtcnnConfig:
    """min_face_px: smallest face searched (the pyramid starts at 12 / min_face_px);
    thresholds: P-, R- and O-net face probabilities a box needs to go on; threads: torch
    CPU threads while detecting (None: leave torch's setting). The default 1 keeps the boxes
    the same on every machine and in every triangulation worker: torch's convolutions sum
    in another order with another thread count, which moves boxes by ~1e-6 px and Face
    Mesh's points, through its re-crops, by up to 0.2 px."""

    min_face_px: float = 20.0
    thresholds: tuple[float, float, float] = (0.5, 0.5, 0.5)
    threads: int | None = 1


# The three networks: layers in order ('c3-10': 3x3 conv to 10 channels and its PReLU; 'p2'
# / 'p3': 2x2 / 3x3 max-pool, stride 2, ceil mode; '|': flatten; 'd128': dense layer to 128
# and its PReLU), then the heads (name, outputs), the last one face / not face. Layer names
# follow the weights archive: conv1, prelu1, pool1, ..., numbered on through the dense layers.
NETWORKS = {
    "pnet": ("c3-10 p2 c3-16 c3-32", (("conv4_2", 4), ("conv4_1", 2))),
    "rnet": ("c3-28 p3 c3-48 p3 c2-64 | d128", (("dense5_2", 4), ("dense5_1", 2))),
    "onet": ("c3-32 p3 c3-64 p3 c3-64 p2 c2-128 | d256", (("dense6_2", 4), ("dense6_3", 10), ("dense6_1", 2))),
}


def _network(name: str, weights: dict):
    """One of NETWORKS with its weights (arrays named '<net>.<parameter>'): forward(x) -> the
    heads' outputs in the order listed, the last as probabilities."""
    import torch
    from torch import nn

    spec, heads = NETWORKS[name]

    def in_features(layer: str) -> int:
        return weights[f"{name}.{layer}.weight"].shape[1]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps, channels, layer, pool = [], 3, 0, 0
            for token in spec.split():
                if token == "|":
                    self.steps.append("flatten")
                elif token[0] == "p":
                    pool += 1
                    self._add(f"pool{pool}", nn.MaxPool2d(int(token[1:]), 2, ceil_mode=True))
                else:
                    layer += 1
                    if token[0] == "c":
                        k, out = (int(v) for v in token[1:].split("-"))
                        self._add(f"conv{layer}", nn.Conv2d(channels, out, k))
                    else:
                        out = int(token[1:])
                        self._add(f"dense{layer}", nn.Linear(in_features(f"dense{layer}"), out))
                    self._add(f"prelu{layer}", nn.PReLU(out))
                    channels = out
            for head, out in heads:
                self.add_module(head, nn.Conv2d(channels, out, 1) if head.startswith("conv")
                                else nn.Linear(channels, out))

        def _add(self, layer: str, module) -> None:
            self.add_module(layer, module)
            self.steps.append(layer)

        def forward(self, x):
            for step in self.steps:
                # The dense layers were trained on (N, W, H, C)-ordered features (Caffe's layout).
                x = x.permute(0, 3, 2, 1).reshape(len(x), -1) if step == "flatten" else getattr(self, step)(x)
            out = [getattr(self, head)(x) for head, _ in heads]
            return (*out[:-1], torch.softmax(out[-1], dim=1))

    net = Net()
    net.load_state_dict({k[len(name) + 1:]: torch.from_numpy(v) for k, v in weights.items()
                         if k.startswith(name + ".")})
    return net.eval()


def _networks():
    """P-, R- and O-net with the weights of WEIGHTS_FILE, for inference."""
    if not WEIGHTS_FILE.is_file():
        raise FileNotFoundError(f"{WEIGHTS_FILE} is missing: reinstall the annotate package")
    with np.load(WEIGHTS_FILE, allow_pickle=False) as archive:
        weights = {k: archive[k] for k in archive.files}
    return [_network(name, weights) for name in NETWORKS]


def _nms(boxes: np.ndarray, score: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first. Overlap is intersection
    over union, or over the smaller box (``by_min``, MTCNN's last step). boxes (N, 4)."""
    order = np.argsort(score)[::-1]
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]) + 1)
        h = np.maximum(0.0, np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]) + 1)
        inter = w * h
        overlap = inter / (np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) boxes -> squares of side max(w, h) with the same centres."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    x0, y0 = boxes[:, 0] + 0.5 * (w - side), boxes[:, 1] + 0.5 * (h - side)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the networks' box offsets (N, 4), in units of the box size (+1 px, as trained)."""
    size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1] * 2, axis=1)
    return boxes + offsets * size


class MtcnnDetector:
    """Face detector: MTCNN (module docstring)."""

    name = "mtcnn"

    def __init__(self, config: MtcnnConfig = MtcnnConfig()):
        self.config = config
        self.pnet, self.rnet, self.onet = _networks()

    def _crops(self, image_t, boxes: np.ndarray, size: int):
        """(N, 3, size, size) crops of the (1, 3, H, W) image at integer boxes, zero outside."""
        import torch
        import torch.nn.functional as F

        H, W = image_t.shape[2:]
        out = []
        for x0, y0, x1, y1 in np.trunc(boxes).astype(np.int64):
            x0, y0 = x0 - 1, y0 - 1                          # MTCNN's 1-based box corners
            w, h = max(x1 - x0, 1), max(y1 - y0, 1)
            crop = torch.zeros((1, 3, h, w), dtype=image_t.dtype)
            sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if sx1 > sx0 and sy1 > sy0:
                crop[:, :, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image_t[:, :, sy0:sy1, sx0:sx1]
            out.append(F.interpolate(crop, size=(size, size), mode="area"))
        return (torch.cat(out) - 127.5) * 0.0078125

    def _proposals(self, image_t) -> np.ndarray:
        """Stage 1: P-net over the pyramid -> (N, 5) square boxes + score."""
        import torch.nn.functional as F

        H, W = image_t.shape[2:]
        scale = PNET_CELL / self.config.min_face_px
        found = []
        while min(H, W) * scale >= PNET_CELL:
            level = F.interpolate(image_t, size=(int(H * scale + 1), int(W * scale + 1)), mode="area")
            reg, prob = self.pnet((level - 127.5) * 0.0078125)
            prob, reg = prob[0, 1].numpy(), reg[0].numpy()
            ys, xs = np.nonzero(prob >= self.config.thresholds[0])
            if len(ys):
                cell = np.stack([xs, ys], axis=1).astype(np.float64)
                lo = np.floor((PNET_STRIDE * cell + 1) / scale)
                hi = np.floor((PNET_STRIDE * cell + PNET_CELL) / scale)
                boxes = np.concatenate([lo, hi], axis=1)
                score, offsets = prob[ys, xs], reg[:, ys, xs].T
                keep = _nms(boxes, score, 0.5)
                found.append(np.concatenate([boxes[keep], score[keep, None], offsets[keep]], axis=1))
            scale *= PYRAMID_FACTOR
        if not found:
            return np.zeros((0, 5))
        cand = np.concatenate(found)
        cand = cand[_nms(cand[:, :4], cand[:, 4], 0.7)]
        # Stage-1 offsets are in units of the box size without the +1 (as facenet-pytorch).
        size = np.stack([cand[:, 2] - cand[:, 0], cand[:, 3] - cand[:, 1]] * 2, axis=1)
        boxes = _square(cand[:, :4] + cand[:, 5:9] * size)
        return np.concatenate([boxes, cand[:, 4:5]], axis=1)

    def detect(self, image: np.ndarray) -> FaceBoxes:
        """Faces in an (H, W, 3) uint8 RGB image."""
        import torch

        threads = torch.get_num_threads()
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        try:
            with torch.inference_mode():
                # A copy: decoded frames may be read-only arrays, which torch will not wrap.
                return self._detect(torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None])
        finally:
            torch.set_num_threads(threads)

    def _detect(self, image_t) -> FaceBoxes:
        t = self.config.thresholds
        boxes = self._proposals(image_t)
        if not len(boxes):
            return FaceBoxes.empty()
        # Stage 2: R-net rescoring and refinement on 24 px crops.
        reg, prob = self.rnet(self._crops(image_t, boxes[:, :4], 24))
        score = prob[:, 1].numpy()
        ok = score > t[1]
        boxes, offsets, score = boxes[ok, :4], reg.numpy()[ok], score[ok]
        keep = _nms(boxes, score, 0.7)
        boxes = _square(_regress(boxes[keep], offsets[keep]))
        if not len(boxes):
            return FaceBoxes.empty()
        # Stage 3: O-net on 48 px crops: score, box, keypoints.
        reg, points, prob = self.onet(self._crops(image_t, boxes, 48))
        score = prob[:, 1].numpy()
        ok = score > t[2]
        boxes, offsets, points, score = boxes[ok], reg.numpy()[ok], points.numpy()[ok], score[ok]
        size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], axis=1)   # (N, 2)
        keypoints = np.stack([points[:, :5], points[:, 5:]], axis=-1) * size[:, None] + boxes[:, None, :2] - 1
        boxes = _regress(boxes, offsets)
        keep = _nms(boxes, score, 0.7, by_min=True)
        return FaceBoxes(boxes[keep], score[keep].astype(np.float64), keypoints[keep].astype(np.float64))
