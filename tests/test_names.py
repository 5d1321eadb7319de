"""One gate for names and paths read from data files (annotate.core.names)."""
import json
from pathlib import Path

import pytest

from annotate.datasets.build import manifest_path
from annotate.datasets.exports.common import sample_stem
from annotate.datasets.readers import shard_paths
from annotate.core.names import UnsafeNameError, check_name, check_relative_path
from annotate.panoptic.calibration import read_calibration_info

HOSTILE = ["../../x/00_03", "..", ".", "/etc/passwd", "a/b", "a\\b", ".hidden", "", "00_03\n", "x" * 200, 3]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_with_the_source(name):
    with pytest.raises(UnsafeNameError, match="calib.json"):
        check_name(name, "camera name", "calib.json")


@pytest.mark.parametrize("name", ["00_03", "50_01", "171204_pose1", "synth_000", "cam-1.left"])
def test_real_names_pass(name):
    assert check_name(name, "camera name", "f") == name


def test_relative_paths_stay_under_their_folder(tmp_path):
    assert check_relative_path("shards/train/s/00_00-000.parquet", tmp_path, "shard path", "index.json") == \
        tmp_path / "shards" / "train" / "s" / "00_00-000.parquet"
    for bad in ("../outside.parquet", "/abs.parquet", "shards/../../x", ""):
        with pytest.raises(UnsafeNameError):
            check_relative_path(bad, tmp_path, "shard path", "index.json")


def test_a_calibration_camera_named_with_a_path_is_refused(tmp_path):
    doc = json.loads((Path(__file__).parent / "data" / "calibration_160906_band1_hd.json").read_text())
    doc["cameras"][0]["name"] = "../../../tmp/x/00_03"
    path = tmp_path / "calibration_s.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not a plain name"):
        read_calibration_info(path)


def test_index_paths_outside_the_dataset_are_refused(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps({"shards": [{"path": "../../etc/x.parquet", "split": "train"}]}))
    with pytest.raises(UnsafeNameError, match="index.json"):
        shard_paths(tmp_path, "train")


def test_shard_and_manifest_names_are_checked_before_they_make_paths(tmp_path):
    record = {"sample_id": "s", "sequence": "seq", "camera": "../../../x", "frame": 1, "person": 0}
    with pytest.raises(UnsafeNameError):
        sample_stem(record)
    with pytest.raises(UnsafeNameError):
        manifest_path(tmp_path, "seq", "../../x")
    assert sample_stem({**record, "camera": "00_03"}) == "seq/00_03/00000001_0"
