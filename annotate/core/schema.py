"""Table schemas: the one loader for the language-neutral declarations in ``schemas/``.

Each Parquet table has a file ``schemas/<name>.schema.yaml``::

    name: labels
    version: 1.0.0          # semantic version; readers refuse a newer major
    description: ...
    columns:
      - name: yaw
        type: float64       # Arrow type, see ``parse_arrow_type``
        unit: deg           # optional: physical unit
        frame: head->camera # optional: frame of reference
        nullable: false     # optional, default false
        description: ...

The Arrow schema built from it carries ``schema_name`` and ``schema_version`` in its
metadata, and every column's unit/frame/description in the field metadata, so a file is
self-describing for pandas, polars, DuckDB and Hugging Face ``datasets`` alike.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyarrow as pa
import yaml

_SCALARS = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
}


class SchemaError(ValueError):
    """A table or schema file does not match its declaration."""


def parse_arrow_type(text: str) -> pa.DataType:
    """Parse a type string: scalars, ``list<T>``, ``fixed_size_list<T, N>``, ``dictionary<string>``."""
    s = text.replace(" ", "")
    if s in _SCALARS:
        return _SCALARS[s]
    m = re.fullmatch(r"fixed_size_list<(.+),(\d+)>", s)
    if m:
        return pa.list_(parse_arrow_type(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"list<(.+)>", s)
    if m:
        return pa.list_(parse_arrow_type(m.group(1)))
    m = re.fullmatch(r"dictionary<(.+)>", s)
    if m:
        return pa.dictionary(pa.int32(), parse_arrow_type(m.group(1)))
    raise SchemaError(f"unknown Arrow type string {text!r}")


@dataclass(frozen=True)
class TableSchema:
    name: str
    version: str
    description: str
    arrow: pa.Schema
    source: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def column_names(self) -> list[str]:
        return self.arrow.names


def schemas_dir() -> Path:
    """The directory holding ``*.schema.yaml``: the source tree's, else the installed copy."""
    here = Path(__file__).resolve().parents[2] / "schemas"
    if here.is_dir():
        return here
    return Path(str(resources.files("annotate._schemas")))


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> TableSchema:
    """Load ``schemas/<name>.schema.yaml`` as an Arrow schema with metadata."""
    path = schemas_dir() / f"{name}.schema.yaml"
    if not path.is_file():
        raise SchemaError(f"no schema file for table {name!r}: {path} does not exist")
    doc = yaml.safe_load(path.read_text())
    for key in ("name", "version", "columns"):
        if key not in doc:
            raise SchemaError(f"{path}: missing key {key!r}")
    if doc["name"] != name:
        raise SchemaError(f"{path}: declares name {doc['name']!r}, expected {name!r}")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(doc["version"])):
        raise SchemaError(f"{path}: version {doc['version']!r} is not MAJOR.MINOR.PATCH")
    fields = []
    for col in doc["columns"]:
        meta = {k: str(col[k]) for k in ("unit", "frame", "description") if col.get(k) is not None}
        fields.append(
            pa.field(
                col["name"],
                parse_arrow_type(col["type"]),
                nullable=bool(col.get("nullable", False)),
                metadata=meta or None,
            )
        )
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise SchemaError(f"{path}: duplicate column names")
    version = str(doc["version"])
    arrow = pa.schema(
        fields,
        metadata={"schema_name": name, "schema_version": version},
    )
    return TableSchema(name, version, str(doc.get("description", "")).strip(), arrow, str(path))
