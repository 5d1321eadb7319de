"""The training-side input pipeline: sampler order, sharding, resumption, records, shards."""
import numpy as np
import pytest
import torch

from annotate.core.schema import SchemaError
from annotate.train.augment import AugmentConfig
from annotate.train.data import (EpochSampler, PoseDataset, collate, make_loader, normalize_images,
                                 open_shard_source, record_to_sample, visible_from_codes)
from train_synthetic import make_records, make_source, write_shards


@pytest.mark.parametrize("order", ["random", "blocks"])
def test_sampler_covers_each_sample_once_and_shards_disjointly(order):
    kw = dict(batch_size=8, order=order, block_size=16, window_blocks=3, streams=2, seed=3)
    ranks = [EpochSampler(203, rank=r, world_size=2, **kw) for r in range(2)]
    assert ranks[0].per_rank == ranks[1].per_rank
    for epoch in range(2):
        a, b = (s.epoch_order(epoch) for s in ranks)
        assert len(set(a)) == len(a) and not set(a) & set(b)
        assert len(a) + len(b) >= 203 - 2 * 16 * 3          # at most one window's worth left out
    assert not np.array_equal(ranks[0].epoch_order(0), ranks[0].epoch_order(1))
    again = EpochSampler(203, rank=0, world_size=2, **kw)
    np.testing.assert_array_equal(again.epoch_order(1), ranks[0].epoch_order(1))


def test_blocks_order_keeps_each_loader_stream_on_its_own_windows():
    s = EpochSampler(64 * 16, batch_size=32, order="blocks", block_size=64, window_blocks=2, streams=2)
    order = s.epoch_order(0)
    batches = order[: len(order) // 32 * 32].reshape(-1, 32)
    blocks_by_worker = [set(np.concatenate(batches[w::2]) // 64) for w in range(2)]
    assert not blocks_by_worker[0] & blocks_by_worker[1]
    assert all(len(np.unique(b // 64)) <= 2 for b in batches)     # a batch spans one window


def test_resume_position_skips_exactly_the_done_samples():
    s = EpochSampler(100, batch_size=10, order="blocks", block_size=8, window_blocks=2, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=30)
    assert list(s) == full[30:] and len(s) == len(full) - 30
    assert len({p for _, _, p in full}) == len(full)


def test_weighted_sampling_balances_yaw():
    from annotate.datasets.splits import balance_weights

    yaw = np.r_[np.full(900, 10.0), np.full(100, -150.0)]
    s = EpochSampler(1000, weights=balance_weights(yaw, 10.0), seed=0)
    drawn = yaw[s.epoch_order(0)]
    assert 0.4 < (drawn < 0).mean() < 0.6
    with pytest.raises(ValueError, match="random"):
        EpochSampler(1000, weights=np.ones(1000), order="blocks")


def test_visibility_codes_to_targets():
    codes = np.array([0, 1, 2, 3, 4, 5] + [0] * 64, np.uint8)
    v = visible_from_codes(codes)
    assert v[:4].tolist() == [1, 0, 0, 0] and np.isnan(v[4:6]).all()
    assert np.isnan(visible_from_codes(None)).all()


def test_dataset_items_are_reproducible_and_batches_well_formed():
    src = make_source(6, 48)
    ds = PoseDataset(src, 32, 0.9, AugmentConfig(), seed=5)
    a, b, c = ds[(2, 1, 7)], ds[(2, 1, 7)], ds[(2, 2, 7)]
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], c["image"])
    batch = next(iter(make_loader(ds, 4, EpochSampler(6, batch_size=4))))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["R"].shape == (4, 3, 3) and batch["landmarks"].shape == (4, 70, 2)
    lm = batch["landmarks"][torch.isfinite(batch["landmarks"])]
    assert lm.min() > -0.5 and lm.max() < 1.5
    x = normalize_images(batch["image"], channels_last=True)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert len(collate([a, b])["sample_id"]) == 2


def test_shards_written_by_the_dataset_stage_read_back(tmp_path):
    records = make_records(20, 32, seed=4)
    write_shards(tmp_path / "shards", records, per_shard=8, row_group=4)
    src = open_shard_source({"train": [str(tmp_path / "shards")], "window_blocks": 2}, "train")
    assert len(src) == 20
    np.testing.assert_allclose(src.labels_deg()[:, 0], [r["yaw"] for r in records])
    s = record_to_sample(src[3])
    assert s["image"].shape == (32, 32, 3)
    assert np.abs(s["image"].astype(int) - records[3]["image"]).mean() < 6      # JPEG round trip
    np.testing.assert_allclose(s["landmarks"], records[3]["landmarks_crop"].reshape(70, 2), atol=1e-4)
    assert open_shard_source({"train": [], "dataset": None, "train_split": "train", "window_blocks": 2},
                             "train") is None


def test_shards_of_a_newer_major_version_are_refused(tmp_path):
    import pyarrow.parquet as pq

    [path] = write_shards(tmp_path, make_records(4, 32), per_shard=8, row_group=4)
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"schema_version"] = b"9.0.0"
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(SchemaError, match="newer"):
        open_shard_source({"train": [str(path)], "window_blocks": 2}, "train")
