"""Stage ``ingest``: a Panoptic-layout sequence -> the ingest tables (annotate.panoptic.ingest)."""
from __future__ import annotations

from pathlib import Path


def run(config: dict, root: str | Path, sequence: str, out_dir: str | Path):
    """Read ``root/sequence`` into ``out_dir`` (``ResultsLayout.sequence(..).ingest_dir``)."""
    from annotate.media.video import count_video_frames
    from annotate.panoptic.ingest import ingest_sequence

    ing = config["ingest"]
    return ingest_sequence(root, sequence, out_dir, cameras=ing["cameras"], frame_start=ing["frame_start"],
                           frame_end=ing["frame_end"], frame_step=ing["frame_step"], on_error=ing["on_error"],
                           count_video_frames=count_video_frames,
                           frame_offsets=ing["frame_offsets"].get(sequence, {}))
