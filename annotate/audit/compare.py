"""Compare other people's labels of Panoptic frames with ours, label by label.

Each label of the other file (``annotate.audit.external_labels``) is matched to one of our
labels of the same (sequence, camera, frame):

- WHENet's lists name no person and carry no box: their face index k is the k-th face of
  the frame's ``hdFace3d`` file (file order, as the ingest's faces3d table keeps it) with at
  least ``WHENET_MIN_POINTS`` of WHENet's 14 landmarks scored above ``WHENET_SCORE_GATE``
  (the faces WHENet fits; the others it skips without counting);
- the formats with boxes are matched by box: pairs whose intersection covers at least
  ``min_overlap`` of the smaller box are candidates (the other labellers' boxes come from
  larger helmets than ours, so IoU would understate the match), taken one to one, nearest
  box centres first.

Per matched label: the geodesic angle between the two rotations and the Euler differences
(theirs minus ours), split into two parts. Both files label a head in every camera from
one 3D pose, so the offset ``R_ours.T @ R_theirs`` (in the head frame) is the same in all
views of one face when both are consistent: the face's common offset (the medoid over its
views, ``face_offset_deg``) is how differently the two labellers fitted that head; what a
view adds to it (``view_residual_deg``) is a mistake in one view's label (a wrong person, a
flipped or mistyped angle), which a 3D fit cannot make. Then the verdict, with our audit's
say on our label (``flags.parquet``): ``other_view_error`` (the view residual exceeds
``view_threshold_deg``: the other file contradicts its own labels of the same head),
``disagree_flagged`` / ``disagree_unflagged`` (the whole disagreement exceeds
``threshold_deg``, and our audit does / does not distrust our label), ``agree``, or
``unmatched`` (with the reason). The rows follow schemas/label_comparison.schema.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.audit.external_labels import ExternalLabels
from annotate.core.tables import fixed_list_to_numpy, read_table, write_table
from annotate.geometry.rotations import geodesic_distance
from annotate.head.whenet_reference import WHENET_FACE70, WHENET_MIN_POINTS, WHENET_SCORE_GATE

KEYS = ["sequence", "frame", "person", "camera"]
VERDICTS = ("agree", "other_view_error", "disagree_flagged", "disagree_unflagged", "unmatched")


@dataclass(frozen=True)
class CompareConfig:
    threshold_deg: float = 5.0       # geodesic angle above which two labels disagree
    view_threshold_deg: float = 2.0  # view residual above which one view's label contradicts its face's others
    min_views: int = 3               # matched views of a face needed to split off its common offset
    min_overlap: float = 0.5         # box intersection over the smaller box, to match


@dataclass
class OurLabels:
    """Our label rows (all of them, rejected ones included): key columns, valid, angles
    (N, 3) yaw/pitch/roll deg, R_cam_head (N, 3, 3), box (N, 4) px."""

    keys: pd.DataFrame
    yaw_pitch_roll: np.ndarray
    R_cam_head: np.ndarray
    box: np.ndarray


def read_our_labels(labels_paths: list[str | Path]) -> OurLabels:
    """The labels tables of the sequences compared."""
    keys, ypr, R, box = [], [], [], []
    for path in labels_paths:
        t = read_table(path, "labels", columns=KEYS + ["valid", "yaw", "pitch", "roll", "R_cam_head", "box"])
        keys.append(t.select(KEYS + ["valid"]).to_pandas())
        ypr.append(np.column_stack([t.column(c).to_numpy() for c in ("yaw", "pitch", "roll")]).reshape(-1, 3))
        R.append(fixed_list_to_numpy(t.column("R_cam_head"), (3, 3)))
        box.append(fixed_list_to_numpy(t.column("box"), (4,)).astype(np.float64))
    frame = pd.concat(keys, ignore_index=True) if keys else pd.DataFrame(columns=KEYS + ["valid"])
    for c in ("sequence", "camera"):
        frame[c] = frame[c].astype(str)
    return OurLabels(frame, np.concatenate(ypr) if ypr else np.zeros((0, 3)),
                     np.concatenate(R) if R else np.zeros((0, 3, 3)), np.concatenate(box) if box else np.zeros((0, 4)))


def whenet_face_persons(faces3d_paths: list[str | Path]) -> dict[tuple[str, int, int], int]:
    """(sequence, frame, WHENet face index k) -> Panoptic person id, from ingest faces3d
    tables (published rows, in file order)."""
    out = {}
    for path in faces3d_paths:
        t = read_table(path, "faces3d", columns=["sequence", "frame", "person", "landmarks_world", "score", "source"])
        keep = np.asarray(t.column("source").to_pylist()) == "published"
        X = fixed_list_to_numpy(t.column("landmarks_world"), (70, 3))[keep][:, list(WHENET_FACE70)]
        score = fixed_list_to_numpy(t.column("score"), (70,))[keep][:, list(WHENET_FACE70)]
        fits = ((np.isfinite(X).all(-1) & (score > WHENET_SCORE_GATE)).sum(-1) >= WHENET_MIN_POINTS)
        seqs = np.asarray(t.column("sequence").to_pylist(), dtype=object)[keep]
        frames = t.column("frame").to_numpy()[keep]
        persons = t.column("person").to_numpy()[keep]
        counter: dict[tuple[str, int], int] = {}
        for s, f, p, ok in zip(seqs, frames.tolist(), persons.tolist(), fits):
            if ok:
                k = counter.get((s, f), 0)
                out[(s, f, k)] = p
                counter[(s, f)] = k + 1
    return out


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4) x (B, 4) boxes x0, y0, x1, y1 -> (A, B) intersection over the smaller area."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])                          # noqa: E731
    smaller = np.minimum(area(a)[:, None], area(b)[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(smaller > 0, inter / smaller, 0.0)


def match_boxes(theirs: np.ndarray, ours: np.ndarray, min_overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one box matches in one view: for each of theirs (A, 4), the index into ours
    (B, 4) or -1, and the overlap. Nearest centres first among pairs overlapping enough."""
    overlap = np.nan_to_num(box_overlap(theirs, ours))
    centre = lambda x: (x[:, :2] + x[:, 2:]) / 2                                        # noqa: E731
    dist = np.linalg.norm(centre(theirs)[:, None] - centre(ours)[None], axis=-1)
    match, score = np.full(len(theirs), -1), np.full(len(theirs), np.nan)
    cand = np.argwhere(overlap >= min_overlap)
    used_a, used_b = set(), set()
    for i, j in cand[np.argsort(dist[cand[:, 0], cand[:, 1]], kind="stable")]:
        if i not in used_a and j not in used_b:
            match[i], score[i] = j, overlap[i, j]
            used_a.add(i)
            used_b.add(j)
    return match, score


def _match(ext: ExternalLabels, ours: OurLabels, face_persons: dict | None, cfg: CompareConfig):
    """(our row index or -1, match code, box overlap) per entry of ``ext``."""
    n = len(ext)
    row, code, overlap = np.full(n, -1), np.array(ext.problem, dtype=object), np.full(n, np.nan)
    code[code == ""] = "pending"
    k = ours.keys
    index = {key: i for i, key in enumerate(zip(k["sequence"], k["frame"].tolist(), k["person"].tolist(),
                                                 k["camera"]))}
    sequences = set(k["sequence"])
    views: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(k["sequence"], k["frame"].tolist(), k["camera"])):
        views.setdefault(key, []).append(i)
    pending: dict[tuple, list[int]] = {}
    for e in np.flatnonzero(code == "pending"):
        s, c, f = ext.sequence[e], ext.camera[e], int(ext.frame[e])
        if s not in sequences:
            code[e] = "no_sequence"
        elif ext.format == "whenet":
            person = (face_persons or {}).get((s, f, int(ext.face_index[e])))
            i = index.get((s, f, person, c)) if person is not None else None
            code[e] = "no_face_index" if person is None else ("no_label" if i is None else "matched")
            row[e] = -1 if i is None else i
        else:
            pending.setdefault((s, f, c), []).append(e)
    for view, entries in pending.items():
        candidates = views.get(view, [])
        if not candidates:
            code[entries] = "no_label"
            continue
        j, score = match_boxes(ext.box[entries], ours.box[candidates], cfg.min_overlap)
        for e, jj, sc in zip(entries, j, score):
            code[e], row[e], overlap[e] = ("matched", candidates[jj], sc) if jj >= 0 else ("no_box_overlap", -1, np.nan)
    return row, code, overlap


def face_offsets(faces: list[tuple], R_ours: np.ndarray, R_theirs: np.ndarray, min_views: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per entry (N,): the geodesic (deg) of its face's common offset and its view residual.

    faces: a face key per entry (None = not matched); R_ours, R_theirs (N, 3, 3). The common
    offset is the medoid of ``R_ours.T @ R_theirs`` over the face's entries (robust to a few
    wrong views); NaN for faces with fewer than ``min_views`` entries.
    """
    offset = np.swapaxes(R_ours, -1, -2) @ R_theirs
    face_deg, residual_deg = np.full(len(faces), np.nan), np.full(len(faces), np.nan)
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(faces):
        if key is not None:
            groups.setdefault(key, []).append(i)
    for idx in groups.values():
        if len(idx) < min_views:
            continue
        D = offset[idx]
        pairwise = geodesic_distance(D[:, None], D[None])
        medoid = D[np.argmin(pairwise.sum(axis=1))]
        face_deg[idx] = np.degrees(geodesic_distance(np.eye(3), medoid))
        residual_deg[idx] = np.degrees(geodesic_distance(D, medoid))
    return face_deg, residual_deg


def _wrap(deg: np.ndarray) -> np.ndarray:
    w = np.mod(deg + 180.0, 360.0) - 180.0
    return np.where(w == -180.0, 180.0, w)


def audit_reasons(flags: pd.DataFrame | None) -> dict[tuple, str]:
    """(sequence, frame, person, camera) -> sorted comma-separated reasons, from flags.parquet rows."""
    if flags is None or flags.empty:
        return {}
    f = flags.assign(sequence=flags["sequence"].astype(str), camera=flags["camera"].astype(str),
                     reason=flags["reason"].astype(str))
    grouped = f.groupby(KEYS, observed=True)["reason"].agg(lambda r: ",".join(sorted(set(r))))
    return {(s, int(fr), int(p), c): v for (s, fr, p, c), v in grouped.items()}


def compare_labels(ext: ExternalLabels, ours: OurLabels, flags: pd.DataFrame | None,
                   face_persons: dict | None = None, cfg: CompareConfig = CompareConfig()) -> pd.DataFrame:
    """The label_comparison rows of one file (schemas/label_comparison.schema.yaml).

    flags: our audit's flags.parquet (None: nothing flagged). face_persons: from
    ``whenet_face_persons`` (needed for the whenet format).
    """
    if ext.format == "whenet" and face_persons is None:
        raise ValueError(f"{ext.source}: matching WHENet's face indices needs the ingest faces3d tables")
    row, code, overlap = _match(ext, ours, face_persons, cfg)
    hit = row >= 0
    n = len(ext)
    ypr = np.full((n, 3), np.nan)
    ypr[hit] = ours.yaw_pitch_roll[row[hit]]
    geo = np.full(n, np.nan)
    geo[hit] = np.degrees(geodesic_distance(ext.R_cam_head[hit], ours.R_cam_head[row[hit]]))
    keys = ours.keys.iloc[np.where(hit, row, 0)] if len(ours.keys) else None
    person = np.where(hit, keys["person"].to_numpy() if keys is not None else -1, -1)
    valid = hit & (keys["valid"].to_numpy().astype(bool) if keys is not None else False)
    reasons_by_key = audit_reasons(flags)
    reasons = [reasons_by_key.get((ext.sequence[e], int(ext.frame[e]), int(person[e]), ext.camera[e]), "")
               if hit[e] else "" for e in range(n)]
    flagged = np.array([r != "" for r in reasons], dtype=bool) | (hit & ~valid)
    R_ours = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    R_ours[hit] = ours.R_cam_head[row[hit]]
    faces = [(ext.sequence[e], int(ext.frame[e]), int(person[e])) if hit[e] else None for e in range(n)]
    face_deg, residual = face_offsets(faces, R_ours, ext.R_cam_head, cfg.min_views)
    view_error = hit & (residual > cfg.view_threshold_deg)
    disagrees = hit & ((geo > cfg.threshold_deg) | view_error)
    verdict = np.select([~hit, view_error, ~disagrees, flagged],
                        ["unmatched", "other_view_error", "agree", "disagree_flagged"], "disagree_unflagged")
    diff = _wrap(ext.yaw_pitch_roll - ypr)
    return pd.DataFrame({
        "source": [ext.source] * n, "format": [ext.format] * n, "entry": ext.entry,
        "sequence": ext.sequence, "frame": ext.frame.astype(np.int32), "camera": ext.camera,
        "person": person.astype(np.int32), "match": code.astype(str), "box_overlap": overlap.astype(np.float32),
        "other_yaw": ext.yaw_pitch_roll[:, 0], "other_pitch": ext.yaw_pitch_roll[:, 1],
        "other_roll": ext.yaw_pitch_roll[:, 2], "yaw": ypr[:, 0], "pitch": ypr[:, 1], "roll": ypr[:, 2],
        "geodesic_deg": geo, "face_offset_deg": face_deg, "view_residual_deg": residual, "yaw_diff": diff[:, 0], "pitch_diff": diff[:, 1], "roll_diff": diff[:, 2],
        "disagrees": disagrees, "valid": valid, "audit_flagged": flagged & hit, "audit_reasons": reasons,
        "verdict": verdict})


def comparison_summary(table: pd.DataFrame, cfg: CompareConfig) -> dict:
    """Counts per source: entries, matches and verdicts, and the matched labels' median
    and 90th-percentile geodesic disagreement."""
    out = {"threshold_deg": cfg.threshold_deg, "view_threshold_deg": cfg.view_threshold_deg,
           "min_views": cfg.min_views, "min_overlap": cfg.min_overlap, "sources": {}}
    for source, t in table.groupby("source", sort=False, observed=True):
        geo = t["geodesic_deg"].dropna()
        out["sources"][str(source)] = {
            "format": str(t["format"].iloc[0]), "entries": int(len(t)),
            "match": {str(k): int(v) for k, v in t["match"].value_counts().items()},
            "verdict": {v: int((t["verdict"] == v).sum()) for v in VERDICTS},
            "median_geodesic_deg": float(geo.median()) if len(geo) else None,
            "p90_geodesic_deg": float(geo.quantile(0.9)) if len(geo) else None,
            "median_view_residual_deg": float(t["view_residual_deg"].median()) if t["view_residual_deg"].notna().any()
            else None}
    return out


def write_comparison(table: pd.DataFrame, path: str | Path) -> Path:
    """label_comparison.parquet, atomically."""
    return write_table(table, path, "label_comparison")
