"""The closed head mesh: topology, landmarks on the surface, regions where they belong."""
from __future__ import annotations


import numpy as np
import pytest
from scipy.spatial import ConvexHull

from annotate.head import head_mesh as hm
from annotate.core.open3d_loader import open3d_module
from annotate.head.face_model import person_shape


# face and mesh: tests/conftest.py


def _legacy(mesh: hm.HeadMesh):
    o3d = open3d_module()
    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices),
                                     o3d.utility.Vector3iVector(mesh.triangles))


def _surface_distance(mesh: hm.HeadMesh, points: np.ndarray) -> np.ndarray:
    o3d = open3d_module()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor.from_numpy(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor.from_numpy(mesh.triangles.astype(np.uint32)))
    return scene.compute_distance(o3d.core.Tensor.from_numpy(points.astype(np.float32))).numpy()


def _region_at(mesh: hm.HeadMesh, point: np.ndarray) -> int:
    """Region of the triangle whose centroid is nearest to ``point`` (head frame)."""
    centroids = mesh.vertices[mesh.triangles].mean(axis=1)
    return int(mesh.triangle_region[np.argmin(np.linalg.norm(centroids - point, axis=1))])


def test_mesh_is_closed_manifold_and_outward(mesh):
    legacy = _legacy(mesh)
    assert legacy.is_watertight()                 # edge- and vertex-manifold, no self-intersection
    assert legacy.is_orientable()
    assert mesh.triangles.dtype == np.int32 and mesh.triangle_region.dtype == np.uint8
    assert 5_000 <= len(mesh.triangles) <= 25_000
    v0, v1, v2 = (mesh.vertices[mesh.triangles[:, k]] for k in range(3))
    signed_volume = np.einsum("ij,ij->i", v0, np.cross(v1, v2)).sum() / 6.0
    assert signed_volume > 2000.0                 # cm^3, outward normals; a head is ~3-4 litres
    # Star-shaped around the head centre: every face normal points away from the origin.
    normals = np.cross(v1 - v0, v2 - v0)
    assert np.all(np.einsum("ij,ij->i", normals, v0 + v1 + v2) > 0)


def test_mesh_passes_through_every_landmark(mesh, face):
    assert np.abs(mesh.vertices[mesh.landmark_vertex] - face).max() < 0.05
    assert _surface_distance(mesh, face).max() < 0.3


def test_every_region_is_present(mesh):
    counts = np.bincount(mesh.triangle_region, minlength=7)
    for code in (hm.SKIN, hm.HAIR, hm.EYE_WHITE, hm.IRIS, hm.BROW, hm.LIPS, hm.NOSE):
        assert counts[code] > 0, hm.REGION_NAMES[code]


def test_regions_sit_on_their_features(mesh, face):
    radius = np.linalg.norm(mesh.vertices, axis=1).max()
    assert _region_at(mesh, face[30]) == hm.NOSE
    assert _region_at(mesh, face[68]) == hm.IRIS and _region_at(mesh, face[69]) == hm.IRIS
    # Half way from the pupil to the outer eye corner: the white of the eye.
    assert _region_at(mesh, 0.5 * (face[68] + face[36])) == hm.EYE_WHITE
    assert _region_at(mesh, 0.5 * (face[45] + face[69])) == hm.EYE_WHITE
    assert _region_at(mesh, face[19]) == hm.BROW and _region_at(mesh, face[24]) == hm.BROW
    assert _region_at(mesh, face[[51, 57]].mean(axis=0)) == hm.LIPS
    cheek = 0.5 * (face[41] + face[3])
    assert _region_at(mesh, cheek) == hm.SKIN
    assert _region_at(mesh, face[8]) == hm.SKIN                   # chin
    for direction in ([0, 0, -1], [0, 1, 0], [0, 0.5, -1], [0.7, 0.3, -1], [-0.7, 0.3, -1]):
        d = np.asarray(direction, float) / np.linalg.norm(direction)
        assert _region_at(mesh, radius * d) == hm.HAIR, direction


def test_nose_protrudes(mesh, face):
    tip = mesh.vertices[mesh.landmark_vertex[30]]
    eye_corners_z = face[[36, 39, 42, 45], 2].mean()
    assert tip[2] - eye_corners_z > 1.0
    # Beside the nose at the same height the surface lies well behind the tip.
    beside = np.abs(mesh.vertices[:, 0] - 2.5) < 0.3
    beside &= np.abs(mesh.vertices[:, 1] - tip[1]) < 0.5
    assert mesh.vertices[beside, 2].max() < tip[2] - 0.8


def test_build_is_deterministic(face):
    """Build time is measured in benchmarks/bench_render.py; tests never assert timings."""
    mesh = hm.build_head_mesh(face)
    again = hm.build_head_mesh(face)
    np.testing.assert_array_equal(mesh.triangles, again.triangles)
    np.testing.assert_array_equal(mesh.vertices, again.vertices)


def test_other_face_shapes_and_skull_sizes(face):
    shape = person_shape(np.random.default_rng(3), face)
    mesh = hm.build_head_mesh(shape, skull_radii=(7.4, 10.5, 9.5), skull_centre=(0.0, 0.3, -0.4))
    assert _legacy(mesh).is_watertight()
    assert _surface_distance(mesh, shape).max() < 0.3
    assert np.bincount(mesh.triangle_region, minlength=7).min() > 0


def test_transformed_and_bounds(mesh):
    angle = 0.7
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t = np.array([10.0, -150.0, 30.0])
    posed = mesh.transformed(R, t, 1.1)
    np.testing.assert_allclose(posed, 1.1 * (R @ mesh.vertices.T).T + t, atol=1e-9)
    # The bounding polytope contains the mesh: every vertex is inside all its face planes.
    planes = ConvexHull(mesh.bounding_polytope).equations            # (F, 4): n.x + d <= 0 inside
    assert (mesh.vertices @ planes[:, :3].T + planes[:, 3]).max() < 1e-6


def test_bad_landmarks_are_refused(face):
    with pytest.raises(ValueError):
        hm.build_head_mesh(face[:68])
    collinear = face.copy()
    collinear[30] = 0.8 * collinear[33]            # on the ray of 33: not star-shaped
    with pytest.raises(ValueError):
        hm.build_head_mesh(collinear)
