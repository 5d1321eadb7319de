"""annotate.train.rotations_torch against the numpy originals in annotate.geometry.rotations."""
import numpy as np
import torch

from annotate.geometry import rotations as R_np
from annotate.train import rotations_torch as R_t
from annotate.train.metrics import wrapped_abs_diff_deg


def _random_rotations(n, seed=0):
    rng = np.random.default_rng(seed)
    return R_np.matrix_from_rotvec(rng.normal(size=(n, 3)))


def test_matrix_from_sixd_matches_numpy():
    six = np.random.default_rng(1).normal(size=(50, 6))
    got = R_t.matrix_from_sixd(torch.tensor(six)).numpy()
    np.testing.assert_allclose(got, R_np.matrix_from_sixd(six), atol=1e-12)
    assert R_np.is_rotation(got).all()


def test_geodesic_matches_numpy_and_has_finite_gradient_at_zero():
    A, B = _random_rotations(40, 2), _random_rotations(40, 3)
    want = R_np.geodesic_distance(A, B)
    keep = (want > 0.05) & (want < np.pi - 0.05)
    got = R_t.geodesic_distance(torch.tensor(A), torch.tensor(B)).numpy()
    np.testing.assert_allclose(got[keep], want[keep], atol=1e-6)
    X = torch.tensor(A[:3], requires_grad=True)
    R_t.geodesic_distance(X, torch.tensor(A[:3])).sum().backward()
    assert torch.isfinite(X.grad).all()


def test_wrapped_difference_agrees_with_metric():
    a = np.array([179.0, -179.0, 10.0, 180.0, -90.0, 350.0])
    b = np.array([-179.0, 179.0, -10.0, -180.0, 90.0, 0.0])
    d = R_t.wrapped_difference(torch.tensor(a), torch.tensor(b), 360.0).numpy()
    np.testing.assert_allclose(d, [-2.0, 2.0, 20.0, 0.0, -180.0, -10.0])
    np.testing.assert_allclose(np.abs(d), wrapped_abs_diff_deg(a, b))
