"""Runs without body skeletons on synthetic sequences: shared by tests/test_no_bodies.py and
benchmarks/bench_no_bodies.py (what is measured is described there)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from annotate.core.tables import read_table, write_table
from annotate.detect.synthetic import SyntheticDetector, true_people

BODIES_DIR = "hdPose3d_stage1_coco19"


def without_bodies(seq: Path, out: Path) -> Path:
    """A copy of the sequence folder ``seq`` under ``out`` with the body files left out
    (links to the rest), as a capture with only a calibration and media would be."""
    copy = out / seq.name
    copy.mkdir(parents=True)
    for entry in seq.iterdir():
        if entry.name != BODIES_DIR:
            (copy / entry.name).symlink_to(entry.resolve())
    return copy


def association_figures(detections: Path, detector: SyntheticDetector) -> tuple[dict, dict]:
    """(figures, id -> true person) of one run's detections2d table (module docstring)."""
    d = pq.read_table(detections, columns=["frame", "person", "camera", "landmarks_px"]).to_pandas()
    camera = np.array([detector.rig.names.index(c) for c in d["camera"]])
    points = np.stack(d["landmarks_px"].to_numpy()).reshape(-1, 70, 2)
    truth = true_people(detector, d["frame"].to_numpy(), camera, points)
    person = d["person"].to_numpy().astype(np.int64)
    mapping, claimed, switches = {}, set(), 0
    for pid, _ in Counter(person[person >= 0].tolist()).most_common():
        true = Counter(truth[person == pid].tolist()).most_common(1)[0][0]
        switches += true in claimed
        claimed.add(true)
        mapping[pid] = true
    mapped = np.array([mapping.get(p, -2) for p in person.tolist()])
    assigned = person >= 0
    return {"detections": len(person), "assigned": float(assigned.mean()),
            "right": float((mapped == truth).mean()),
            "right_of_assigned": float((mapped[assigned] == truth[assigned]).mean()) if assigned.any() else 0.0,
            "ids": len(mapping), "id_switches": switches}, mapping


def with_true_ids(faces3d: Path, mapping: dict, out: Path) -> Path:
    """The faces3d table with the run's ids replaced by the true persons they map to."""
    import pyarrow as pa

    table = read_table(faces3d, "faces3d")
    person = pa.array([mapping[int(p)] for p in table.column("person").to_pylist()], type=table.schema.field("person").type)
    write_table(table.set_column(table.schema.get_field_index("person"), table.schema.field("person"), person),
                out, "faces3d")
    return out
