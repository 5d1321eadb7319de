"""Other people's labels of a synthetic Panoptic-format sequence, for the comparison's tests
and benchmark: WHENet's labelling restated on the sequence's own files, errors injected.

``whenet_style_labels`` labels every face of every ``hdFace3d`` file in every HD camera
the way WHENet's published preparation code does (``annotate.head.whenet_oracle``: its
14-point reference-head fit and Euler choice), numbering the faces it can fit in file order
(WHENet's k). Boxes, which WHENet's lists lack, are our label's box grown 1.3x about its
centre and shifted by up to 4 px (another labeller's helmet is larger than ours).
``untidy_face_files`` makes the face files less tidy than the generator writes them, so
that WHENet's k is not the person id.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.head.whenet_oracle import whenet_labels
from annotate.head.whenet_reference import WHENET_FACE70


def untidy_face_files(seq_dir: Path) -> None:
    """Reverse the people of every third frame; score WHENet's landmarks of every seventh frame's first face 0.05."""
    for path in sorted((seq_dir / "hdFace3d").glob("*.json")):
        frame = int(path.stem[-8:])
        doc = json.loads(path.read_text())
        if frame % 3 == 0:
            doc["people"] = doc["people"][::-1]
        if frame % 7 == 0 and doc["people"]:
            score = doc["people"][0]["face70"]["averageScore"]
            for k in WHENET_FACE70:                     # below WHENet's gate, still a landmark for us
                score[k] = 0.05
        path.write_text(json.dumps(doc))


def whenet_style_labels(seq_dir: str | Path, sequence: str, labels_path: str | Path, seed: int = 0) -> pd.DataFrame:
    """One row per (frame, fitted face, HD camera) WHENet would label: sequence, frame,
    camera, face_index, person, yaw, pitch, roll (deg), box (x0, y0, x1, y1 px or NaN)."""
    seq_dir = Path(seq_dir)
    calib = json.loads((seq_dir / f"calibration_{sequence}.json").read_text())
    cams = [c for c in calib["cameras"] if c["type"] == "hd"]
    R_cam_world = np.array([c["R"] for c in cams], dtype=np.float64)
    rows = []
    for path in sorted((seq_dir / "hdFace3d").glob("faceRecon3D_hd*.json")):
        frame = int(path.stem[-8:])
        people = json.loads(path.read_text())["people"]
        if not people:
            continue
        X = np.array([p["face70"]["landmarks"] for p in people], np.float64).reshape(-1, 70, 3)
        S = np.array([p["face70"]["averageScore"] for p in people], np.float64)
        fitted, status, ypr = whenet_labels(X, S, R_cam_world)
        k = np.cumsum(fitted) - 1
        for m, p in enumerate(people):
            for c, cam in enumerate(cams):
                if fitted[m] and status[m, c]:
                    rows.append((sequence, frame, cam["name"], int(k[m]), int(p["id"]), *ypr[m, c]))
    out = pd.DataFrame(rows, columns=["sequence", "frame", "camera", "face_index", "person", "yaw", "pitch", "roll"])
    return _with_boxes(out, labels_path, np.random.default_rng(seed))


def _with_boxes(rows: pd.DataFrame, labels_path, rng) -> pd.DataFrame:
    ours = pd.read_parquet(labels_path, columns=["frame", "person", "camera", "box"])
    ours["camera"] = ours["camera"].astype(str)
    merged = rows.merge(ours, on=["frame", "person", "camera"], how="left")
    box = np.array([b if b is not None else [np.nan] * 4 for b in merged["box"]], np.float64)
    centre, half = (box[:, :2] + box[:, 2:]) / 2, (box[:, 2:] - box[:, :2]) / 2 * 1.3
    centre = centre + rng.uniform(-4, 4, centre.shape)
    merged["box"] = list(np.concatenate([centre - half, centre + half], axis=1))
    return merged


def inject_errors(rows: pd.DataFrame, n_each: int, seed: int = 0, min_swap_deg: float = 0.0) -> pd.DataFrame:
    """A copy with errors and an ``injected`` column (''/flip_yaw/swap/pitch10): ``flip_yaw``
    yaw + 180; ``swap`` two people of the same view exchange angles (pairs whose rotations
    differ by at least ``min_swap_deg``); ``pitch10`` pitch + 10 deg. At most one error per
    face (sequence, frame, person): isolated mistakes, the face's other views right."""
    from annotate.geometry.rotations import geodesic_distance, matrix_from_euler

    rng = np.random.default_rng(seed)
    out = rows.copy().reset_index(drop=True)
    out["injected"] = ""
    R = matrix_from_euler(*np.radians(out[["yaw", "pitch", "roll"]].to_numpy().T))
    pairs = []
    for _, g in out.groupby(["sequence", "frame", "camera"]):
        idx = g.index.to_numpy()
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                if np.degrees(geodesic_distance(R[idx[a]], R[idx[b]])) >= min_swap_deg:
                    pairs.append((idx[a], idx[b]))
    face = list(zip(out["sequence"], out["frame"], out["person"]))
    hit_faces: set[tuple] = set()
    used: set[int] = set()
    for i in rng.permutation(len(pairs)):
        a, b = pairs[i]
        if len(used) >= 2 * n_each:
            break
        if face[a] in hit_faces or face[b] in hit_faces:
            continue
        used |= {a, b}
        hit_faces |= {face[a], face[b]}
        out.loc[[a, b], ["yaw", "pitch", "roll"]] = out.loc[[b, a], ["yaw", "pitch", "roll"]].to_numpy()
        out.loc[[a, b], "injected"] = "swap"
    free = []
    for i in rng.permutation(len(out)):
        if len(free) == 2 * n_each:
            break
        if face[i] not in hit_faces:
            free.append(i)
            hit_faces.add(face[i])
    flip, pitch = free[:n_each], free[n_each:2 * n_each]
    out.loc[flip, "yaw"] = np.mod(out.loc[flip, "yaw"] + 360.0, 360.0) - 180.0
    out.loc[flip, "injected"] = "flip_yaw"
    out.loc[pitch, "pitch"] = out.loc[pitch, "pitch"] + 10.0
    out.loc[pitch, "injected"] = "pitch10"
    return out
