"""Our labels share WHENet's zero pose on faces of any shape (the benchmark's figure, smaller)."""
import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.config import resolve_config
from annotate.core.tables import fixed_list_to_numpy
from annotate.head.whenet_oracle import whenet_labels
from annotate.panoptic.tables import load_cameras
from annotate.stages.head_model import run as run_head_model
from annotate.stages.ingest import run as run_ingest
from annotate.stages.label import run as run_label
from annotate.synth.generate import generate_sequence
from annotate.synth.scene import SceneConfig

pytestmark = pytest.mark.slow            # end to end: tens of seconds


def signed_median_differences(root, name, out, orientation):
    cfg = resolve_config({"head_model": {"orientation": orientation}})
    run_ingest(cfg, root, name, out / "ingest")
    run_head_model(cfg, [out / "ingest" / "faces3d.parquet"], out / "head_model.json")
    run_label(cfg, out / "ingest" / "faces3d.parquet", out / "ingest" / "cameras.parquet", out / "head_model.json",
              out / "labels")
    labels = pq.read_table(out / "labels" / "labels.parquet",
                           columns=["frame", "person", "camera_index", "yaw", "pitch", "roll", "valid"]).to_pandas()
    faces = pq.read_table(out / "ingest" / "faces3d.parquet")
    rig = load_cameras(out / "ingest" / "cameras.parquet")
    fitted, status, angles = whenet_labels(fixed_list_to_numpy(faces.column("landmarks_world"), (70, 3)).astype(float),
                                           fixed_list_to_numpy(faces.column("score"), (70,)).astype(float),
                                           rig.R_cam_world)
    # labels rows are (face, camera) in faces3d order, as the oracle's (M, C) arrays
    ours = labels[["yaw", "pitch", "roll"]].to_numpy()
    theirs = angles.reshape(-1, 3)
    keep = labels["valid"].to_numpy() & status.reshape(-1)
    d = (ours[keep] - theirs[keep] + 180.0) % 360.0 - 180.0
    frontal = np.abs(ours[keep, 0]) <= 90
    return np.median(d[frontal], axis=0), np.median(d[~frontal], axis=0)


@pytest.mark.parametrize("shape", [{"face_mouth_forward_cm": 1.0}, {"face_width_scale": 1.1}])
def test_labels_agree_with_whenets_own_labelling_on_other_faces(tmp_path, shape):
    generate_sequence(tmp_path / "seq", "shape", SceneConfig(seed=1, num_frames=150, num_cameras=6,
                                                             expressions=False, **shape), render_video=False)
    # 150 frames: the medians' own spread is a few tenths of a degree (worst axis 0.31-0.60
    # deg over seeds 1-2 and both shapes), the 600-frame benchmark's worst is 0.27.
    for view in signed_median_differences(tmp_path / "seq", "shape", tmp_path / "whenet", "whenet"):
        assert np.abs(view).max() <= 0.75, view
    if "face_mouth_forward_cm" in shape:
        # The previous rule moves with the mouth: pitch off by degrees (the test can fail).
        frontal, _ = signed_median_differences(tmp_path / "seq", "shape", tmp_path / "eye", "eye_mouth")
        assert abs(frontal[1]) > 2.0
