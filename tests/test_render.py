"""Ray-cast rendering through distorted cameras, landmark visibility and the videos."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from annotate.geometry.cameras import CameraRig
from annotate.head import head_mesh as hm
from annotate.media.video_writer import video_path, video_rate
from annotate.synth import render as rd
from annotate.synth.videos import render_videos
from tests import scenes
from tests.scenes import facing

DIST = np.array([-0.25, 0.18, 0.0005, 0.0008, -0.04])


def make_rig(centres, targets, size=(1920, 1080), f=1450.0, dist=DIST) -> CameraRig:
    """Cameras 00_02, 00_03, ... with the principal point a little off centre."""
    return scenes.make_rig(centres, targets, size, f, dist, principal_offset=(3.5, -2.5), first_index=2)


def person(mesh, pid, position, toward, scale=1.0) -> rd.RenderPerson:
    return rd.RenderPerson(pid, mesh, facing(position, toward), np.asarray(position, float), scale,
                           rd.make_palette((220, 170, 140), (50, 35, 25)))


def landmarks_world(p: rd.RenderPerson, face: np.ndarray) -> np.ndarray:
    return p.to_world(face)


def pixel_of(rig, camera_index, point_world) -> tuple[int, int]:
    """(row, col) of the pixel whose centre is nearest to the projection of a world point."""
    uv = rig.project_world(point_world)[camera_index]
    return int(round(uv[1])), int(round(uv[0]))


# Head off the optical axis (normalised radius ~0.4), where the lens distortion shifts
# the image by tens of pixels: a ray that ignored it would miss the features.
HEAD = np.array([38.0, -22.0, 100.0])


@pytest.fixture(scope="module")
def frontal(mesh):
    rig = make_rig([[0.0, 0.0, 0.0]], [[0.0, 0.0, 100.0]])
    p = person(mesh, 7, HEAD, [0.0, 0.0, 0.0])
    return rig, p, rd.render_view(rig, 0, [p])


def test_view_types_and_background(frontal):
    rig, p, view = frontal
    assert view.camera_name == "00_02"
    assert view.image.shape == (1080, 1920, 3) and view.image.dtype == np.uint8
    assert view.person_id.dtype == np.int16 and view.triangle_id.dtype == np.int32
    seen = view.person_id >= 0
    assert set(np.unique(view.person_id)) == {-1, 7}
    assert np.array_equal(seen, view.triangle_id >= 0)
    background = rd.background_image(1920, 1080)
    assert np.array_equal(view.image[~seen], background[~seen])
    assert 10_000 < seen.sum() < 60_000                   # a ~16 cm head at 1 m, f = 1450


def test_nose_tip_and_pupils_land_on_their_regions(frontal, face, mesh):
    rig, p, view = frontal
    lm = landmarks_world(p, face)
    for index, regions in ((30, {hm.NOSE}), (68, {hm.IRIS}), (69, {hm.IRIS}), (51, {hm.LIPS}),
                           (19, {hm.BROW}), (24, {hm.BROW})):
        row, col = pixel_of(rig, 0, lm[index])
        assert view.person_id[row, col] == 7, index
        assert mesh.triangle_region[view.triangle_id[row, col]] in regions, index


def test_rays_follow_the_lens_model_exactly(frontal):
    """Every hit point, projected with the project's distorted projection, lands on the
    centre of the pixel whose ray found it."""
    rig, p, _ = frontal
    scene = rd.FrameScene([p])
    box = rd.head_pixel_boxes(rig, [p])[0, 0]
    hits = scene.cast(rd.box_rays(rig, 0, box))
    col0, row0, col1, row1 = box
    cols, rows = np.meshgrid(np.arange(col0, col1), np.arange(row0, row1))
    hit = hits.person_index >= 0
    corners = p.vertices_world()[p.mesh.triangles[hits.triangle[hit]]]       # (n, 3, 3)
    u, v = hits.uv[hit, 0:1], hits.uv[hit, 1:2]
    points = (1 - u - v) * corners[:, 0] + u * corners[:, 1] + v * corners[:, 2]
    uv = rig.project_world(points)[0]
    err = np.hypot(uv[:, 0] - cols.ravel()[hit], uv[:, 1] - rows.ravel()[hit])
    assert hit.sum() > 10_000
    assert err.max() < 0.02


def _assert_box_holds_head(view, box, image_size):
    col0, row0, col1, row1 = box
    rows, cols = np.nonzero(view.person_id >= 0)
    width, height = image_size
    # No head pixel on a box edge, unless that edge is the image border.
    assert rows.min() > row0 or row0 == 0
    assert rows.max() < row1 - 1 or row1 == height
    assert cols.min() > col0 or col0 == 0
    assert cols.max() < col1 - 1 or col1 == width
    return len(rows)


def test_roi_box_contains_the_whole_head(frontal, mesh):
    rig, p, view = frontal
    box = rd.head_pixel_boxes(rig, [p])[0, 0]
    area = (box[2] - box[0]) * (box[3] - box[1])
    assert _assert_box_holds_head(view, box, (1920, 1080)) > 0.4 * area       # and tight
    # Close to the lens, off axis, where the distortion bends the bound's edges most.
    near = person(mesh, 1, [14.0, 7.0, 40.0], [0.0, 0.0, 0.0])
    view = rd.render_view(rig, 0, [near])
    _assert_box_holds_head(view, rd.head_pixel_boxes(rig, [near])[0, 0], (1920, 1080))


def test_back_of_head_shows_hair(mesh):
    rig = make_rig([[0.0, 0.0, 0.0]], [[0.0, 0.0, 100.0]])
    p = person(mesh, 3, HEAD, HEAD + [0.0, 0.0, 50.0])                # facing away
    view = rd.render_view(rig, 0, [p])
    row, col = pixel_of(rig, 0, p.t_world_head)
    assert view.person_id[row, col] == 3
    assert mesh.triangle_region[view.triangle_id[row, col]] == hm.HAIR
    hair = np.isin(mesh.triangle_region[view.triangle_id[view.person_id == 3]], [hm.HAIR])
    assert hair.mean() > 0.6


def test_front_head_occludes_and_hides_landmarks(mesh, face):
    rig = make_rig([[0.0, 0.0, 0.0]], [[0.0, 0.0, 100.0]])
    back = person(mesh, 1, [0.0, 0.0, 120.0], [0.0, 0.0, 0.0])
    front = person(mesh, 2, [-6.0, 2.0, 70.0], [0.0, 0.0, 0.0])
    view = rd.render_view(rig, 0, [back, front])
    lm = np.stack([landmarks_world(back, face), landmarks_world(front, face)])
    # The front head (world -x: image right) covers the back head's left eye.
    row, col = pixel_of(rig, 0, lm[0, 69])
    assert view.person_id[row, col] == 2
    visible = rd.landmark_visibility(rig, [back, front], lm)
    assert visible.shape == (1, 2, 70) and visible.dtype == bool
    assert not visible[0, 0, 69]
    assert visible[0, 1, [30, 36, 45, 68, 69]].all()          # the front face is in full view
    # Visibility agrees with what the rendering shows at each landmark's pixel.
    uv = rig.project_world(lm)[0]
    shown = view.person_id[np.round(uv[..., 1]).astype(int), np.round(uv[..., 0]).astype(int)]
    owner = np.array([[1], [2]])
    assert np.all(shown[visible[0]] == np.broadcast_to(owner, shown.shape)[visible[0]])
    hidden_by_other = (shown != owner) & (shown >= 0)
    assert hidden_by_other.sum() >= 5 and not visible[0][hidden_by_other].any()


def test_far_side_landmarks_are_self_occluded(mesh, face):
    head = np.array([0.0, 0.0, 100.0])
    p = person(mesh, 0, head, [0.0, 0.0, 0.0])
    right_of_subject = head - 80.0 * p.R_world_head[:, 0]          # on the subject's right (-x)
    rig = make_rig([[0.0, 0.0, 0.0], right_of_subject], [head, head])
    visible = rd.landmark_visibility(rig, [p], landmarks_world(p, face)[None])
    assert visible[0, 0].sum() >= 60                                  # frontal camera
    profile = visible[1, 0]
    assert profile[[0, 1, 2, 36, 68]].all()                           # right jaw, right eye
    assert not profile[[14, 15, 16, 45, 69]].any()                    # left jaw end, left eye


def test_landmarks_outside_view_are_not_visible(mesh, face):
    rig = make_rig([[0.0, 0.0, 0.0]], [[0.0, 0.0, 100.0]])
    behind = person(mesh, 0, [0.0, 0.0, -100.0], [0.0, 0.0, 0.0])
    aside = person(mesh, 1, [300.0, 0.0, 100.0], [0.0, 0.0, 0.0])     # far outside the image
    seen = person(mesh, 2, [0.0, 0.0, 100.0], [0.0, 0.0, 0.0])
    lm = np.stack([landmarks_world(q, face) for q in (behind, aside, seen)])
    lm[2, 30] = np.nan
    visible = rd.landmark_visibility(rig, [behind, aside, seen], lm)
    assert not visible[0, :2].any()
    assert not visible[0, 2, 30] and visible[0, 2, [36, 45, 51]].all()


def test_render_frame_renders_every_camera(mesh):
    heads = [np.array([-20.0, 0.0, 0.0]), np.array([20.0, 5.0, 10.0])]
    centres = [[0.0, 20.0, 280.0], [280.0, 40.0, 0.0], [-200.0, 0.0, -200.0]]
    rig = make_rig(centres, [[0.0, 0.0, 0.0]] * 3)
    people = [person(mesh, 10 + i, h, [0.0, 0.0, 300.0]) for i, h in enumerate(heads)]
    views = rd.render_frame(rig, people)
    assert [v.camera_name for v in views] == list(rig.names)
    for v in views:
        assert set(np.unique(v.person_id)) == {-1, 10, 11}
    only = rd.render_frame(rig, people, camera_indices=[2])
    assert len(only) == 1 and np.array_equal(only[0].image, views[2].image)


# ------------------------------------------------------------------------------- videos

SMALL = (320, 240)


def small_rig():
    return make_rig([[0.0, 0.0, 0.0], [60.0, 10.0, 20.0]], [[0.0, 0.0, 100.0]] * 2,
                    size=SMALL, f=300.0)


class MovingHead:
    """Frame source: a head sliding sideways and turning (picklable for the workers)."""

    def __init__(self, mesh, fail_at: int | None = None):
        self.mesh, self.fail_at = mesh, fail_at

    def __call__(self, k: int) -> list[rd.RenderPerson]:
        if k == self.fail_at:
            raise RuntimeError("scene generator failed")
        position = np.array([-12.0 + 6.0 * k, 0.0, 100.0])
        return [person(self.mesh, 0, position, [40.0 * np.sin(k), 0.0, 0.0])]


def decode(path) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return frames, rate


def test_videos_decode_to_the_rendered_frames(tmp_path, mesh):
    rig = small_rig()
    source = MovingHead(mesh)
    paths = render_videos(tmp_path, rig, source, 5, n_jobs=1, show_progress=False)
    assert [p.name for p in paths] == ["hd_00_02.mp4", "hd_00_03.mp4"]
    assert sorted(f.name for f in (tmp_path / "hdVideos").iterdir()) == ["hd_00_02.mp4", "hd_00_03.mp4"]
    for c, path in enumerate(paths):
        frames, rate = decode(path)
        assert rate == Fraction(30000, 1001)
        assert len(frames) == 5 and frames[0].shape == (SMALL[1], SMALL[0], 3)
        renders = [rd.render_view(rig, c, source(k)) for k in range(5)]
        for k, (frame, view) in enumerate(zip(frames, renders)):
            head = view.person_id >= 0
            assert head.sum() > 500
            diff = frame[head].astype(float).mean(axis=0) - view.image[head].astype(float).mean(axis=0)
            assert np.abs(diff).max() < 4.0, (c, k, diff)
            # frame k is sequence frame k: the head mask matches that frame's render best
            errors = [np.abs(frame.astype(float) - r.image).mean() for r in renders]
            assert int(np.argmin(errors)) == k


def test_parallel_writer_takes_an_iterable(tmp_path, mesh):
    rig = small_rig()
    source = MovingHead(mesh)
    frames = (source(k) for k in range(10))                          # longer than needed
    paths = render_videos(tmp_path, rig, frames, 3, n_jobs=2, show_progress=False)
    for path in paths:
        decoded, _ = decode(path)
        assert len(decoded) == 3


def test_failed_render_leaves_no_partial_file(tmp_path, mesh):
    with pytest.raises(RuntimeError, match="scene generator failed"):
        render_videos(tmp_path, small_rig(), MovingHead(mesh, fail_at=2), 4, n_jobs=1,
                         show_progress=False)
    assert list((tmp_path / "hdVideos").iterdir()) == []


def test_video_naming_and_rate():
    assert video_path("/x", "00_07").as_posix() == "/x/hdVideos/hd_00_07.mp4"
    assert video_rate(29.97) == Fraction(30000, 1001)
    assert video_rate(25) == Fraction(25)
