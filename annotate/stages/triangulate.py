"""Stage ``triangulate``: 2D landmarks in every view -> triangulated faces3d; and the
cross-check of published against triangulated faces (annotate.labels.triangulate_stage)."""
from __future__ import annotations

from pathlib import Path

from annotate.config import triangulate_stage_config, with_detect_backend
from annotate.core.atomic import write_json_atomic
from annotate.core.results import INGEST_FILES, TRIANGULATE_FILES


def run(config: dict, root: str | Path, sequence: str, ingest_dir: str | Path, out_dir: str | Path,
        workers: int = 1):
    """Detect and triangulate ``root/sequence``: ``TRIANGULATE_FILES`` faces3d (source
    triangulated), detections2d, rejections and summary in ``out_dir``. workers: processes
    that detect the views (image backends; ``annotate.labels.view_search``)."""
    from functools import partial

    from annotate.labels.frame_views import make_backend
    from annotate.labels.triangulate_stage import triangulate_sequence
    from annotate.panoptic.tables import load_cameras

    ingest_dir, out_dir = Path(ingest_dir), Path(out_dir)
    cameras, bodies = ingest_dir / INGEST_FILES["cameras"], ingest_dir / INGEST_FILES["bodies"]
    seq_dir = Path(root) / sequence
    config = with_detect_backend(config, seq_dir)          # detect.backend auto: per sequence
    rig = load_cameras(cameras)
    backend = make_backend(config, seq_dir, rig)
    frames = _frames(ingest_dir, bodies)
    summary = triangulate_sequence(seq_dir, cameras, bodies, frames, backend, out_dir,
                                   triangulate_stage_config(config), frame_source=config["detect"]["frames_from"],
                                   workers=workers, backend_factory=partial(make_backend, config, seq_dir, rig))
    write_json_atomic(out_dir / TRIANGULATE_FILES["summary"], {"backend": backend.name, **summary.as_dict()})
    return summary


def _frames(ingest_dir: Path, bodies: Path):
    """(F,) frames to triangulate: those of the bodies and published faces, or, for a capture
    without 3D files, the frames of its media (the ingest's frames table; an ingest folder
    without that table has its frames only in the bodies and faces)."""
    from annotate.labels.triangulate_stage import selected_frames
    from annotate.panoptic.tables import load_frames

    path = ingest_dir / INGEST_FILES["frames"]
    listed = load_frames(path) if path.is_file() else None
    if listed is not None and listed.from_media:
        return listed.frame
    return selected_frames(bodies, ingest_dir / INGEST_FILES["faces3d"])


def crosscheck(published: str | Path, triangulated: str | Path, out_dir: str | Path) -> dict:
    """Published vs triangulated faces: the crosscheck table, the combined faces3d (published
    with triangulated gap fill) and the crosscheck summary in ``out_dir``."""
    from annotate.labels.triangulate_stage import crosscheck_faces3d

    out_dir = Path(out_dir)
    figures = crosscheck_faces3d(published, triangulated, out_dir / TRIANGULATE_FILES["crosscheck"],
                                 out_dir / TRIANGULATE_FILES["combined"])
    write_json_atomic(out_dir / TRIANGULATE_FILES["crosscheck_summary"], figures)
    return figures
