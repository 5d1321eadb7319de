"""Tables and training datasets: schemas, Parquet I/O, the dataset stage and its readers.

The shard readers are importable from here (torch is imported only when they are used)::

    from annotate.datasets import ShardDataset, ShardIterableDataset, ShardRecords, shard_paths
"""
_LAZY = {"ShardDataset": "torch_dataset", "ShardIterableDataset": "torch_dataset",
         "ShardRecords": "readers", "shard_paths": "readers", "read_columns": "readers"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"annotate.datasets.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'annotate.datasets' has no attribute {name!r}")
