"""Labels and head fits of schema 1.x (eye-mouth zero pose) convert exactly to 2.x."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.config import resolve_config
from annotate.core.schema import SchemaError
from annotate.core.tables import read_table
from annotate.head.head_frame import HeadFrameSpec
from annotate.geometry.rotations import geodesic_distance
from annotate.labels.convert import convert_head_fits, convert_labels
from annotate.head.head_model import HeadModel, load_head_model, save_head_model
from annotate.labels.stage import build_model_from_tables, label_sequence
from annotate.labels.subjects import SubjectConfig
from annotate.stages.ingest import run as run_ingest
from annotate.synth.generate import generate_sequence
from annotate.synth.scene import SceneConfig

pytestmark = pytest.mark.slow            # end to end: tens of seconds

SEQ = "synth_conv"


def as_version_1(path, name):
    """Rewrite a table's metadata as the 1.x schema it would have had."""
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"schema_version"] = b"1.1.0" if name == "labels" else b"1.0.0"
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("convert")
    generate_sequence(tmp / "seq", SEQ, SceneConfig(seed=5, num_frames=12, num_cameras=8), render_video=False)
    ingest = tmp / "ingest"
    run_ingest(resolve_config({}), tmp / "seq", SEQ, ingest)
    eye_mouth = build_model_from_tables([ingest / "faces3d.parquet"], spec=HeadFrameSpec(orientation="eye_mouth"))
    # The format-1 file of that model, then read back: upgraded to WHENet's frame.
    doc = eye_mouth.to_json()
    doc["version"] = "1.0.0"
    del doc["spec"]["orientation"]
    (tmp / "model_v1.json").write_text(json.dumps(doc))
    upgraded = load_head_model(tmp / "model_v1.json")
    save_head_model(upgraded, tmp / "model_v2.json")
    for name, model in (("old", eye_mouth), ("new", upgraded)):
        # 1.x labels had no subject shapes: compare like with like.
        label_sequence(ingest / "faces3d.parquet", ingest / "cameras.parquet", model, tmp / name,
                       progress=False, subject_config=SubjectConfig(enabled=False))
    as_version_1(tmp / "old" / "labels.parquet", "labels")
    as_version_1(tmp / "old" / "head_fits.parquet", "head_fits")
    return tmp, upgraded


def test_old_files_are_refused_with_the_converter_named(runs):
    tmp, _ = runs
    with pytest.raises(SchemaError, match="annotate convert-labels"):
        read_table(tmp / "old" / "labels.parquet", "labels")


def test_upgraded_model_is_the_same_shape_in_whenet_frame(runs):
    tmp, upgraded = runs
    assert upgraded.spec.orientation == "whenet"
    R, origin = upgraded.eye_mouth_from_head()
    doc = json.loads((tmp / "model_v2.json").read_text())
    np.testing.assert_allclose(doc["eye_mouth_from_head"]["R"], R, atol=1e-11)
    assert doc["version"].startswith("2.")


def test_converted_labels_equal_labels_made_in_the_new_frame(runs):
    tmp, upgraded = runs
    convert_labels(tmp / "old" / "labels.parquet", tmp / "ingest" / "cameras.parquet", upgraded, tmp / "conv.parquet")
    convert_head_fits(tmp / "old" / "head_fits.parquet", upgraded, tmp / "conv_fits.parquet")
    new = read_table(tmp / "new" / "labels.parquet", "labels").to_pandas()
    conv = read_table(tmp / "conv.parquet", "labels").to_pandas()
    assert len(new) == len(conv) > 0
    ok = new["reject_reason"] != "fit_failed"
    Rn = np.stack(new["R_cam_head"][ok]).reshape(-1, 3, 3)
    Rc = np.stack(conv["R_cam_head"][ok]).reshape(-1, 3, 3)
    # Equal up to the 5-decimal rounding of the saved model (1e-5 deg).
    assert np.degrees(geodesic_distance(Rn, Rc)).max() < 1e-4
    for col in ("yaw", "pitch", "roll"):
        np.testing.assert_allclose(conv[col][ok], new[col][ok], atol=1e-3)
    np.testing.assert_allclose(np.stack(conv["head_centre_cam"][ok]), np.stack(new["head_centre_cam"][ok]), atol=1e-4)
    np.testing.assert_allclose(np.stack(conv["box"][ok]), np.stack(new["box"][ok]), atol=1e-3)
    assert (conv["reject_reason"] == new["reject_reason"]).all()
    old = pq.read_table(tmp / "old" / "labels.parquet").to_pandas()
    # The conversion is a real change: the eye-mouth and WHENet zeros differ on this face.
    Ro = np.stack(old["R_cam_head"][ok]).reshape(-1, 3, 3)
    assert np.degrees(geodesic_distance(Ro, Rc)).min() > 0.01
    fits_new = read_table(tmp / "new" / "head_fits.parquet", "head_fits").to_pandas()
    fits_conv = read_table(tmp / "conv_fits.parquet", "head_fits").to_pandas()
    good = fits_new["status"] == "ok"
    np.testing.assert_allclose(np.stack(fits_conv["t_world_head"][good]), np.stack(fits_new["t_world_head"][good]), atol=1e-4)


def test_converting_a_new_file_is_refused(runs):
    tmp, upgraded = runs
    with pytest.raises(SchemaError, match="not 1.x"):
        convert_labels(tmp / "new" / "labels.parquet", tmp / "ingest" / "cameras.parquet", upgraded, tmp / "x.parquet")


def test_cli_converts_and_names_bad_input(runs, capsys):
    from annotate.cli import main

    tmp, _ = runs
    out = tmp / "cli.parquet"
    assert main(["convert-labels", "--model", str(tmp / "model_v1.json"), "--labels", str(tmp / "old" / "labels.parquet"),
                 "--cameras", str(tmp / "ingest" / "cameras.parquet"), "--out", str(out)]) == 0
    assert read_table(out, "labels").num_rows == pq.ParquetFile(tmp / "old" / "labels.parquet").metadata.num_rows
    assert main(["convert-labels", "--model", str(tmp / "model_v1.json"), "--labels", str(out),
                 "--cameras", str(tmp / "ingest" / "cameras.parquet"), "--out", str(tmp / "again.parquet")]) == 2
    assert "not 1.x" in capsys.readouterr().err
