"""Labels of the real haggling test frames without body skeletons, measured and drawn.

    python tools/haggling_labels_figure.py [--out docs/img/haggling_labels.png] [--backend dlib]
                                           [--no-refine-eyes]

Runs ingest, triangulate (by default Face Mesh landmarks, eyes refined by the iris model, on
MTCNN faces; cross-view association), head model and labels on tests/data/haggling_demo
(5 HD cameras, frames 4500 and 9348, no body, face or ground-truth file), prints per
triangulated person the views used, the median reprojection error, the eye points
triangulated, the eye-centre span (distance between the means of landmarks 36-41 and 42-47,
cm) and the pupils' distance (68-69, cm), and draws every valid label whose face points toward its camera with the
audit's contact-sheet code (``annotate.audit.contact_sheet``: 70 landmarks coloured by
visibility, head axes x red, y green, z blue).
"""
from __future__ import annotations

import argparse
import warnings
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from annotate.audit.contact_sheet import Crop, contact_sheet
from annotate.config import resolve_config
from annotate.core.atomic import atomic_file
from annotate.media.jpeg import decode_jpeg_rgb
from annotate.panoptic.tables import load_cameras, load_faces3d
from annotate.stages.head_model import run as run_head_model
from annotate.stages.ingest import run as run_ingest
from annotate.stages.label import run as run_label
from annotate.stages.synth import run as run_synth
from annotate.stages.triangulate import run as run_triangulate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SEQUENCE = "haggling_demo"
CROP_MARGIN = 0.35            # added around the label's head box on each side, fraction of its side


def person_figures(faces3d: Path, camera_names: tuple[str, ...]) -> list[dict]:
    """Per triangulated (frame, person): landmarks, views used (names; visibility holds the
    ingest's camera indices), median reprojection px, eye points triangulated (of 36-47), the
    eye-centre span cm (means of 36-41 and 42-47 over the points triangulated: with some
    missing it leans toward those) and the pupils' distance cm (NaN without both)."""
    faces = load_faces3d(faces3d, with_visibility=True)
    rows = []
    for k in range(len(faces)):
        lm, error = faces.landmarks[k], faces.repro_error[k]
        ok = np.isfinite(lm).all(axis=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)               # an eye with no point: NaN
            right, left = np.nanmean(lm[36:42], axis=0), np.nanmean(lm[42:48], axis=0)
        views = sorted({c for point in faces.visibility[k] for c in (point or [])})
        rows.append({"frame": int(faces.frame[k]), "person": int(faces.person[k]), "landmarks": int(ok.sum()),
                     "views": ", ".join(camera_names[c] for c in views),
                     "median_repro_px": float(np.median(error[ok])), "eye_points": int(ok[36:48].sum()),
                     "eye_span_cm": float(np.linalg.norm(right - left)),
                     "pupil_span_cm": float(np.linalg.norm(lm[68] - lm[69]))})
    return rows


def label_crops(labels: Path, cameras: Path) -> list[Crop]:
    """Crops of the real images around every valid, face-toward-camera label, with the
    record fields the contact sheet draws (image -> crop is a translation)."""
    table = pq.read_table(labels).to_pandas()
    table = table[table["valid"] & table["facing_camera"]].sort_values(["frame", "person", "camera"])
    rig = load_cameras(cameras)
    crops = []
    for row in table.itertuples():
        camera = rig.names.index(row.camera)
        path = DATA / SEQUENCE / "hdImgs" / row.camera / f"{row.camera}_{int(row.frame):08d}.jpg"
        image = decode_jpeg_rgb(path.read_bytes())
        box = np.asarray(row.box, float)
        pad = CROP_MARGIN * (box[2] - box[0])
        x0, y0 = (int(max(v, 0)) for v in np.floor(box[:2] - pad))
        x1, y1 = int(min(np.ceil(box[2] + pad), image.shape[1])), int(min(np.ceil(box[3] + pad), image.shape[0]))
        crop_from_image = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
        record = {"landmarks_crop": (np.asarray(row.landmarks_2d, float).reshape(70, 2) - [x0, y0]).ravel(),
                  "landmark_visibility": list(row.landmark_visibility), "R_cam_head": row.R_cam_head,
                  "head_centre_cam": row.head_centre_cam, "K": rig.K[camera].ravel(), "dist": rig.dist[camera],
                  "crop_from_image": crop_from_image.ravel(), "yaw": row.yaw, "pitch": row.pitch, "roll": row.roll}
        crops.append(Crop((SEQUENCE, int(row.frame), int(row.person), row.camera), image[y0:y1, x0:x1], record))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "haggling_labels.png")
    parser.add_argument("--backend", default="facemesh", help="detect.backend (facemesh, dlib or fan)")
    parser.add_argument("--no-refine-eyes", action="store_true", help="detect.facemesh.refine_eyes: false")
    args = parser.parse_args()
    cfg = resolve_config({"detect": {"backend": args.backend, "frames_from": "images",
                                     "facemesh": {"refine_eyes": not args.no_refine_eyes}},
                          "landmarks3d": "triangulated"})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_ingest(cfg, DATA, SEQUENCE, work / "ingest")
        summary = run_triangulate(cfg, DATA, SEQUENCE, work / "ingest", work / "tri")
        print(summary)
        print(f"{'frame':>5s} {'person':>6s} {'landmarks':>9s} {'median repro px':>15s} {'eye points':>10s} "
              f"{'eye span cm':>11s} {'pupils cm':>9s}")
        names = load_cameras(work / "ingest" / "cameras.parquet").names
        for r in person_figures(work / "tri" / "faces3d.parquet", names):
            print(f"{r['frame']:5d} {r['person']:6d} {r['landmarks']:9d} {r['median_repro_px']:15.2f} "
                  f"{r['eye_points']:10d} {r['eye_span_cm']:11.2f} {r['pupil_span_cm']:9.2f}  views {r['views']}")
        # Four faces are too few for a mean head: the head model is the mean of a synthetic
        # sequence's faces (annotate synth, 3 people), as head_model.path would give one.
        synth_cfg = resolve_config({"synthetic": {"num_frames": 20, "num_cameras": 4, "num_people": 3,
                                                  "render_video": False}})
        run_synth(synth_cfg, work / "synth", "synth_000")
        run_ingest(synth_cfg, work / "synth", "synth_000", work / "synth_ingest")
        run_head_model(cfg, [work / "synth_ingest" / "faces3d.parquet"], work / "head_model.json")
        run_label(cfg, work / "tri" / "faces3d.parquet", work / "ingest" / "cameras.parquet",
                  work / "head_model.json", work / "labels")
        crops = label_crops(work / "labels" / "labels.parquet", work / "ingest" / "cameras.parquet")
        png = contact_sheet(crops, columns=4)
        if png is None:
            raise SystemExit("no valid label faces its camera: nothing to draw")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(args.out) as tmp_path:
            Path(tmp_path).write_bytes(png)
        print(f"{len(crops)} labels drawn to {args.out}")


if __name__ == "__main__":
    main()
