"""face-alignment's FAN (2D, 68 iBUG points) on face boxes from the head priors.

With head priors no face detector runs: the boxes come from the projected head spheres
(body skeletons or the previous frame), so only the FAN weights are needed. Without priors
(a capture without body skeletons) the boxes are those of ``detect.face_detector``
(``annotate.detect.faces``, weights shipped), run on the whole image. face-alignment downloads them at
construction; there is no network here (nor on most compute nodes), so this backend looks
for the file itself and, if it is missing, says where to put it instead of trying.

face-alignment builds and loads the network and crops the faces (its own ``crop``, with
its centre and scale conventions); the heatmaps are decoded here, vectorised, with the
same quarter-pixel refinement and crop-to-image transform as its ``get_preds_fromhm`` but
without its final rounding to whole pixels (a bias of up to a pixel that triangulation
would inherit) and without its numba kernels, which compile for ~20 s in every new process.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.detect.base import FaceDetections, ViewInput
from annotate.detect.faces import FaceDetector

FAN_CHECKPOINT = "2DFAN4-11f355bf06.pth.tar"
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/" + FAN_CHECKPOINT
# Share of the head sphere's box taken as the face box handed to FAN: FAN was trained on
# face-detector boxes (brows to chin), about 0.7 of a box around the whole head.
FACE_BOX_FRACTION = 0.7
# face-alignment's crop conventions (face_alignment.utils / api): 256 px crops, 64 px
# heatmaps, scale = (box width + height) / 195 (the 'folder' detector's reference
# scale), crop side 200 * scale, centre raised by 0.12 of the box height.
CROP_PX, HEATMAP_PX, SCALE_UNIT_PX, REFERENCE_SCALE, CENTRE_Y_OFFSET = 256, 64, 200.0, 195.0, 0.12


@dataclass(frozen=True)
class FanConfig:
    """device: torch device ("cpu", "cuda"); flip_input: also run on the mirrored crop and
    average (face-alignment's test-time augmentation, twice the cost); min_box_px: head
    boxes smaller than this are skipped (FAN needs ~50 px faces)."""

    device: str = "cpu"
    flip_input: bool = False
    min_box_px: float = 40.0


def fan_checkpoint_path() -> Path:
    """Where face-alignment looks for the weights: ``$TORCH_HOME/hub/checkpoints/`` (torch hub)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / FAN_CHECKPOINT


def missing_weights_message(path: Path) -> str:
    return (f"FAN weights not found: {path} does not exist. Download {FAN_URL} (about 95 MB) on a "
            f"machine with network access and copy it to {path} (set TORCH_HOME to use another "
            f"directory: the file goes to $TORCH_HOME/hub/checkpoints/). No other file is needed: "
            f"face boxes come from the head priors, so no face-detector weights are used.")


def face_boxes_from_head_boxes(head_boxes_px: np.ndarray, fraction: float = FACE_BOX_FRACTION) -> np.ndarray:
    """(K, 4) head boxes -> (K, 4) face boxes: the central ``fraction`` of each, same centre."""
    b = np.asarray(head_boxes_px, dtype=np.float64).reshape(-1, 4)
    centre, half = 0.5 * (b[:, :2] + b[:, 2:]), 0.5 * fraction * (b[:, 2:] - b[:, :2])
    return np.concatenate([centre - half, centre + half], axis=1)


class FanDetector:
    """Landmark backend: face-alignment FAN 2D on the head boxes of each view."""

    name = "fan"
    needs_images = True
    searches_head_boxes = False

    def __init__(self, config: FanConfig = FanConfig(), face_detector: FaceDetector | None = None):
        """face_detector: finds the faces in views without head boxes (None: such views
        give no faces)."""
        self.face_detector = face_detector
        path = fan_checkpoint_path()
        if not path.is_file():
            raise FileNotFoundError(missing_weights_message(path))
        import face_alignment

        self.config = config
        # face_detector='folder' loads no detector weights; compile=False: compiling costs
        # over a minute and gains nothing on CPU.
        self._fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=config.device,
                                                face_detector="folder", compile=False,
                                                flip_input=config.flip_input)

    def detect(self, view: ViewInput) -> FaceDetections:
        if view.image is None:
            raise ValueError("the FAN backend needs the view's image")
        boxes = face_boxes_from_head_boxes(view.head_boxes_px)
        if not len(boxes) and self.face_detector is not None:
            boxes = self.face_detector.detect(view.image).boxes_px
        h, w = view.image.shape[:2]
        size = boxes[:, 2:] - boxes[:, :2]
        usable = (np.isfinite(boxes).all(axis=1) & (size.min(axis=1) >= self.config.min_box_px)
                  & (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < w) & (boxes[:, 1] < h))
        boxes = boxes[usable]
        if len(boxes) == 0:
            return FaceDetections.empty(68)
        centre, scale = crop_frames(boxes)
        heatmaps = self._heatmaps(view.image, centre, scale)
        points, conf = decode_heatmaps(heatmaps, centre, scale)
        return FaceDetections(points, conf, boxes)

    def _heatmaps(self, image: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """(K, 68, 64, 64) FAN heatmaps of the K crops (mirrored pass added if flip_input)."""
        import torch
        from face_alignment.utils import crop, flip

        crops = np.stack([crop(image, c, s).transpose(2, 0, 1) for c, s in zip(centre, scale)])
        net = self._fa.face_alignment_net
        with torch.no_grad():
            x = torch.from_numpy(crops.astype(np.float32) / 255.0).to(self.config.device)
            out = net(x)[-1]
            if self.config.flip_input:
                out = out + flip(net(flip(x))[-1], is_label=True)
        return out.float().cpu().numpy()


def crop_frames(boxes_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face boxes (K, 4) -> face-alignment's crop centres (K, 2) px and scales (K,)."""
    size = boxes_px[:, 2:] - boxes_px[:, :2]
    centre = 0.5 * (boxes_px[:, :2] + boxes_px[:, 2:])
    centre[:, 1] -= CENTRE_Y_OFFSET * size[:, 1]
    return centre, size.sum(axis=1) / REFERENCE_SCALE


def decode_heatmaps(heatmaps: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (K, L, 64, 64) -> image points (K, L, 2) px and peak values (K, L).

    The peak cell, moved a quarter cell toward the larger neighbour on each axis (away
    from the border), at the cell centre; mapped back through the crop of side
    ``200 * scale`` around ``centre``: x_img = x_hm * side / 64 + centre - side / 2.
    """
    K, L, H, W = heatmaps.shape
    flat = heatmaps.reshape(K, L, H * W)
    idx = np.argmax(flat, axis=-1)
    peak = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    py, px = np.divmod(idx, W)
    inner = (px > 0) & (px < W - 1) & (py > 0) & (py < H - 1)
    k, l = np.meshgrid(np.arange(K), np.arange(L), indexing="ij")
    right, left = heatmaps[k, l, py, np.minimum(px + 1, W - 1)], heatmaps[k, l, py, np.maximum(px - 1, 0)]
    down, up = heatmaps[k, l, np.minimum(py + 1, H - 1), px], heatmaps[k, l, np.maximum(py - 1, 0), px]
    hm_x = px + 0.5 + np.where(inner, 0.25 * np.sign(right - left), 0.0)
    hm_y = py + 0.5 + np.where(inner, 0.25 * np.sign(down - up), 0.0)
    side = (SCALE_UNIT_PX * scale)[:, None]
    points = np.stack([hm_x * side / W + centre[:, None, 0] - side / 2,
                       hm_y * side / H + centre[:, None, 1] - side / 2], axis=-1)
    return points, peak.astype(np.float64)
