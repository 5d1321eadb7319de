"""Shards, splits, thinning, balancing, the plan, and the readers (no video needed)."""
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from annotate.datasets.frame_choice import KEY, OTHER, REFERENCE, cheapest_to_decode, frame_kind
from annotate.datasets.plan import PlanConfig, write_plan
from annotate.datasets.readers import ShardRecords, read_columns, shard_paths
from annotate.datasets.shards import ROW_OVERHEAD_BYTES, ShardLimits, ShardWriter
from annotate.datasets.splits import (SplitConfig, assign_splits, balance_subsample, balance_weights,
                                      split_of_key, subject_names, thin_by_yaw, wrap_deg, yaw_bins)
from annotate.core.tables import write_table
from annotate.datasets.torch_dataset import ShardDataset, ShardIterableDataset, assign_row_groups
from tests.sample_rows import sample_columns


# ------------------------------------------------------------------------------ shards

def test_shards_respect_sample_and_byte_limits(tmp_path):
    limits = ShardLimits(max_samples=10, max_bytes=4 * (1000 + ROW_OVERHEAD_BYTES), row_group_samples=3)
    w = ShardWriter(tmp_path, "00_01", limits)
    cols = sample_columns(9, image_bytes=1000)
    w.write({k: v[:5] for k, v in cols.items()})
    w.write({k: v[5:] for k, v in cols.items()})
    shards = w.close()
    assert [s.rows for s in shards] == [4, 4, 1]
    assert [s.path.name for s in shards] == ["00_01-000.parquet", "00_01-001.parquet", "00_01-002.parquet"]
    back = pd.concat([pd.read_parquet(s.path) for s in shards])
    assert back.sample_id.tolist() == cols["sample_id"]
    assert all(pq.ParquetFile(s.path).metadata.row_group(g).num_rows <= 3
               for s in shards for g in range(pq.ParquetFile(s.path).metadata.num_row_groups))
    w2 = ShardWriter(tmp_path / "b", "x", ShardLimits(max_samples=4, row_group_samples=2))
    w2.write(sample_columns(10))
    assert [s.rows for s in w2.close()] == [4, 4, 2]


def test_aborted_shard_leaves_no_file(tmp_path):
    w = ShardWriter(tmp_path, "cam", ShardLimits(max_samples=100, row_group_samples=2))
    w.write(sample_columns(3))
    assert list(tmp_path.iterdir())                      # the open shard's temporary file
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_image_column_is_stored_uncompressed(tmp_path):
    assert ShardWriter(tmp_path / "empty", "c").close() == []
    w = ShardWriter(tmp_path, "c", ShardLimits(row_group_samples=4))
    w.write(sample_columns(4))
    path = w.close()[0].path
    meta = pq.ParquetFile(path).metadata.row_group(0)
    codecs = {meta.column(i).path_in_schema: meta.column(i).compression for i in range(meta.num_columns)}
    assert codecs["image"] == "UNCOMPRESSED" and codecs["yaw"] == "ZSTD"


# ------------------------------------------------------------------------------ splits

def test_split_assignment_is_deterministic_and_by_key():
    config = SplitConfig(by="subject", fractions={"train": 0.5, "val": 0.25, "test": 0.25}, seed=3)
    seqs = np.array(["s1"] * 6 + ["s2"] * 6, dtype=object)
    persons = np.array([0, 1, 2] * 4)
    subjects = subject_names(seqs, persons, {"s2:0": "alice", "s1:0": "alice"})
    assert subjects[0] == subjects[6] == "alice" and subjects[1] == "s1:1"
    splits = assign_splits(seqs, subjects, config)
    for s in set(subjects):
        assert len(set(splits[subjects == s])) == 1                 # a subject never spans splits
    assert splits.tolist() == assign_splits(seqs[::-1], subjects[::-1], config)[::-1].tolist()
    assert split_of_key("s1:1", config) == split_of_key("s1:1", config)
    forced = SplitConfig(by="sequence", assign={"s2": "test"})
    by_seq = assign_splits(seqs, subjects, forced)
    assert set(by_seq[6:]) == {"test"} and len(set(by_seq[:6])) == 1
    # Over many keys the shares approach the fractions.
    many = np.array([f"k{i}" for i in range(4000)], dtype=object)
    counts = pd.Series(assign_splits(many, many, SplitConfig(by="sequence"))).value_counts(normalize=True)
    assert abs(counts["train"] - 0.8) < 0.03 and abs(counts["test"] - 0.1) < 0.02
    with pytest.raises(ValueError):
        SplitConfig(fractions={"train": 0.5, "val": 0.2})


def test_whenet_thinning_keeps_views_whose_yaw_moved():
    group = np.array([0, 0, 0, 0, 0, 1, 1])
    frame = np.array([0, 1, 2, 3, 4, 0, 1])
    yaw = np.array([0.0, 2.0, 4.9, 5.1, 9.0, 179.0, -178.0])         # wrap: 179 -> -178 is 3 deg
    keep = thin_by_yaw(group, frame, yaw, 5.0)
    assert keep.tolist() == [True, False, False, True, False, True, False]
    order = np.array([4, 2, 0, 6, 1, 3, 5])                          # any row order, same decision
    assert thin_by_yaw(group[order], frame[order], yaw[order], 5.0).tolist() == keep[order].tolist()
    assert thin_by_yaw(group, frame, yaw, 0.0).all()
    assert wrap_deg(np.array([-180.0, 190.0, 360.0])).tolist() == [180.0, -170.0, 0.0]


def test_yaw_balancing():
    rng = np.random.default_rng(0)
    yaw = np.concatenate([rng.uniform(-10, 10, 900), rng.uniform(100, 120, 100)])
    w = balance_weights(yaw, 10.0)
    assert w.mean() == pytest.approx(1.0)
    bins = yaw_bins(yaw, 10.0)
    per_bin = pd.Series(w).groupby(bins).sum()
    assert per_bin.max() / per_bin.min() < 1.5                      # every bin weighs about the same
    keys = np.array([f"s{i}" for i in range(len(yaw))])
    keep = balance_subsample(yaw, keys, 10.0, target_per_bin=50)
    kept = pd.Series(bins[keep]).value_counts()
    assert kept.max() < 80 and keep[900:].sum() > 30
    assert (keep == balance_subsample(yaw, keys, 10.0, 50)).all()


def _labels_table(path, n_frames=20):
    """A minimal labels table: 2 people x 2 cameras, some rejected rows."""
    from annotate.core.schema import load_schema

    rows = [(f, p, c) for f in range(n_frames) for p in (0, 1) for c in ("00_00", "00_01")]
    n = len(rows)
    cols = {}
    for field in load_schema("labels").arrow:
        t = field.type
        if hasattr(t, "list_size"):
            cols[field.name] = np.zeros((n, t.list_size))
        elif str(t).startswith("list"):
            cols[field.name] = [[] for _ in range(n)]
        elif str(t) == "bool":
            cols[field.name] = np.ones(n, bool)
        elif "int" in str(t) and "dictionary" not in str(t):
            cols[field.name] = np.zeros(n, int)
        else:
            cols[field.name] = np.zeros(n)
    cols.update({"sequence": ["s"] * n, "frame": [r[0] for r in rows], "person": [r[1] for r in rows],
                 "camera": [r[2] for r in rows], "yaw": np.array([r[0] * 2.0 for r in rows]),
                 "reject_reason": ["too_small" if r[0] == 3 else "" for r in rows]})
    cols["valid"] = np.array([r == "" for r in cols["reject_reason"]])
    write_table(cols, path, "labels")


def test_plan_selects_valid_frames_and_thins(tmp_path):
    _labels_table(tmp_path / "labels.parquet")
    summary = write_plan([tmp_path / "labels.parquet"], tmp_path / "plan.parquet",
                         PlanConfig(frame_start=2, frame_end=15, frame_step=1, thin_min_yaw_change_deg=5.0))
    plan = pd.read_parquet(tmp_path / "plan.parquet")
    assert summary.label_rejections == {"too_small": 4}
    assert summary.valid_labels == 76 and summary.frames_not_selected == 4 * 6           # frames 0, 1, 16-19
    assert 3 not in set(plan.frame) and plan.frame.min() == 2 and plan.frame.max() <= 15
    # yaw grows 2 deg a frame: keep every third frame per (camera, person) -> 2, 5, 8, 11, 14
    assert sorted(set(plan.frame)) == [2, 5, 8, 11, 14]
    assert summary.thinned == summary.valid_labels - summary.frames_not_selected - len(plan)
    assert pq.read_schema(tmp_path / "plan.parquet").metadata[b"schema_name"] == b"dataset_plan"


def test_cheapest_frame_per_window():
    """Per window of ``step`` frames: a key frame, else a reference picture (the most rows,
    then the earliest, within the cheapest kind), else frame start + k * step; rows outside
    the range never."""
    frame = np.array([8, 10, 11, 11, 12, 13, 15, 16, 17, 17, 20, 21, 25, 26, 27])
    kind = np.array([KEY, OTHER, REFERENCE, REFERENCE, KEY, REFERENCE, OTHER, REFERENCE, REFERENCE, REFERENCE,
                     OTHER, OTHER, KEY, OTHER, OTHER])
    keep, windows = cheapest_to_decode(frame, kind, 10, 26, 5)
    # [10, 15): key frame 12 beats reference 11 (2 rows); [15, 20): references 16 and 17 ->
    # 17 (2 rows); [20, 25): none -> 20; [25, 30): key frame 25 (26 is the last in range).
    assert frame[keep].tolist() == [12, 17, 17, 20, 25]
    assert windows == {"key": 2, "reference": 1, "other": 1}
    keep, windows = cheapest_to_decode(frame, np.full(len(frame), OTHER), 10, 26, 5)
    assert frame[keep].tolist() == [10, 15, 20, 25] and windows == {"key": 0, "reference": 0, "other": 4}
    assert frame_kind(np.array([1, 2, 3, 4]), np.array([1]), np.array([1, 3])).tolist() == [KEY, OTHER, REFERENCE,
                                                                                            OTHER]
    assert frame_kind(np.array([1, 2]), np.array([2]), None).tolist() == [OTHER, KEY]


def test_plan_cheapest_to_decode_takes_each_cameras_own(tmp_path):
    _labels_table(tmp_path / "labels.parquet")
    kinds = {"00_00": (np.array([0, 3, 4, 9, 10]), np.array([0, 3, 4, 9, 10, 14, 15, 18])),
             "00_01": (np.array([], np.int64), None)}
    summary = write_plan([tmp_path / "labels.parquet"], tmp_path / "plan.parquet",
                         PlanConfig(frame_start=1, frame_step=6, frame_choice="cheapest_to_decode"),
                         kinds_of=lambda seq, cam: kinds[cam])
    plan = pd.read_parquet(tmp_path / "plan.parquet")
    frames = {c: sorted(set(g.frame)) for c, g in plan.groupby("camera", observed=True)}
    # 00_00: [1, 7) -> key frame 4 (frame 3's labels are rejected), [7, 13) -> 9, [13, 19) ->
    # reference 14, [19, 20) -> 19; 00_01 knows no kinds: 1, 7, 13, 19 as frame_choice exact.
    assert frames == {"00_00": [4, 9, 14, 19], "00_01": [1, 7, 13, 19]}
    assert (summary.key_frame_windows, summary.reference_frame_windows, summary.other_frame_windows) == (2, 1, 5)
    assert len(plan) == 2 * 8 and summary.frames_not_selected == summary.valid_labels - len(plan)
    assert "1 at a reference picture" in str(summary)
    with pytest.raises(ValueError, match="kinds_of"):
        write_plan([tmp_path / "labels.parquet"], tmp_path / "plan2.parquet",
                   PlanConfig(frame_choice="cheapest_to_decode"))


# ----------------------------------------------------------------------------- readers

@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    limits = ShardLimits(max_samples=12, row_group_samples=4)
    for split, seq, n in (("train", "a", 30), ("train", "b", 7), ("val", "c", 5)):
        w = ShardWriter(root / "shards" / split / seq, "00_01", limits)
        w.write(sample_columns(n, seed=n, split=split, sequence=seq))
        w.close()
    return root


def test_records_random_access(shard_dir):
    recs = ShardRecords(shard_dir, split="train")
    assert len(recs) == 37 and len(shard_paths(shard_dir, "train")) == 4
    ids = [recs[i]["sample_id"] for i in range(len(recs))]
    assert len(set(ids)) == 37 and recs[-1]["sample_id"] == ids[-1]
    table = read_columns(shard_dir, ["sample_id", "yaw"], split="train")
    assert table.column("sample_id").to_pylist() == ids
    np.testing.assert_allclose(recs.labels_deg()[:, 0], table.column("yaw").to_numpy())
    with pytest.raises(IndexError):
        recs[37]


def test_map_style_dataset_decodes_tensors(shard_dir):
    ds = ShardDataset(shard_dir, split="val")
    item = ds[2]
    assert item["image"].dtype == torch.uint8 and tuple(item["image"].shape) == (3, 64, 64)
    assert item["R"].shape == (3, 3) and item["euler_deg"].shape == (3,)
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch["image"].shape == (5, 3, 64, 64)


def test_row_groups_are_dealt_to_every_rank_and_worker_exactly_once():
    groups = [(s, g) for s in range(5) for g in range(3)]
    for world, workers in ((1, 1), (2, 2), (3, 4)):
        got = []
        for rank in range(world):
            for worker in range(workers):
                got += assign_row_groups(groups, epoch=1, seed=0, shuffle=True, rank=rank, world_size=world,
                                         worker=worker, num_workers=workers)
        assert sorted(got) == groups
    e1 = assign_row_groups(groups, 1, 0, True, 0, 1, 0, 1)
    assert e1 != assign_row_groups(groups, 2, 0, True, 0, 1, 0, 1)
    assert e1 == assign_row_groups(groups, 1, 0, True, 0, 1, 0, 1)


def test_iterable_dataset_with_workers_and_ranks_reads_each_sample_once(shard_dir):
    expected = set(read_columns(shard_dir, ["sample_id"], split="train").column("sample_id").to_pylist())
    seen = []
    for rank in range(2):
        ds = ShardIterableDataset(shard_dir, split="train", shuffle_buffer=8, rank=rank, world_size=2)
        ds.set_epoch(3)
        for batch in DataLoader(ds, batch_size=4, num_workers=2):
            seen += batch["sample_id"]
    assert sorted(seen) == sorted(expected)
    plain = [r["sample_id"] for r in ShardIterableDataset(shard_dir, split="train", shuffle=False)]
    assert plain == read_columns(shard_dir, ["sample_id"], split="train").column("sample_id").to_pylist()


def test_index_file_decides_the_shard_list(shard_dir, tmp_path):
    paths = shard_paths(shard_dir)
    (tmp_path / "shards").symlink_to(shard_dir / "shards")
    rel = [p.relative_to(shard_dir).as_posix() for p in paths[:2]]
    (tmp_path / "index.json").write_text(json.dumps({"shards": [{"path": r, "split": "train"} for r in rel]}))
    assert [p.relative_to(tmp_path).as_posix() for p in shard_paths(tmp_path)] == rel
