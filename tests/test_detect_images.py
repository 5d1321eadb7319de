"""The image backends on real pixels: dlib and Face Mesh on a photograph, FAN through its real loading path."""
import numpy as np
import pytest

from annotate.detect.base import ViewInput

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()                               # (512, 512, 3) RGB photograph


def test_dlib_finds_the_astronauts_face_with_plausible_landmarks(astronaut):
    from annotate.detect.dlib68 import DlibDetector

    dlib68 = DlibDetector()
    faces = dlib68.detect(ViewInput(0, 0, astronaut, np.zeros((0, 4))))
    assert len(faces) >= 1
    best = int(np.argmax(faces.confidence[:, 0]))
    pts, box = faces.points_px[best], faces.boxes_px[best]
    # The face: upper middle of the photograph (her face spans about x 170-270, y 60-180).
    centre = 0.5 * (box[:2] + box[2:])
    assert 170 < centre[0] < 270 and 60 < centre[1] < 180
    eyes_y, nose, mouth_y = pts[36:48, 1].mean(), pts[30], pts[48:60, 1].mean()
    assert eyes_y < nose[1] < mouth_y
    assert pts[36:42, 0].mean() < pts[42:48, 0].mean()            # subject's right eye on the image left
    size = box[2:] - box[:2]
    assert ((pts >= box[:2] - 0.3 * size) & (pts <= box[2:] + 0.3 * size)).all()
    # Searching only a head box around the face finds the same landmarks.
    again = dlib68.detect(ViewInput(0, 0, astronaut, (box + np.r_[-size, size] * 0.5)[None]))
    assert np.abs(again.points_px[int(np.argmax(again.confidence[:, 0]))] - pts).max() < 3


def test_facemesh_places_the_ibug_points_where_dlib_does_on_a_frontal_face(astronaut):
    """The shipped Face Mesh model through the TFLite runtime, its crop and its iBUG table:
    on a frontal photograph the 68 points agree with dlib's (trained on such faces)."""
    from annotate.detect.dlib68 import DlibDetector
    from annotate.detect.facemesh import IBUG_FROM_MESH, NUM_MESH, FaceMeshDetector

    assert len(set(IBUG_FROM_MESH.tolist())) == 68 and IBUG_FROM_MESH.max() < NUM_MESH
    mesh = FaceMeshDetector()
    view = ViewInput(0, 0, astronaut, np.zeros((0, 4)))
    faces = mesh.find_faces(view)
    best = int(np.argmax(faces.score))
    ours = mesh.landmarks_in(astronaut, faces).points_px[best]
    theirs = DlibDetector(face_detector=mesh.face_detector).landmarks_in(astronaut, faces).points_px[best]
    eye_span = np.linalg.norm(theirs[36:42].mean(0) - theirs[42:48].mean(0))
    inner = np.r_[17:68]                  # brows, nose, eyes, lips (the jaw is a silhouette for dlib)
    error = np.linalg.norm(ours[inner] - theirs[inner], axis=1) / eye_span
    assert np.median(error) < 0.1 and np.percentile(error, 90) < 0.2, np.round(error, 2)
    for a, b in ((36, 42), (39, 45)):                               # eyes: under 5% of their span
        assert np.linalg.norm(ours[a:a + 6].mean(0) - theirs[a:a + 6].mean(0)) < 0.05 * eye_span
    # Turned and mirrored, the points follow the face (the crop is levelled by the eyes).
    mirrored = mesh.landmarks_in(astronaut[:, ::-1].copy(), mesh.find_faces(ViewInput(0, 0, astronaut[:, ::-1].copy(),
                                                                                      np.zeros((0, 4)))))
    flipped = mirrored.points_px[int(np.argmax(mirrored.confidence[:, 0]))]
    assert flipped[36:42, 0].mean() < flipped[42:48, 0].mean()     # still subject's right eye on the left
    assert abs((511 - flipped[30, 0]) - ours[30, 0]) < 0.1 * eye_span


def test_facemesh_crop_is_levelled_by_the_eyes():
    from annotate.detect.facemesh import INPUT_PX, crop_to_image

    box = np.array([[100.0, 200.0, 180.0, 260.0]])
    level = crop_to_image(box, np.array([[[120, 220], [160, 220], [140, 235], [125, 245], [155, 245]]], float), 1.5)
    # The crop's centre is the box centre, its side 1.5 x the longer box side, not turned.
    assert np.allclose(level[0] @ [INPUT_PX / 2, INPUT_PX / 2, 1], [140, 230])
    assert np.allclose(level[0][:, :2], np.eye(2) * 120 / INPUT_PX)
    tilted = crop_to_image(box, np.array([[[120, 220], [160, 260]] + [[np.nan, np.nan]] * 3], float), 1.5)
    assert np.isclose(np.degrees(np.arctan2(tilted[0, 1, 0], tilted[0, 0, 0])), 45)
    plain = crop_to_image(box, np.full((1, 5, 2), np.nan), 1.5)      # no keypoints: not turned
    assert np.allclose(plain, level)


def test_facemesh_crop_from_a_mesh_is_its_vertices_box_levelled_by_the_eye_corners():
    from annotate.detect.facemesh import INPUT_PX, LEFT_EYE_OUTER, NUM_MESH, RIGHT_EYE_OUTER, crop_from_mesh

    rng = np.random.default_rng(0)
    mesh = rng.uniform([300, 100], [340, 160], size=(1, NUM_MESH, 2))
    mesh[0, :2] = [[300, 100], [340, 160]]                           # the box: 40 x 60 about (320, 130)
    mesh[0, RIGHT_EYE_OUTER], mesh[0, LEFT_EYE_OUTER] = [310, 120], [330, 140]      # turned by 45 degrees
    A = crop_from_mesh(mesh, 1.5)[0]
    assert np.allclose(A @ [INPUT_PX / 2, INPUT_PX / 2, 1], [320, 130])
    assert np.isclose(np.linalg.norm(A[:, 0]) * INPUT_PX, 90)                   # 1.5 x the longer side
    assert np.isclose(np.degrees(np.arctan2(A[1, 0], A[0, 0])), 45)


def test_facemesh_recropping_from_its_mesh_forgets_a_misplaced_detector_box(astronaut):
    """With a detector box shifted by a fifth of its side and a third too large, one mesh
    run lands away from the run on the detector's own box; the re-crops from the mesh
    (roi_passes 3, the default) bring it back within 2% of the eye span."""
    from annotate.detect.facemesh import FaceMeshConfig, FaceMeshDetector
    from annotate.detect.faces import FaceBoxes

    once = FaceMeshDetector(FaceMeshConfig(roi_passes=1, refine_eyes=False))
    recropped = FaceMeshDetector(FaceMeshConfig(refine_eyes=False), once.face_detector)
    faces = once.find_faces(ViewInput(0, 0, astronaut, np.zeros((0, 4))))
    best = int(np.argmax(faces.score))
    box, keypoints = faces.boxes_px[best], faces.keypoints_px[best:best + 1]
    side = box[2:] - box[:2]
    moved = FaceBoxes((box + np.r_[0.2 * side, 0.2 * side] + np.r_[-side, side] / 6)[None], faces.score[best:best + 1],
                      keypoints)
    reference = recropped.mesh_in(astronaut, FaceBoxes(box[None], faces.score[best:best + 1], keypoints))[0]
    eye_span = np.linalg.norm(reference[33] - reference[263])
    off_once = np.median(np.linalg.norm(once.mesh_in(astronaut, moved)[0] - reference, axis=1)) / eye_span
    off_recropped = np.median(np.linalg.norm(recropped.mesh_in(astronaut, moved)[0] - reference, axis=1)) / eye_span
    assert off_recropped < 0.02 and off_once > 2 * off_recropped, (off_once, off_recropped)


def test_fan_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from annotate.detect.fan import FAN_URL, FanDetector

    with pytest.raises(FileNotFoundError) as err:
        FanDetector()
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "2DFAN4-11f355bf06.pth.tar") in message
    assert FAN_URL in message and "TORCH_HOME" in message


def test_fan_loads_a_checkpoint_and_runs_on_an_image(tmp_path, monkeypatch, astronaut):
    """The real path: the checkpoint file face-alignment loads, its network, crops, decoding.

    The weights are random (made here), so the landmarks are meaningless; what is checked is
    that the file is found and loaded, and that the output has the promised form.
    """
    import torch
    from face_alignment.models import FAN

    from annotate.detect.fan import FanDetector, crop_frames, fan_checkpoint_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    path = fan_checkpoint_path()
    path.parent.mkdir(parents=True)
    torch.save(FAN(4).state_dict(), path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        head = np.array([[140.0, 40.0, 300.0, 200.0]])
        faces = FanDetector().detect(ViewInput(0, 0, astronaut, head))
    finally:
        torch.set_num_threads(threads)
    assert faces.points_px.shape == (1, 68, 2) and faces.confidence.shape == (1, 68)
    assert np.isfinite(faces.points_px).all() and np.isfinite(faces.confidence).all()
    # Points come from the crop around the face box (its side is 200 * scale px).
    centre, scale = crop_frames(faces.boxes_px)
    assert (np.abs(faces.points_px[0] - centre[0]) <= 100.0 * scale[0] + 1).all()


def test_fan_heatmap_decoding_inverts_face_alignments_crop():
    """A dot drawn in the image, cropped the way face-alignment crops, lands in a heatmap
    cell that decodes back to the dot (within a heatmap cell)."""
    from face_alignment.utils import crop

    from annotate.detect.fan import crop_frames, decode_heatmaps

    image = np.zeros((480, 640, 3), np.uint8)
    dot = np.array([331.0, 212.0])
    image[int(dot[1]) - 1:int(dot[1]) + 2, int(dot[0]) - 1:int(dot[0]) + 2] = 255
    box = np.array([[260.0, 150.0, 400.0, 300.0]])
    centre, scale = crop_frames(box)
    patch = crop(image, centre[0], scale[0]).astype(np.float32).mean(-1)          # (256, 256)
    heat = patch.reshape(64, 4, 64, 4).mean(axis=(1, 3))                         # 64 x 64 cells
    points, peak = decode_heatmaps(np.repeat(heat[None, None], 68, axis=1), centre, scale)
    cell = 200.0 * scale[0] / 64
    assert np.abs(points[0, 0] - dot).max() < cell and peak[0, 0] > 0


def test_face_detectors_find_the_astronauts_face(astronaut):
    """MTCNN (weights shipped) and dlib's HOG, by name; MTCNN's keypoints in anatomical order."""
    from annotate.detect.faces import make_face_detector

    for name in ("mtcnn", "dlib_hog"):
        faces = make_face_detector(name).detect(astronaut)
        best = int(np.argmax(faces.score))
        centre = 0.5 * (faces.boxes_px[best, :2] + faces.boxes_px[best, 2:])
        assert 170 < centre[0] < 270 and 60 < centre[1] < 180, name
        assert 0 < faces.score[best] <= 1
    kp = make_face_detector("mtcnn").detect(astronaut).keypoints_px[0]
    assert kp[0, 0] < kp[1, 0] and kp[3, 0] < kp[4, 0]                  # image-left eye and mouth corner first
    assert kp[:2, 1].max() < kp[2, 1] < kp[3:, 1].min()                 # eyes above the nose above the mouth
    with pytest.raises(ValueError, match="unknown detect.face_detector"):
        make_face_detector("yunet")


def test_iris_crop_maps_level_the_corners_and_mirror_the_left_eye():
    from annotate.detect.iris import EYE_CORNERS_MESH, INPUT_PX, eye_crop_maps, to_image

    mesh = np.zeros((2, 468, 2))
    mesh[0, EYE_CORNERS_MESH[0]] = [[100, 50], [140, 50]]          # right eye, level, 40 px
    mesh[0, EYE_CORNERS_MESH[1]] = [[160, 50], [160, 90]]          # left eye, turned 90 degrees
    mesh[1] = np.nan                                               # no mesh: no crop
    maps = eye_crop_maps(mesh, 2.3)
    scale = 2.3 * 40 / INPUT_PX
    # The crop's centre is the corners' midpoint, its side 2.3 corner distances.
    assert np.allclose(to_image(np.array([[32.0, 32.0]]), maps[0]), [[[120, 50]], [[160, 70]]])
    assert np.allclose(maps[0, 0, :, :2], np.eye(2) * scale)
    # The left eye's crop is mirrored: its model x runs against the corner line (362 -> 263).
    assert np.allclose(maps[0, 1, :, :2], np.array([[0, -1], [-1, 0]]) * scale)
    assert np.isnan(maps[1]).all()


def test_iris_model_on_the_left_eye_is_its_model_on_the_mirrored_right_eye(astronaut):
    """The convention test of the mirrored crop: the left eye of the mirrored photograph is
    the right eye of the photograph, so its refined points are the mirror images of the
    right eye's (exactly, up to the crop's interpolation)."""
    from annotate.detect.facemesh import FaceMeshDetector
    from annotate.detect.iris import EYE_CORNERS_MESH, IrisModel

    detector = FaceMeshDetector()
    faces = detector.find_faces(ViewInput(0, 0, astronaut, np.zeros((0, 4))))
    mesh = detector.mesh_in(astronaut, faces)[[int(np.argmax(faces.score))]]
    width = astronaut.shape[1]
    mirror = np.array([width - 1.0, 0.0])                           # x -> W - 1 - x, pixel centres
    mirrored_mesh = np.full_like(mesh, np.nan)
    (a, b), (c, d) = EYE_CORNERS_MESH
    mirrored_mesh[:, [c, d]] = np.abs(mirror - mesh[:, [b, a]])     # right eye's corners, mirrored
    iris = IrisModel()
    contour, pupil = iris.eyes_in(astronaut, mesh)
    contour_m, pupil_m = iris.eyes_in(astronaut[:, ::-1].copy(), mirrored_mesh)
    assert np.isnan(contour_m[0, 0]).all()                          # no corners: no crop
    assert np.abs(np.abs(mirror - contour_m[0, 1]) - contour[0, 0]).max() < 0.05
    assert np.abs(np.abs(mirror - pupil_m[0, 1]) - pupil[0, 0]).max() < 0.05


def test_iris_refinement_keeps_the_eyes_and_adds_the_pupils(astronaut):
    """With refine_eyes (the default) the eyes move by a few percent of the eye span on a
    frontal photograph, every other point (brows included) is the mesh's, and the pupils
    (68 right, 69 left) are the iris centres, inside their eyes."""
    from annotate.detect.facemesh import FaceMeshConfig, FaceMeshDetector

    view = ViewInput(0, 0, astronaut, np.zeros((0, 4)))
    refined, plain = FaceMeshDetector(), FaceMeshDetector(FaceMeshConfig(refine_eyes=False))
    faces = refined.find_faces(view)
    best = int(np.argmax(faces.score))
    ours = refined.landmarks_in(astronaut, faces).points_px[best]
    before = plain.landmarks_in(astronaut, faces).points_px[best]
    assert ours.shape == (70, 2) and before.shape == (68, 2)
    span = np.linalg.norm(before[36:42].mean(0) - before[42:48].mean(0))
    assert np.linalg.norm(ours[36:48] - before[36:48], axis=1).max() < 0.06 * span
    assert np.array_equal(ours[:36], before[:36]) and np.array_equal(ours[48:68], before[48:68])
    for pupil, eye in ((68, ours[36:42]), (69, ours[42:48])):
        assert (eye.min(0) <= ours[pupil]).all() and (ours[pupil] <= eye.max(0)).all()
        assert np.linalg.norm(ours[pupil] - eye.mean(0)) < 0.05 * span
