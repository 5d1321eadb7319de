"""Head crops: the stored transform is exactly where the pixels went, in every path."""
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from annotate.datasets.build import encode_crops
from annotate.media.crops import (CropSpec, _resize_square, apply_transform, crop_fraction_inside, crop_rgb,
                                  crop_transforms, crop_windows, crop_yuv420, rgb_to_yuv601_limited, square_windows,
                                  transform_boxes, window_of)
from annotate.media.jpeg import decode_jpeg_rgb, encode_jpeg_rgb, encode_jpeg_yuv420
from annotate.media.video import iter_video_frames

W, H = 640, 360


def dot_image(points, value=255) -> np.ndarray:
    """Grey RGB image with a small Gaussian blob at each (u, v) (sub-pixel centres)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.full((H, W), 40.0)
    for u, v in points:
        img += (value - 40) * np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 2.0 ** 2))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


def centroid(channel: np.ndarray, near, radius=8) -> np.ndarray:
    x0, y0 = int(round(near[0])), int(round(near[1]))
    patch = channel[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1].astype(np.float64)
    patch = np.clip(patch - np.median(channel), 0, None)
    yy, xx = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    return np.array([(patch * xx).sum(), (patch * yy).sum()]) / patch.sum()


def rgb_to_i420_planes(rgb):
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y = i420[:H]
    chroma = i420[H:].reshape(-1)
    q = H * W // 4
    return y, chroma[:q].reshape(H // 2, W // 2), chroma[q:].reshape(H // 2, W // 2)


def test_windows_are_square_even_and_cover_the_box():
    boxes = np.array([[100.3, 50.2, 180.9, 140.1], [10, 10, 43, 20], [np.nan] * 4])
    win = square_windows(boxes, margin=0.15)
    x0, y0, side = win[0]
    assert side % 2 == 0 and x0 % 2 == 0 and y0 % 2 == 0
    assert side >= (140.1 - 50.2) * 1.3 - 2
    assert x0 <= 100.3 and x0 + side >= 180.9 and y0 <= 50.2 and y0 + side >= 140.1
    assert np.isnan(win[2]).all()


@pytest.mark.parametrize("box", [[300, 150, 360, 210], [200, 100, 420, 320], [280, 160, 300, 180]])
def test_transform_maps_points_onto_their_pixels(box):
    """Enlarging, shrinking (area averaging) and strong enlarging: a blob's centroid in the
    crop is the stored transform of its full-frame position (to a small fraction of a px)."""
    spec = CropSpec(size=128, margin=0.1)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    pts = np.array([[cx + 0.3, cy - 0.4], [box[0] + 4.7, box[1] + 5.2]])
    A = crop_transforms(np.array([box], float), spec)[0]
    scale = A[0, 0]
    for p in pts:                                    # one blob per image: no overlapping tails
        crop = crop_rgb(dot_image([p]), A, spec)
        want = apply_transform(A, p)
        got = centroid(crop[:, :, 0], want, radius=max(4, int(7 * scale)))
        assert np.abs(got - want).max() < 0.1 + 0.05 * scale, (got, want)


def test_yuv_planes_crop_equals_rgb_crop():
    rng = np.random.default_rng(0)
    rgb = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    spec = CropSpec(size=96)
    A = crop_transforms(np.array([[200.0, 100.0, 290.0, 190.0]]), spec)[0]
    y, u, v = crop_yuv420(rgb_to_i420_planes(rgb), A, spec)
    via_planes = cv2.cvtColor(np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(-1, 96),
                              cv2.COLOR_YUV2RGB_I420)
    direct = crop_rgb(rgb, A, spec)
    assert np.abs(via_planes.astype(int) - direct).mean() < 3.0
    # And through JPEG straight from the planes (limited range stretched to JPEG's full range).
    decoded = decode_jpeg_rgb(encode_jpeg_yuv420(y, u, v, 95))
    assert np.abs(decoded.astype(int) - direct).mean() < 4.0
    # The stage's path: range stretched on the (smaller) source window, then resized.
    planes_full = crop_yuv420(rgb_to_i420_planes(rgb), A, spec, to_full_range=True)
    decoded_full = decode_jpeg_rgb(encode_jpeg_yuv420(*planes_full, quality=95, full_range=True))
    assert np.abs(decoded_full.astype(int) - direct).mean() < 4.0
    assert np.abs(decoded_full.astype(int) - decoded).mean() < 1.5


def test_padding_outside_the_image_and_fraction_inside():
    spec = CropSpec(size=64, margin=0.0, pad_rgb=(255, 0, 0))
    rgb = np.full((H, W, 3), 100, np.uint8)
    A = crop_transforms(np.array([[-20.0, -20.0, 20.0, 20.0]]), spec)       # a quarter inside
    crop = crop_rgb(rgb, A[0], spec)
    assert (crop[:16, :16] == (255, 0, 0)).all() and (crop[40:, 40:] == 100).all()
    assert crop_fraction_inside(A, W, H, 64)[0] == pytest.approx(0.25, abs=0.03)
    y, u, v = crop_yuv420(rgb_to_i420_planes(rgb), A[0], spec)
    red = rgb_to_yuv601_limited((255, 0, 0))
    assert (y[:16, :16] == red[0]).all() and (u[:8, :8] == red[1]).all() and (v[:8, :8] == red[2]).all()
    full = crop_transforms(np.array([[100.0, 100.0, 140.0, 140.0]]), spec)
    assert crop_fraction_inside(full, W, H, 64)[0] == pytest.approx(1.0)


def test_boxes_map_with_the_transform_and_window_round_trips():
    spec = CropSpec(size=256)
    boxes = np.array([[100.0, 40.0, 180.0, 130.0], [500.5, 200.25, 600.0, 310.0]])
    A = crop_transforms(boxes, spec)
    mapped = transform_boxes(A, boxes)
    for i in range(2):
        np.testing.assert_allclose(mapped[i, :2], apply_transform(A[i], boxes[i, :2]))
        assert 0 <= mapped[i, 0] < mapped[i, 2] <= 256 and 0 <= mapped[i, 1] < mapped[i, 3] <= 256
        x0, y0, side = window_of(A[i], 256)
        np.testing.assert_allclose(square_windows(boxes[i:i + 1], spec.margin)[0], [x0, y0, side])


def test_crop_spec_validation():
    with pytest.raises(ValueError):
        CropSpec(size=255)
    with pytest.raises(ValueError):
        CropSpec(margin=-0.1)


def test_jpeg_round_trip():
    img = dot_image([(50, 50)])
    data = encode_jpeg_rgb(img, 95)
    assert np.abs(decode_jpeg_rgb(data).astype(int) - img).mean() < 2
    with pytest.raises(ValueError):
        decode_jpeg_rgb(b"\x00" * 100)


def test_vectorised_windows_equal_the_single_ones():
    spec = CropSpec(size=256)
    boxes = np.array([[100.3, 50.2, 180.9, 140.1], [-30.0, 900.0, 170.0, 1100.0], [10, 10, 43, 20]])
    A = crop_transforms(boxes, spec)
    windows = crop_windows(A, spec.size)
    assert windows.dtype == np.int64
    for a, w in zip(A, windows):
        assert tuple(w) == window_of(a, spec.size)
    np.testing.assert_array_equal(windows, square_windows(boxes, spec.margin))


@pytest.mark.parametrize("side", [258, 330, 400, 600])
def test_two_step_shrink_matches_area_averaging(side):
    """Shrinking goes bilinear up to a whole multiple of the size, then whole-factor area
    averaging (OpenCV's fast path): within 2 grey levels of OpenCV's general area resize."""
    rng = np.random.default_rng(side)
    img = cv2.GaussianBlur(rng.integers(0, 256, (side, side), dtype=np.uint8), (0, 0), 2)
    area = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA).astype(int)
    got = _resize_square(img, 256)
    assert got.shape == (256, 256) and got.dtype == np.uint8
    assert np.abs(got - area).max() <= 3 and np.abs(got - area).mean() < 0.5


def smooth_video(path, rgb: np.ndarray) -> None:
    """Two frames of ``rgb`` as H.264 yuv420p (libx264: BT.601, limited range)."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(30), options={"preset": "ultrafast", "crf": "12"})
        s.width, s.height, s.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
        for k in range(2):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = k
            c.mux(s.encode(f))
        c.mux(s.encode(None))


def test_stage_crops_from_video_planes_match_the_rgb_path(tmp_path):
    """The stage's crops (cut from limited-range 4:2:0 planes, stretched to JPEG's full range,
    encoded from the planes) against the plain path: the whole decoded frame converted to
    RGB, cropped, no JPEG. Colours agree to about one grey level on average (a missing or
    doubled range stretch is off by about seven) and everywhere within JPEG q90's error."""
    rng = np.random.default_rng(3)
    rgb = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 4)
    smooth_video(tmp_path / "smooth.mp4", rgb)
    frame = next(iter(iter_video_frames(tmp_path / "smooth.mp4", [0])))
    assert frame.yuv420() is not None and frame.colour.bt601 and not frame.colour.full_range
    spec = CropSpec(size=128)
    boxes = np.array([[200.0, 100.0, 290.0, 190.0], [40.0, 40.0, 300.0, 300.0], [580.0, 300.0, 660.0, 380.0]])
    A = crop_transforms(boxes, spec)
    jpegs = encode_crops(frame, A, crop_windows(A, spec.size), spec, 90)
    for a, data in zip(A, jpegs):
        diff = np.abs(decode_jpeg_rgb(data).astype(int) - crop_rgb(frame.rgb(), a, spec))
        assert diff.mean() < 2.0
        # Away from the padding edge (the last crop's), where 4:2:0 chroma bleeds across it.
        x1, y1 = np.floor(apply_transform(a, [W - 0.5, H - 0.5]) - 4).astype(int)
        assert diff[:y1, :x1].max() <= 20
