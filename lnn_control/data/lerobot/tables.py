"""Parquet tables of a LeRobot v3 dataset through pyarrow: frame rows, episode rows, tasks.

The column types are those Hugging Face ``datasets`` gives LeRobot's features (what LeRobot's
loader casts to): a feature of shape [1] is a plain column of its dtype, shape [N] a
``fixed_size_list<dtype>[N]``; ``image`` features are ``struct<bytes: binary, path: string>``.
``meta/tasks.parquet`` is a pandas frame indexed by task text (``task_index`` column), so its
schema carries pandas' metadata that makes ``pandas.read_parquet`` restore that index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lnn_control.data.lerobot.layout import LeRobotFormatError

_ARROW_TYPES = {
    "float32": pa.float32(), "float64": pa.float64(), "float16": pa.float16(),
    "int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(), "int8": pa.int8(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "bool": pa.bool_(), "string": pa.string(),
}


def feature_type(name: str, feature: dict[str, Any]) -> pa.DataType:
    """The Arrow type of a non-video feature's column."""
    dtype, shape = feature["dtype"], tuple(feature["shape"])
    if dtype == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    if dtype not in _ARROW_TYPES:
        raise ValueError(f"feature {name!r}: dtype {dtype!r} is not one of {sorted(_ARROW_TYPES)}")
    if shape == (1,):
        return _ARROW_TYPES[dtype]
    if len(shape) == 1:
        return pa.list_(_ARROW_TYPES[dtype], shape[0])
    raise ValueError(f"feature {name!r}: shape {list(shape)}; only [1] and [N] numeric features are written")


def frames_table(features: dict[str, dict[str, Any]], columns: dict[str, np.ndarray]) -> pa.Table:
    """One row per frame: ``columns[name]`` [T] or [T, N] for every non-video feature, in feature order."""
    arrays, fields = [], []
    for name, feature in features.items():
        if feature["dtype"] == "video":
            continue
        kind = feature_type(name, feature)
        values = np.asarray(columns[name])
        if pa.types.is_fixed_size_list(kind):
            flat = pa.array(values.reshape(-1), type=kind.value_type)
            array = pa.FixedSizeListArray.from_arrays(flat, kind.list_size)
        else:
            array = pa.array(values.reshape(-1), type=kind)
        arrays.append(array)
        fields.append(pa.field(name, kind))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def episodes_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Episode rows (``episode_index``, ``tasks``, ``length``, file indices, ``stats/...``) as a table."""
    return pa.Table.from_pylist(list(rows))


def tasks_table(tasks: Sequence[str]) -> pa.Table:
    """``task_index`` + the ``task`` index column, with the pandas metadata LeRobot's reader relies on."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(list(tasks), pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})


def read_tasks(path: Path) -> dict[int, str]:
    """``task_index`` -> task text of a ``tasks.parquet`` (task as pandas index or plain column)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise LeRobotFormatError(f"{path}: unreadable tasks table: {exc}") from exc
    if "task_index" not in table.column_names:
        raise LeRobotFormatError(f"{path}: no task_index column (columns {table.column_names})")
    text_columns = [n for n in ("task", "__index_level_0__") if n in table.column_names]
    text_columns += [n for n in table.column_names if n != "task_index" and pa.types.is_string(table.schema.field(n).type)]
    if not text_columns:
        raise LeRobotFormatError(f"{path}: no task text column (columns {table.column_names})")
    indices = table.column("task_index").to_pylist()
    texts = table.column(text_columns[0]).to_pylist()
    return {int(i): str(t) for i, t in zip(indices, texts)}


def column_array(column: pa.ChunkedArray, name: str, source: Path) -> np.ndarray:
    """A numeric column as [T, N] (fixed-size or variable lists of equal length) or [T, 1] (scalars)."""
    kind = column.type
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        combined = column.combine_chunks()
        rows = len(combined)
        if rows == 0:
            return np.zeros((0, getattr(kind, "list_size", 0)), np.float64)
        flat = np.asarray(combined.flatten().to_numpy(zero_copy_only=False))
        if flat.size % rows:
            raise LeRobotFormatError(f"{source}: column {name!r} holds lists of unequal length")
        return flat.reshape(rows, flat.size // rows)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return np.asarray(column.to_numpy()).reshape(-1, 1)
    raise LeRobotFormatError(f"{source}: column {name!r} has type {kind}, not numbers")


def write_table(path: Path, table: pa.Table) -> None:
    """One Parquet file (snappy, as LeRobot writes them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")
