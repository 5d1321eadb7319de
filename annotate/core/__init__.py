"""The lowest layer: atomic writes, names from data, Parquet tables and their schemas, row keys,
CPU counts, the open3d loader. Imports nothing else from ``annotate``."""
