"""Head crops cut and JPEG-encoded with torch: on a CUDA GPU, through nvJPEG.

On the CPU (annotate.media.crops + annotate.media.jpeg) every 256 px head costs about
0.2 ms of cutting and 0.15 ms of JPEG encoding, which is as much as decoding a cheap
1080p frame (docs/benchmarks.md). With ``dataset.crop_device: cuda`` the crop
stage hands each decoded frame to ``TorchCropEncoder`` instead: the three planes go to the
device once, every head of the frame is cut by one ``torchvision.ops.roi_align`` call for
luma and one for both chroma planes, converted to RGB there, and the frame's crops are
JPEG-encoded as one batch (``torchvision.io.encode_jpeg`` on CUDA tensors uses nvJPEG).
The CPU then only decodes the video and copies planes and JPEG bytes.

Same geometry as the CPU path: the window (x0, y0, side) of ``crop_windows`` covers the
continuous span [x0, x0 + side) and ``roi_align(aligned=True)`` samples it at
x0 + (j + 0.5) side / size - 0.5, which is ``crop_transforms``' mapping; shrinking
averages ceil(side / size)^2 bilinear samples per output pixel (the CPU path's
bilinear-then-area). Pixels outside the image get ``spec.pad_rgb``. Results match the
CPU path to a few grey levels, not bit for bit (the chroma goes through RGB once more).

``device='torch-cpu'`` runs the same code on the CPU (much slower than the OpenCV path):
it is how the tests check this path on machines without a GPU. The CUDA path itself has
not run here (no GPU was lent to this work). torchvision marks its JPEG codecs deprecated
from 0.29 in favour of TorchCodec; this module is the one place to change when they go.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np

from annotate.media.crops import CropSpec, pad_colour_yuv

# Accepted values of dataset.crop_device, besides "cpu" (the OpenCV + libjpeg-turbo path).
TORCH_CPU = "torch-cpu"


def is_torch_device(crop_device: str) -> bool:
    """True for the devices this module serves: 'cuda', 'cuda:N' and 'torch-cpu'."""
    return crop_device == TORCH_CPU or crop_device == "cuda" or crop_device.startswith("cuda:")


def check_crop_device(crop_device: str) -> None:
    """Raise ValueError with the reason when ``crop_device`` cannot be used on this machine."""
    if crop_device == "cpu":
        return
    if not is_torch_device(crop_device):
        raise ValueError(f"dataset.crop_device {crop_device!r}: expected 'cpu', 'cuda', 'cuda:N' or '{TORCH_CPU}'")
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as err:
        raise ValueError(f"dataset.crop_device {crop_device!r} needs torch and torchvision: {err}") from err
    if crop_device == TORCH_CPU:
        return
    if not torch.cuda.is_available():
        raise ValueError(f"dataset.crop_device is {crop_device!r} but torch sees no CUDA device "
                         "(torch.cuda.is_available() is False); use 'cpu'")
    index = int(crop_device.split(":")[1]) if ":" in crop_device else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"dataset.crop_device is {crop_device!r} but only {torch.cuda.device_count()} "
                         "CUDA device(s) are visible")


class TorchCropEncoder:
    """Cuts and JPEG-encodes every head of a frame on one torch device (see the module doc).

    One per camera worker; calls from several workers share the device, and the encoding
    itself is serialised (the nvJPEG handle behind torchvision is process-wide).
    """

    _encode_lock = threading.Lock()

    def __init__(self, spec: CropSpec, quality: int, crop_device: str):
        import torch

        check_crop_device(crop_device)
        self.spec, self.quality = spec, int(quality)
        self.device = torch.device("cpu" if crop_device == TORCH_CPU else crop_device)

    def encode(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], windows: np.ndarray,
               full_range: bool = False) -> list[bytes]:
        """JPEG bytes of each (x0, y0, side) window (k, 3) of BT.601 planes Y (H, W), U, V (H/2, W/2)."""
        if len(windows) == 0:
            return []
        rgb = self.crops_rgb(planes, windows, full_range)
        return self._encode_jpeg(rgb)

    def crops_rgb(self, planes, windows: np.ndarray, full_range: bool = False):
        """(k, 3, size, size) uint8 RGB crops on the device (full-range BT.601, as JPEG stores)."""
        import torch
        from torchvision.ops import roi_align

        windows = np.asarray(windows, dtype=np.int64).reshape(-1, 3)
        size, half = self.spec.size, self.spec.size // 2
        h, w = planes[0].shape
        # Pad once by the farthest any window reaches outside, so roi_align never samples the
        # border (where it clamps) and padded pixels get the pad colour exactly.
        x0, y0, side = windows[:, 0], windows[:, 1], windows[:, 2]
        pad = int(max(0, -x0.min(), -y0.min(), (x0 + side).max() - w, (y0 + side).max() - h))
        pad += pad % 2                                        # whole chroma samples
        pad_y, pad_u, pad_v = pad_colour_yuv(tuple(self.spec.pad_rgb), full_range)
        luma = self._upload(planes[0], pad, pad_y)[None, None]                        # (1, 1, H', W')
        chroma = torch.stack([self._upload(planes[1], pad // 2, pad_u),
                              self._upload(planes[2], pad // 2, pad_v)])[None]       # (1, 2, H'/2, W'/2)
        boxes = torch.zeros((len(windows), 5), dtype=torch.float32)
        boxes[:, 1] = torch.from_numpy(x0 + pad).float()
        boxes[:, 2] = torch.from_numpy(y0 + pad).float()
        boxes[:, 3] = boxes[:, 1] + torch.from_numpy(side).float()
        boxes[:, 4] = boxes[:, 2] + torch.from_numpy(side).float()
        boxes = boxes.to(self.device)
        y = roi_align(luma, boxes, (size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)[:, 0]
        uv = roi_align(chroma, boxes, (half, half), spatial_scale=0.5, sampling_ratio=-1, aligned=True)
        uv = torch.nn.functional.interpolate(uv, size=(size, size), mode="bilinear", align_corners=False)
        if not full_range:                                    # video range -> JPEG's full range
            y = (y - 16.0) * (255.0 / 219.0)
            uv = (uv - 128.0) * (255.0 / 224.0)
        else:
            uv = uv - 128.0
        u, v = uv[:, 0], uv[:, 1]
        rgb = torch.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], dim=1)
        return rgb.round_().clamp_(0, 255).to(torch.uint8)

    def _upload(self, plane: np.ndarray, pad: int, value: int):
        """One uint8 plane as a float32 device tensor, padded by ``pad`` px with ``value``."""
        import torch

        t = torch.from_numpy(np.ascontiguousarray(plane)).to(self.device, non_blocking=False).float()
        if pad:
            t = torch.nn.functional.pad(t[None], (pad, pad, pad, pad), value=float(value))[0]
        return t

    def _encode_jpeg(self, rgb) -> list[bytes]:
        from torchvision.io import encode_jpeg

        with self._encode_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)      # said in the module doc, once
            encoded = encode_jpeg(list(rgb.contiguous()), quality=self.quality)
        return [bytes(t.cpu().numpy().tobytes()) for t in encoded]
