"""Each subject's own rest face, expression modes and landmark rigidity, from the data.

Real faces move: jaw, lips, brows and lids shift by up to 1.5-2 cm against the skull while
people talk, smile, raise brows and blink, and a rigid fit follows the mouth (the jaw's
coherent motion looks partly like a head rotation). The label stage therefore learns, per
subject (person of a sequence), from that subject's own faces:

- a rest face: expressions are departures from it, so it is not the median face (a person
  who talks a third of the time has a median mouth slightly open) but the centre of the
  least expressive faces. It is re-expressed in its own canonical frame, so the subject
  gets WHENet's zero for their own face (docs/conventions.md);
- expression modes: the principal components of the head-frame residuals about the rest
  face whose variance stands well above the noise. The fit is then joint (skull pose plus
  mode coefficients, ``annotate.labels.fit``), so an opening jaw moves its coefficient,
  not the skull;
- rigidity: what the modes do not explain, per landmark, against the subject's most rigid
  landmarks, as inverse-variance weights.

The residuals come from a fit, and a fit that follows the jaw spreads the jaw's motion over
every landmark; so the subject is learnt in rounds (``learn_subjects``). Subjects with fewer than ``min_faces`` faces
use the mean head, no modes and equal weights, as without subjects. Pure numpy, no I/O.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from annotate.head.head_frame import head_frame_from_landmarks
from annotate.labels.fit import FitConfig, HeadFits, fit_heads
from annotate.head.whenet_reference import WHENET_FACE70
from annotate.head.head_model import HeadModel
from annotate.labels.uncertainty import SIMILARITY_PARAMETERS, rotation_sigma_deg

# Residuals above this percentile of their landmark do not count in its spread (gross
# outlier landmarks: a few percent of real reconstructions).
TRIM_PERCENTILE = 95.0
# The share of a subject's faces taken as their rest face.
NEUTRAL_SHARE = 0.2
# Modes of the deviations in which calm faces are chosen, and mean-shift starts.
CALM_MODES = 4
MEAN_SHIFT_STARTS = 24


@dataclass(frozen=True)
class SubjectConfig:
    """How subjects are learnt.

    enabled: learn subjects (else every face uses the mean head, rigid, unweighted).
    min_faces: fewer faces of a subject -> the mean head, no modes, equal weights.
    rigid_quantile: the spread of a subject's most rigid landmarks, as this quantile of the
    per-landmark spreads, is the reference (weight 1). min_weight: floor of the weights.
    max_faces: faces per subject kept for learning (evenly spaced), bounding memory.
    rounds: anchor rounds (``learn_subjects``). max_modes: expression modes kept per subject at most;
    mode_snr: a mode is kept when its variance exceeds this multiple of the noise variance.
    anchor_power: the anchor rounds' fits raise the rigidity weights to this power.
    """

    enabled: bool = True
    min_faces: int = 30
    rigid_quantile: float = 0.2
    min_weight: float = 0.02
    max_faces: int = 600
    rounds: int = 3
    max_modes: int = 6
    mode_snr: float = 4.0
    anchor_power: float = 3.0


@dataclass(frozen=True)
class SubjectModels:
    """What was learnt for P subjects; K = max_modes.

    persons: (P,) ids; shapes_head: (P, 70, 3) cm, each rest face in its own canonical head
    frame (mean-model scale); modes: (P, K, 70, 3) unit-norm expression modes in that frame
    (zero where unused); mode_variance: (P, K) cm^2 prior variance of each mode's
    coefficient (0 = unused); noise_variance: (P,) cm^2 per coordinate; weights: (P, 70)
    rigidity weights in [min_weight, 1]; spread_cm: (P, 70) RMS residual the modes leave;
    faces: (P,) faces used; own_shape: (P,) bool, False = too few faces (mean head).
    pooled_weights: (70,) (all 1) and mean_shape: (70, 3) for subjects not learnt.
    """

    persons: np.ndarray
    shapes_head: np.ndarray
    modes: np.ndarray
    mode_variance: np.ndarray
    noise_variance: np.ndarray
    weights: np.ndarray
    spread_cm: np.ndarray
    faces: np.ndarray
    own_shape: np.ndarray
    pooled_weights: np.ndarray
    mean_shape: np.ndarray
    frame_sigma_deg: np.ndarray

    def _rows(self, persons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(known (M,) bool, index (M,))``: each face's subject row (0 where not learnt)."""
        pos = {int(p): i for i, p in enumerate(self.persons)}
        index = np.array([pos.get(int(p), -1) for p in np.asarray(persons)], dtype=np.int64)
        return index >= 0, np.maximum(index, 0)

    def frame_sigma_for(self, persons: np.ndarray) -> np.ndarray:
        """(M,) deg: the 1-sigma error of each face's subject frame (0 for the mean head)."""
        known, i = self._rows(persons)
        return np.where(known, self.frame_sigma_deg[i], 0.0)

    def shapes_for(self, persons: np.ndarray) -> np.ndarray:
        """(M, 70, 3) each face's rest face (the mean head where not learnt)."""
        known, i = self._rows(persons)
        return np.where(known[:, None, None], self.shapes_head[i], self.mean_shape)

    def for_faces(self, persons: np.ndarray) -> dict:
        """Keyword arguments of ``fit_heads`` for faces of the given person ids (M,):
        shapes_head (M, 70, 3), landmark_weights (M, 70), modes (M, K, 70, 3),
        mode_variance (M, K), noise_variance (M,)."""
        known, i = self._rows(persons)
        return {
            "shapes_head": self.shapes_for(persons),
            "landmark_weights": np.where(known[:, None], self.weights[i], self.pooled_weights),
            "modes": np.where(known[:, None, None, None], self.modes[i], 0.0),
            "mode_variance": np.where(known[:, None], self.mode_variance[i], 0.0),
            "noise_variance": np.where(known, self.noise_variance[i], 1.0),
        }

    def to_json(self) -> dict:
        return {
            "meaning": "per-subject rest faces (own canonical frame, cm), expression modes and "
                       "landmark rigidity weights learnt from the subject's faces (annotate.labels.subjects)",
            "subjects": [
                {"person": int(p), "faces": int(n), "own_shape": bool(o),
                 "modes_used": int((v > 0).sum()), "mode_variance_cm2": np.round(v[v > 0], 5).tolist(),
                 "noise_variance_cm2": round(float(nv), 6), "frame_sigma_deg": round(float(fs), 4),
                 "weights": np.round(w, 4).tolist(), "spread_cm": np.round(s, 4).tolist(),
                 "landmarks_head": np.round(x, 5).tolist()}
                for p, n, o, v, nv, w, s, x, fs in zip(self.persons, self.faces, self.own_shape, self.mode_variance,
                                                       self.noise_variance, self.weights, self.spread_cm,
                                                       self.shapes_head, self.frame_sigma_for(self.persons))],
            "pooled_weights": np.round(self.pooled_weights, 4).tolist(),
        }


def head_frame_residuals(shapes_head: np.ndarray, landmarks_world: np.ndarray, fits: HeadFits) -> np.ndarray:
    """(M, 70, 3) residuals of M faces in their fitted head frames, at model scale.

    ``R^T (x - t) / s - shape`` (the pose's residual, deformation included), shapes_head
    (70, 3) or (M, 70, 3); NaN where the fit failed or the landmark is missing.
    """
    X = np.asarray(landmarks_world, dtype=np.float64)
    local = np.einsum("mji,mnj->mni", fits.R_world_head, X - fits.t_world_head[:, None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        local = local / fits.scale[:, None, None]
    used = fits.ok[:, None] & np.isfinite(local).all(-1)
    return np.where(used[..., None], local - shapes_head, np.nan)


def _trimmed_rms(distance: np.ndarray) -> np.ndarray:
    """(70,) RMS of distances (M, 70) at or below their landmark's TRIM_PERCENTILE."""
    cut = np.nanpercentile(distance, TRIM_PERCENTILE, axis=0)
    return np.sqrt(np.nanmean(np.where(distance <= cut, distance, np.nan) ** 2, axis=0))


def _weights(spread: np.ndarray, config: SubjectConfig) -> np.ndarray:
    """(..., 70) inverse-variance weights relative to the most rigid landmarks' spread."""
    ref = np.nanquantile(spread, config.rigid_quantile, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (ref / spread) ** 2
    return np.clip(np.where(np.isfinite(w), w, config.min_weight), config.min_weight, 1.0)


def calm_faces(residuals: np.ndarray) -> np.ndarray:
    """(M,) bool: the faces at rest among M faces, from their residuals (M, 70, 3).

    Expressions are one-sided departures from a rest face (a jaw closes only as far as the
    teeth), so faces pile up at rest: the rest face is the densest point of the faces'
    distribution, not its centre. The deviations from the median are projected on their
    CALM_MODES strongest modes (expressions live there; noise spreads over all 210
    coordinates); mean shift from several starts finds the densest point there, and the
    NEUTRAL_SHARE of faces nearest it are the calm ones. A rigid fit is right on calm faces,
    so a first round's residuals choose them well.
    """
    D = _clean_deviations(residuals - np.nanmedian(residuals, axis=0))          # (M, 210)
    values, vectors = np.linalg.eigh(D.T @ D / max(len(D), 1))
    Z = D @ vectors[:, -CALM_MODES:]                                            # (M, K)
    noise = noise_eigenvalue(values, len(D))
    h = max(2.0 * np.sqrt(noise), 0.1 * np.sqrt(values[-1]), 1e-6)             # kernel width
    starts = Z[np.linspace(0, len(Z) - 1, min(len(Z), MEAN_SHIFT_STARTS)).astype(int)]
    best, best_density = None, -1.0
    for c in starts:
        for _ in range(50):
            k = np.exp(-0.5 * ((Z - c) ** 2).sum(1) / h ** 2)
            new = (k[:, None] * Z).sum(0) / max(k.sum(), 1e-300)
            if np.linalg.norm(new - c) < 1e-3 * h:
                break
            c = new
        density = np.exp(-0.5 * ((Z - c) ** 2).sum(1) / h ** 2).sum()
        if density > best_density:
            best, best_density = c, density
    distance = np.linalg.norm(Z - best, axis=1)
    return distance <= np.percentile(distance, 100.0 * NEUTRAL_SHARE)


def noise_eigenvalue(values: np.ndarray, samples: int) -> float:
    """The noise level of a covariance's eigenvalues (D,), estimated from ``samples`` faces:
    the median of those within the covariance's rank (at most ``samples``). Most directions
    of the 210 hold only noise, so their median is the noise; with fewer faces than 210 the
    rest are zero by construction, not noise-free, and would pull the median to 0."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    return float(np.median(ordered[:max(1, min(int(samples), len(ordered)))]))


def _clean_deviations(deviations: np.ndarray) -> np.ndarray:
    """(M, 210) deviations (M, 70, 3) with missing and gross outlier landmarks (beyond 3x
    the median distance) set to zero."""
    distance = np.linalg.norm(deviations, axis=-1)
    cap = 3.0 * np.nanmedian(distance)
    return np.where((distance <= cap)[..., None], np.nan_to_num(deviations), 0.0).reshape(len(deviations), -1)


def rest_face(residuals: np.ndarray, calm: np.ndarray) -> np.ndarray:
    """(70, 3) the median of the calm faces' residuals (M, 70, 3) (``calm_faces``)."""
    centre = np.nanmedian(residuals[calm], axis=0)
    return np.where(np.isfinite(centre), centre, 0.0)


def expression_modes(deviations: np.ndarray, max_modes: int, snr: float
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """Principal modes of M faces' deviations from the rest face (M, 70, 3).

    Gross outlier landmarks (beyond 3x the median distance) and missing ones count as
    zero. Returns ``(modes (K, 70, 3) unit norm, variance (K,) cm^2 of each coefficient
    beyond the noise, noise variance per coordinate cm^2)``, K <= max_modes: the modes whose
    variance exceeds ``snr`` times the noise (``noise_eigenvalue``: most of the 210
    directions hold only noise). With fewer faces than 210 the noise returned is that of a
    non-zero direction, about 210 / M times the per-coordinate one: the joint fit then holds
    the few modes of a short sequence more tightly.
    """
    D = _clean_deviations(deviations)
    values, vectors = np.linalg.eigh(D.T @ D / max(len(D), 1))
    values, vectors = values[::-1], vectors[:, ::-1]
    noise = noise_eigenvalue(values, len(D))
    keep = np.flatnonzero(values[:max_modes] > snr * noise)
    modes = vectors[:, keep].T.reshape(-1, 70, 3)
    return modes, values[keep] - noise, noise


def learn_subjects(model: HeadModel, landmarks_world: np.ndarray, scores: np.ndarray | None,
                   persons: np.ndarray, fit_config: FitConfig = FitConfig(),
                   config: SubjectConfig = SubjectConfig()) -> SubjectModels:
    """Rest faces, expression modes and rigidity weights of M faces' subjects.

    landmarks_world: (M, 70, 3) cm; scores: (M, 70) or None; persons: (M,) ids.

    1. A rigid fit of the mean head; its residuals choose each subject's calm faces
       (``calm_faces``), which define the rest face from then on.
    2. ``config.rounds`` anchor rounds: rigid fits of the rest face with the rigidity
       weights raised to ``anchor_power``, each round's residuals giving the next weights,
       so the fit comes to rest on the landmarks that do not move and the residuals show
       the expressions in full (a fit that follows the jaw hides the part of its motion
       that looks rigid).
    3. The expression modes, once, from the last anchor round's residuals. (Learning them
       again from a joint fit's residuals drifts: measured, the error grows each round.)
    """
    persons = np.asarray(persons)
    fits = fit_heads(model, landmarks_world, scores, fit_config)
    residuals = head_frame_residuals(model.landmarks_head, landmarks_world, fits)
    calm = np.zeros(len(persons), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for p in np.unique(persons):
            rows = np.flatnonzero(persons == p)
            if len(rows) >= config.min_faces:
                calm[rows] = calm_faces(residuals[rows])
    shapes = np.broadcast_to(model.landmarks_head, residuals.shape)
    subjects = _learn_round(model, residuals, persons, config, shapes, calm, modes=False)
    for _ in range(max(0, config.rounds)):
        given = subjects.for_faces(persons)
        fits = fit_heads(model, landmarks_world, scores, fit_config, given["shapes_head"],
                         given["landmark_weights"] ** config.anchor_power)
        residuals = head_frame_residuals(given["shapes_head"], landmarks_world, fits)
        subjects = _learn_round(model, residuals, persons, config, given["shapes_head"], calm, modes=False)
    return _learn_round(model, residuals, persons, config, given["shapes_head"] if config.rounds else shapes,
                        calm, modes=True)


def _learn_round(model: HeadModel, residuals: np.ndarray, persons: np.ndarray, config: SubjectConfig,
                 shapes: np.ndarray, calm: np.ndarray, modes: bool) -> SubjectModels:
    """One round from residuals (M, 70, 3) against each face's current shape (M, 70, 3);
    calm (M,) marks the faces that define the rest face; modes: learn expression modes (the
    weights are then those of what the modes leave)."""
    ids = np.unique(persons)
    K = config.max_modes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # 'All-NaN slice': never seen
        # Subjects with too few faces to learn from are fitted as without subjects: the mean
        # head, no modes, equal weights (pooled weights would mix other people's motion).
        pooled_spread = _trimmed_rms(np.linalg.norm(residuals - np.nanmedian(residuals, axis=0), axis=-1))
        pooled = np.ones(70)
        out = {k: [] for k in ("shape", "modes", "var", "noise", "w", "spread", "n", "own")}
        for p in ids:
            rows = np.flatnonzero(persons == p)
            r = residuals[rows]
            n = int(np.isfinite(r).all(-1).any(-1).sum())
            basis, var, noise = np.zeros((K, 70, 3)), np.zeros(K), 1.0
            if n >= config.min_faces and calm[rows].any():
                centre = rest_face(r, calm[rows])
                # The rest face in its own canonical frame; modes turn with it.
                A, origin = head_frame_from_landmarks(shapes[rows[0]] + centre, model.spec)
                shape = (shapes[rows[0]] + centre - origin) @ A
                deviation = r - centre
                frame_sigma = _frame_sigma_deg(shape, deviation[calm[rows]])
                found, found_var, noise = expression_modes(deviation, K if modes else 0, config.mode_snr)
                basis[:len(found)], var[:len(found)] = found @ A, found_var
                # What the modes leave: the deviation less its projection on them.
                coefficients = np.einsum("mli,kli->mk", np.nan_to_num(deviation), found)
                left = deviation - np.einsum("mk,kli->mli", coefficients, found)
                spread = _trimmed_rms(np.linalg.norm(left, axis=-1))
                w = _weights(spread, config)
            else:
                shape, spread, w, frame_sigma = model.landmarks_head, pooled_spread, pooled, 0.0
            for key, value in zip(("shape", "modes", "var", "noise", "w", "spread", "n", "own", "frame"),
                                  (shape, basis, var, noise, w, spread, n, n >= config.min_faces, frame_sigma)):
                out.setdefault(key, []).append(value)
    return SubjectModels(ids, np.asarray(out["shape"]), np.asarray(out["modes"]), np.asarray(out["var"]),
                         np.asarray(out["noise"], dtype=np.float64), np.asarray(out["w"]),
                         np.asarray(out["spread"]), np.asarray(out["n"]), np.asarray(out["own"]), pooled,
                         model.landmarks_head, frame_sigma_deg=np.asarray(out["frame"], dtype=np.float64))


def _frame_sigma_deg(rest: np.ndarray, calm_deviations: np.ndarray) -> float:
    """1-sigma rotation error (deg) of a rest face's canonical frame: WHENet's reference head
    fitted on its 14 landmarks, each the median of the n calm faces (noise variance
    pi/2 sigma^2 / n per coordinate, sigma from the calm faces' spread)."""
    n = len(calm_deviations)
    distance = np.linalg.norm(calm_deviations, axis=-1)
    sigma2 = float(np.nanmean(_trimmed_rms(distance) ** 2) / 3.0)
    rest_var = 0.5 * np.pi * sigma2 / max(n, 1)
    weights = np.zeros((1, 70))
    weights[0, list(WHENET_FACE70)] = 1.0
    n_obs = 3 * len(WHENET_FACE70)
    rms = np.sqrt(3.0 * rest_var * (n_obs - SIMILARITY_PARAMETERS) / n_obs)
    return float(rotation_sigma_deg(rest, np.eye(3)[None], np.ones(1), weights, np.array([rms]))[0])
