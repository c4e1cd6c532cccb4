"""evaluation.parquet: one row per protocol run; generative metrics and context in the schema metadata."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from ganaug.errors import DataError
from ganaug.store import read_table, write_table

EVALUATION_META_KEY = b"ganaug_evaluation"
EVALUATION_SCHEMA = pa.schema(
    [
        pa.field("train_fraction", pa.float64(), nullable=False),
        pa.field("protocol", pa.string(), nullable=False),
        pa.field("ratio", pa.float64(), nullable=True),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("accuracy", pa.float64(), nullable=False),
        pa.field("macro_f1", pa.float64(), nullable=False),
        pa.field("balanced_accuracy", pa.float64(), nullable=False),
        pa.field("per_class_recall", pa.list_(pa.float64()), nullable=False),
        pa.field("n_real", pa.int64(), nullable=False),
        pa.field("n_synthetic", pa.int64(), nullable=False),
        pa.field("val_accuracy", pa.float64(), nullable=False),
        pa.field("val_macro_f1", pa.float64(), nullable=False),
        pa.field("best_step", pa.int64(), nullable=False),
        pa.field("steps_run", pa.int64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        # pool protocols only: pseudo-labelled pool images the classifier trained on, and what was chosen on val (JSON)
        pa.field("n_pseudo", pa.int64(), nullable=True),
        pa.field("pool_details", pa.string(), nullable=True),
    ]
)
# Columns that rows of protocols without a pool leave out (and files written before the pool existed lack).
OPTIONAL_COLUMNS = ("n_pseudo", "pool_details")


def write_evaluation(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write the run rows atomically, with `meta` (JSON) in the schema metadata."""
    schema = EVALUATION_SCHEMA.with_metadata({EVALUATION_META_KEY: json.dumps(meta, sort_keys=True, default=str).encode()})
    table = pa.Table.from_pylist([{name: row[name] if name not in OPTIONAL_COLUMNS else row.get(name)
                                   for name in EVALUATION_SCHEMA.names} for row in rows], schema=schema)
    return write_table(table, path)


def read_evaluation(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and metadata of an evaluation.parquet."""
    table = read_table(path, pa.schema([f for f in EVALUATION_SCHEMA if f.name not in OPTIONAL_COLUMNS]))
    raw = (table.schema.metadata or {}).get(EVALUATION_META_KEY)
    if raw is None:
        raise DataError(f"{path}: no ganaug evaluation metadata in the Parquet schema (was it written by ganaug?)")
    try:
        meta = json.loads(raw)
    except ValueError as err:
        raise DataError(f"{path}: evaluation metadata is not valid JSON ({err})") from None
    rows = table.to_pylist()
    for row in rows:
        if row["ratio"] is not None and math.isnan(row["ratio"]):
            row["ratio"] = None
    return rows, meta
