"""Stage ``label``: fit every face and label it in every camera (annotate.labels.stage)."""
from __future__ import annotations

from pathlib import Path

from annotate.config import fit_config, smoothing_config, subject_config, view_config
from annotate.core.atomic import write_json_atomic
from annotate.core.results import LABEL_FILES
from annotate.head.head_model import load_head_model


def run(config: dict, faces3d_path: str | Path, cameras_path: str | Path, model_path: str | Path,
        out_dir: str | Path):
    """Write head_fits, labels, subjects and summary (``LABEL_FILES``) into ``out_dir``."""
    from annotate.labels.stage import label_sequence

    model = load_head_model(model_path)
    summary = label_sequence(faces3d_path, cameras_path, model, out_dir, fit_config(config), view_config(config),
                             chunk_faces=config["label"]["chunk_faces"], subject_config=subject_config(config),
                             smoothing=smoothing_config(config))
    write_json_atomic(Path(out_dir) / LABEL_FILES["summary"], {
        "faces": summary.faces, "fits_ok": summary.fits_ok, "labels": summary.labels,
        "labels_valid": summary.labels_valid, "fit_status": dict(summary.fit_status),
        "reject_reasons": {k or "accepted": v for k, v in summary.reject_reasons.items()},
        "visibility": summary.visibility_json(),
        "seconds": round(summary.seconds, 3)})
    return summary
