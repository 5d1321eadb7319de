"""The views of each frame detected in worker processes (annotate.labels.view_search): the
same outputs as in one process, worker failures named, image-rotation summaries merged."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.config import resolve_config
from annotate.labels.view_search import ViewWorkerError, merge_turn_summaries

DATA = Path(__file__).parent / "data"


def _landmarks(path: Path, column: str) -> np.ndarray:
    return np.array(pq.read_table(path).column(column).to_pylist(), dtype=np.float64)


def test_real_frames_give_the_same_outputs_with_workers(tmp_path):
    """The triangulate stage on the real test frames (Face Mesh with its crop consensus on
    MTCNN faces, cross-view association): 1 process and 2 workers write the same tables."""
    from annotate.stages.ingest import run as run_ingest
    from annotate.stages.triangulate import run as run_triangulate

    cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated"})
    run_ingest(cfg, DATA, "haggling_demo", tmp_path / "ingest")
    one = run_triangulate(cfg, DATA, "haggling_demo", tmp_path / "ingest", tmp_path / "one", workers=1)
    two = run_triangulate(cfg, DATA, "haggling_demo", tmp_path / "ingest", tmp_path / "two", workers=2)
    assert one.faces_written == two.faces_written == 4
    assert one.as_dict() | {"seconds": 0} == two.as_dict() | {"seconds": 0}
    for table, column in (("detections2d", "landmarks_px"), ("faces3d", "landmarks_world")):
        a, b = (_landmarks(tmp_path / run / f"{table}.parquet", column) for run in ("one", "two"))
        np.testing.assert_array_equal(a, b)
    for table in ("detections2d", "faces3d", "rejections"):
        a, b = (pq.read_table(tmp_path / run / f"{table}.parquet") for run in ("one", "two"))
        assert a.drop_columns([c for c in a.column_names if c.startswith("landmarks")]).equals(
            b.drop_columns([c for c in b.column_names if c.startswith("landmarks")])), table


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
