"""The torch crop path (annotate.media.torch_crops), run on the CPU ('torch-cpu').

The CUDA device is the same code on another device; it is not exercised here (no GPU).
"""
import cv2
import numpy as np
import pytest
import torch

from annotate.config import resolve_config
from annotate.media.crops import CropSpec, apply_transform, crop_rgb, crop_transforms, crop_windows
from annotate.media.jpeg import decode_jpeg_rgb
from annotate.media.torch_crops import TORCH_CPU, TorchCropEncoder, check_crop_device, is_torch_device
from tests.test_crops import H, W, centroid, dot_image, rgb_to_i420_planes


def torch_crop(rgb: np.ndarray, A: np.ndarray, spec: CropSpec) -> np.ndarray:
    """(size, size, 3) RGB crop of an RGB image through the torch path, as the stage gets it
    from video planes (limited range), without the JPEG step."""
    encoder = TorchCropEncoder(spec, 95, TORCH_CPU)
    window = crop_windows(A[None], spec.size)
    return encoder.crops_rgb(rgb_to_i420_planes(rgb), window)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("box", [[300, 150, 360, 210], [200, 100, 420, 320], [280, 160, 300, 180]])
def test_blobs_land_where_the_stored_transform_says(box):
    """Enlarging, shrinking and strong enlarging, as for the CPU path: a blob's centroid in
    the crop is the transform of its full-frame position."""
    spec = CropSpec(size=128, margin=0.1)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    A = crop_transforms(np.array([box], float), spec)[0]
    scale = A[0, 0]
    for p in ([cx + 0.3, cy - 0.4], [box[0] + 4.7, box[1] + 5.2]):
        crop = torch_crop(dot_image([p]), A, spec)
        want = apply_transform(A, np.array(p))
        got = centroid(crop[:, :, 1], want, radius=max(4, int(7 * scale)))
        assert np.abs(got - want).max() < 0.15 + 0.05 * scale, (got, want)


def test_jpegs_match_the_cpu_path_including_padding():
    rng = np.random.default_rng(0)
    rgb = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    spec = CropSpec(size=96, margin=0.1, pad_rgb=(255, 0, 0))
    boxes = np.array([[200.0, 100.0, 290.0, 190.0], [-30.0, -20.0, 40.0, 50.0], [560.0, 300.0, 700.0, 420.0]])
    A = crop_transforms(boxes, spec)
    jpegs = TorchCropEncoder(spec, 95, TORCH_CPU).encode(rgb_to_i420_planes(rgb), crop_windows(A, spec.size))
    assert len(jpegs) == 3
    for jpeg, a in zip(jpegs, A):
        got = decode_jpeg_rgb(jpeg).astype(int)
        want = crop_rgb(rgb, a, spec).astype(int)
        assert got.shape == (96, 96, 3)
        assert np.abs(got - want).mean() < 4.0
    corner = decode_jpeg_rgb(jpegs[1])[:8, :8].reshape(-1, 3).mean(axis=0)     # outside the image: pad colour
    assert corner[0] > 230 and corner[1:].max() < 30


def test_no_windows_no_work():
    planes = rgb_to_i420_planes(np.zeros((H, W, 3), np.uint8))
    assert TorchCropEncoder(CropSpec(), 90, TORCH_CPU).encode(planes, np.zeros((0, 3), np.int64)) == []


def test_devices_are_checked_with_a_reason():
    assert is_torch_device("cuda") and is_torch_device("cuda:1") and is_torch_device(TORCH_CPU)
    assert not is_torch_device("cpu")
    check_crop_device("cpu")
    check_crop_device(TORCH_CPU)
    with pytest.raises(ValueError, match="expected 'cpu', 'cuda'"):
        check_crop_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            check_crop_device("cuda")
    with pytest.raises(ValueError, match="CUDA device"):
        check_crop_device("cuda:99")


def test_config_rejects_an_unknown_device():
    assert resolve_config({"dataset": {"crop_device": "cuda:0"}})["dataset"]["crop_device"] == "cuda:0"
    with pytest.raises(Exception, match="crop_device|gpu"):
        resolve_config({"dataset": {"crop_device": "gpu"}})
