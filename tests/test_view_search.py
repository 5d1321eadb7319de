"""The views of each frame detected in worker processes (annotate.labels.view_search):
worker failures named, image-rotation summaries merged (the same outputs as in one process
on the real frames: tests/test_no_bodies.py)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from annotate.config import resolve_config
from annotate.labels.view_search import ViewWorkerError, merge_turn_summaries

DATA = Path(__file__).parent / "data"


def test_a_failing_worker_is_named_with_its_error(tmp_path):
    """A backend that cannot be built in the workers: the error names the worker's cameras
    and carries the worker's traceback, and the workers are ended."""
    from annotate.labels.frame_views import make_backend
    from annotate.labels.view_search import ParallelViews
    from annotate.panoptic.calibration import read_calibration_info

    seq = DATA / "haggling_demo"
    rig = read_calibration_info(seq / "calibration_haggling_demo.json", names=["00_03", "00_06", "00_12"]).rig
    cfg = resolve_config({"detect": {"backend": "facemesh"}})
    cfg["detect"]["facemesh"]["roi_passes"] = 0              # past the schema: FaceMeshConfig refuses it
    views = ParallelViews(partial(make_backend, cfg, seq, rig), seq, rig.names, np.array([4500]), "images", {}, 2)
    try:
        with pytest.raises(ViewWorkerError, match=r"(?s)the view worker for cameras 00_\d\d.* failed:.*roi_passes >= 1"):
            views.detect(4500, [np.zeros((0, 4))] * 3)
    finally:
        views.close()
    assert not any(p.is_alive() for p in views._processes)


def test_image_rotation_summaries_of_the_workers_merge_in_camera_order():
    parts = [{"degrees_cw": {"c0": 0, "c2": 90}, "probe_images": {"c0": 3}},
             {"degrees_cw": {"c1": 270}, "probe_images": {"c1": 2}}]
    merged = merge_turn_summaries(parts, ("c0", "c1", "c2"))
    assert merged == {"degrees_cw": {"c0": 0, "c1": 270, "c2": 90}, "probe_images": {"c0": 3, "c1": 2}}
    assert list(merged["degrees_cw"]) == ["c0", "c1", "c2"]
    assert merge_turn_summaries([{}, {}], ("c0",)) == {}
