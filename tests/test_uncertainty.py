"""The fit's first-order rotation uncertainty against Monte Carlo (annotate.labels.uncertainty)."""
import numpy as np
import pytest

from annotate.geometry.procrustes import umeyama
from annotate.geometry.rotations import geodesic_distance
from annotate.labels.uncertainty import rotation_sigma_deg
from annotate.head.face_model import base_face_landmarks


def rms_of(fit, m, x):
    residual = fit.scale[:, None, None] * np.einsum("mij,mlj->mli", fit.R, np.broadcast_to(m, x.shape)) \
        + fit.t[:, None] - x
    return np.sqrt((np.linalg.norm(residual, axis=-1) ** 2).mean(-1))


def test_rotation_uncertainty_matches_monte_carlo():
    m = base_face_landmarks()
    rng = np.random.default_rng(1)
    M, sigma = 3000, 0.4
    w = rng.uniform(0.3, 1.0, (M, 70))
    x = m[None] + rng.normal(0.0, sigma, (M, 70, 3))
    fit = umeyama(np.broadcast_to(m, (M, 70, 3)), x, w)
    err = np.degrees(geodesic_distance(fit.R, np.broadcast_to(np.eye(3), (M, 3, 3))))
    rms = rms_of(fit, m, x)
    predicted = rotation_sigma_deg(m, fit.R, fit.scale, w, rms)
    assert np.median(predicted) == pytest.approx(np.sqrt((err ** 2).mean()), rel=0.1)
    # Fewer landmarks, larger uncertainty; too few: not measurable.
    w_few = w.copy()
    w_few[:, 20:] = 0.0
    assert np.median(rotation_sigma_deg(m, fit.R, fit.scale, w_few, rms)) > np.median(predicted)
    w_few[:, 3:] = 0.0
    assert np.isnan(rotation_sigma_deg(m, fit.R, fit.scale, w_few, rms)).all()


def test_a_mode_that_looks_like_a_rotation_costs_rotation_precision():
    """Marginalising a deformation mode: a mode that moves the lower face like a nod makes
    the rotation less certain than the rigid fit says, by as much as Monte Carlo shows."""
    m = base_face_landmarks()
    rng = np.random.default_rng(2)
    M, sigma = 3000, 0.3
    mode = np.zeros((70, 3))
    lower = m[:, 1] < -4.0                                       # chin, mouth, lower jaw
    mode[lower] = np.cross([1.0, 0.0, 0.0], m[lower])            # a nod of the lower face
    mode /= np.linalg.norm(mode)
    x = m[None] + rng.normal(0.0, sigma, (M, 70, 3))
    w = np.ones((M, 70))
    modes = np.broadcast_to(mode, (M, 1, 70, 3))
    # Joint fit by alternation (as annotate.labels.fit does, without priors).
    c = np.zeros(M)
    for _ in range(30):
        fit = umeyama(m[None] + c[:, None, None] * mode, x, w)
        local = np.einsum("mji,mnj->mni", fit.R, x - fit.t[:, None]) / fit.scale[:, None, None]
        c = np.einsum("mli,li->m", local - m, mode)
    err = np.degrees(geodesic_distance(fit.R, np.broadcast_to(np.eye(3), (M, 3, 3))))
    shaped = m[None] + c[:, None, None] * mode
    rms = rms_of(fit, shaped, x)
    rigid = rotation_sigma_deg(shaped, fit.R, fit.scale, w, rms)
    joint = rotation_sigma_deg(shaped, fit.R, fit.scale, w, rms, modes=np.ascontiguousarray(modes),
                               mode_prior=np.zeros((M, 1)))
    assert np.median(joint) > 1.02 * np.median(rigid)
    assert np.median(joint) == pytest.approx(np.sqrt((err ** 2).mean()), rel=0.15)
