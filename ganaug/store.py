"""Parquet artifacts: schemas, atomic writes, validated reads, content hashes, run folders.

Pixel layout everywhere: `pixels` is a flat uint8 list in CHW row-major order
(channel, then row, then column), the order `torch` uses, so `np.reshape(C, H, W)` restores it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from ganaug import faults
from ganaug.errors import DataError

SCHEMA_VERSION = 1
META_KEY = b"ganaug"
ORIGIN_KEY = b"ganaug.origin"  # where a table was made; not part of its content hash
SPLITS = ("train", "val", "test")
POOL_SPLIT = "unlabelled"  # the unlabelled pool: rows with a null label (-1 in memory)
NO_LABEL = -1
SOURCES = ("real", "synthetic")

DATASET_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=True),  # null only in the pool (split 'unlabelled')
        pa.field("split", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("pixels", pa.list_(pa.uint8()), nullable=False),
    ]
)
ALL_SPLITS = (*SPLITS, POOL_SPLIT)
# synthetic rows always carry their class: the label column is non-null there (checked on read)
SYNTHETIC_SCHEMA = (
    DATASET_SCHEMA.set(1, pa.field("label", pa.int32(), nullable=False))
    .append(pa.field("checkpoint_id", pa.string(), nullable=False))
    .append(pa.field("quality_score", pa.float32(), nullable=True))
)


class ArtifactRef(BaseModel):
    """A small frozen handle that stages pass to each other; the file is the payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    content_hash: str
    schema_version: int = SCHEMA_VERSION
    rows: int = 0
    kind: str = "file"
    results_hash: str | None = None  # results tables and reports: their hash without timings or run name

    @property
    def file(self) -> Path:
        return Path(self.path)


class DatasetRef(ArtifactRef):
    """Handle to a `dataset.parquet`."""

    kind: str = "dataset"


class SyntheticRef(ArtifactRef):
    """Handle to a `synthetic.parquet`."""

    kind: str = "synthetic"


@dataclass(frozen=True)
class DatasetMeta:
    """Schema metadata of a dataset or synthetic table."""

    height: int
    width: int
    channels: int
    class_names: list[str]
    ingestion_source: str
    pixel_scaling: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def pixels_per_image(self) -> int:
        return self.channels * self.height * self.width

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "class_names": list(self.class_names),
            "ingestion_source": self.ingestion_source,
            "pixel_scaling": self.pixel_scaling,
            "pixel_layout": "CHW",
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetMeta:
        return cls(
            height=int(data["height"]),
            width=int(data["width"]),
            channels=int(data["channels"]),
            class_names=[str(name) for name in data["class_names"]],
            ingestion_source=str(data.get("ingestion_source", "")),
            pixel_scaling=dict(data.get("pixel_scaling", {})),
            extra=dict(data.get("extra", {})),
        )


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset table in memory: images as (N, C, H, W) uint8 plus per-row columns."""

    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64; NO_LABEL (-1) in the pool (split 'unlabelled')
    splits: np.ndarray  # (N,) str
    sources: np.ndarray  # (N,) str
    sample_ids: np.ndarray  # (N,) str
    meta: DatasetMeta
    content_hash: str
    path: Path
    extra_columns: dict[str, np.ndarray] = field(default_factory=dict)

    def select(self, split: str | None = None, source: str | None = None) -> np.ndarray:
        """Boolean row mask for a split and/or source."""
        mask = np.ones(len(self.labels), dtype=bool)
        if split is not None:
            mask &= self.splits == split
        if source is not None:
            mask &= self.sources == source
        return mask

    def labelled(self) -> np.ndarray:
        """Boolean row mask of every row with a label (all splits but the unlabelled pool)."""
        return self.splits != POOL_SPLIT


# ---------------------------------------------------------------- atomic writes


def _temporary_beside(path: Path) -> Path:
    """A new empty file `.<name>.<random>.tmp` in `path`'s folder (created if missing)."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create output folder {parent}: {err.strerror or err}") from None
    if not os.access(parent, os.W_OK):
        raise DataError(f"output folder {parent} is not writable")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    return Path(tmp_name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Temporary paths beside each of `paths`, renamed into place together only if the block succeeds.

    For outputs that belong together (evaluation.parquet and report.md): an interruption while they
    are written leaves the old set, never a new file beside an old one.
    """
    targets = [Path(path) for path in paths]
    temporaries: list[Path] = []
    try:
        for target in targets:
            temporaries.append(_temporary_beside(target))
        yield temporaries
        for tmp, target in zip(temporaries, targets, strict=True):
            faults.reached(f"write:{target.name}")  # written, not yet in place
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write a Parquet table atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: str | Path, schema: pa.Schema) -> pa.Table:
    """Read a Parquet file and check that it has `schema`'s columns with their types."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"artifact {path} does not exist")
    try:
        table = pq.read_table(path)
        # a damaged file can hold invalid UTF-8 (column names, strings) or offsets that Arrow does not check on read
        table.validate(full=True)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:  # damage raises several error types
        raise DataError(f"{path} is not a readable Parquet file: {err}") from None
    check_columns(table, schema, path)
    return table


def check_columns(table: pa.Table, schema: pa.Schema, path: str | Path) -> None:
    for expected in schema:
        if expected.name not in table.column_names:
            raise DataError(f"{path}: column '{expected.name}' is missing")
        actual = table.schema.field(expected.name).type
        if actual != expected.type:
            raise DataError(f"{path}: column '{expected.name}' has type {actual}, expected {expected.type}")


# ---------------------------------------------------------------- dataset tables


def _hash_arrays(meta: DatasetMeta, columns: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(meta.to_json(), sort_keys=True).encode())
    for name in sorted(columns):
        values = columns[name]
        digest.update(name.encode())
        if values.dtype.kind in "OUS":
            digest.update("\x1f".join(map(str, values.tolist())).encode())
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def build_dataset_table(
    images: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    sources: np.ndarray,
    sample_ids: np.ndarray,
    meta: DatasetMeta,
    extra_columns: dict[str, np.ndarray] | None = None,
) -> tuple[pa.Table, str]:
    """Build the Arrow table and its content hash from (N, C, H, W) uint8 images."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"images must be a (N, C, H, W) uint8 array, got {images.dtype} {images.shape}")
    n = len(images)
    flat = images.reshape(n, int(np.prod(images.shape[1:])))  # (N, C*H*W), also for N = 0
    pixels = pa.ListArray.from_arrays(
        pa.array(np.arange(0, flat.size + 1, flat.shape[1] if n else 1, dtype=np.int32)[: n + 1]),
        pa.array(flat.reshape(-1), type=pa.uint8()),
    )
    columns: dict[str, np.ndarray] = {
        "sample_id": np.asarray(sample_ids, dtype=str),
        "label": np.asarray(labels, dtype=np.int32),
        "split": np.asarray(splits, dtype=str),
        "source": np.asarray(sources, dtype=str),
        "pixels": flat,
    }
    columns.update(extra_columns or {})
    unlabelled = _check_pool_labels(columns["label"], columns["split"], columns["source"])
    content_hash = _hash_arrays(meta, columns)  # the pool's null labels are hashed as NO_LABEL
    arrays = [
        pa.array(columns["sample_id"], type=pa.string()),
        pa.array(columns["label"], type=pa.int32(), mask=unlabelled),
        pa.array(columns["split"], type=pa.string()),
        pa.array(columns["source"], type=pa.string()),
        pixels,
    ]
    schema = DATASET_SCHEMA
    for name, values in (extra_columns or {}).items():
        arrays.append(pa.array(values))
        schema = schema.append(pa.field(name, arrays[-1].type, nullable=True))
    meta_json = dict(meta.to_json(), content_hash=content_hash)
    schema = schema.with_metadata({META_KEY: json.dumps(meta_json, sort_keys=True).encode()})
    return pa.Table.from_arrays(arrays, schema=schema), content_hash


def _check_pool_labels(labels: np.ndarray, splits: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Mask of the pool's rows; refuses a labelled pool row, an unlabelled row elsewhere and a synthetic pool row."""
    pool = splits == POOL_SPLIT
    if (labels[pool] != NO_LABEL).any():
        raise DataError(f"rows of split '{POOL_SPLIT}' must have no label (NO_LABEL = {NO_LABEL}); the pool's labels are never stored")
    if (labels[~pool] == NO_LABEL).any():
        raise DataError(f"rows of splits {list(SPLITS)} need a label; only split '{POOL_SPLIT}' holds unlabelled rows")
    if (sources[pool] != "real").any():
        raise DataError(f"rows of split '{POOL_SPLIT}' must be real images, not synthetic ones")
    return pool


def write_dataset(
    path: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    meta: DatasetMeta,
    sample_ids: np.ndarray | None = None,
    sources: np.ndarray | None = None,
    extra_columns: dict[str, np.ndarray] | None = None,
) -> DatasetRef:
    """Write `dataset.parquet` (or a synthetic table) atomically and return its reference."""
    n = len(images)
    if sample_ids is None:
        sample_ids = np.array([f"{i:06d}" for i in range(n)])
    if sources is None:
        sources = np.full(n, "real")
    table, content_hash = build_dataset_table(images, labels, splits, sources, sample_ids, meta, extra_columns)
    write_table(table, path)
    return DatasetRef(path=str(Path(path)), content_hash=content_hash, rows=n)


def _parquet_footer(path: Path) -> tuple[pq.FileMetaData, pa.Schema]:
    """The Parquet footer (row count) and Arrow schema of a dataset file; no column data is read."""
    if not path.is_file():
        raise DataError(f"dataset {path} does not exist")
    try:
        footer = pq.ParquetFile(path).metadata
        schema = footer.schema.to_arrow_schema()
        _ = schema.names  # decodes every column name: a damaged one is invalid UTF-8
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a readable Parquet file: {err}") from None
    return footer, schema


def with_origin(table: pa.Table, origin: dict[str, Any]) -> pa.Table:
    """`table` with `origin` (where it was made) in its schema metadata, outside the content hash."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), ORIGIN_KEY: json.dumps(origin, sort_keys=True).encode()})


def read_origin(path: str | Path) -> dict[str, Any]:
    """The `with_origin` record of a table file ({} when it has none or it is unreadable as JSON)."""
    raw = (_parquet_footer(Path(path))[1].metadata or {}).get(ORIGIN_KEY)
    try:
        origin = json.loads(raw) if raw is not None else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return origin if isinstance(origin, dict) else {}


def read_dataset_meta(path: str | Path) -> DatasetMeta:
    """Only the metadata of a dataset table (no pixel data read)."""
    path = Path(path)
    return _meta_from_schema(_parquet_footer(path)[1], path)[0]


def pool_size(path: str | Path) -> int:
    """Rows of the unlabelled pool (null labels) in a dataset file, from the footer's statistics where it has them."""
    path = Path(path)
    footer, schema = _parquet_footer(path)
    column = schema.get_field_index("label")
    counts = [footer.row_group(i).column(column).statistics for i in range(footer.num_row_groups)]
    if all(stats is not None and stats.has_null_count for stats in counts):
        return sum(int(stats.null_count) for stats in counts)
    try:
        return int(pq.read_table(path, columns=["label"]).column("label").null_count)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path} is not a readable Parquet file: {err}") from None


def _meta_from_schema(schema: pa.Schema, path: Path) -> tuple[DatasetMeta, dict[str, Any]]:
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DataError(f"{path}: no ganaug metadata in the Parquet schema (was it written by ganaug?)")
    try:
        data = json.loads(raw)
        return DatasetMeta.from_json(data), data
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # ValueError includes bad UTF-8
        raise DataError(f"{path}: ganaug metadata is malformed ({err})") from None


def read_dataset(ref: ArtifactRef | str | Path, expected_schema: pa.Schema = DATASET_SCHEMA) -> LoadedDataset:
    """Read and validate a dataset/synthetic table; errors name the file and column."""
    path = Path(ref.path if isinstance(ref, ArtifactRef) else ref)
    table = read_table(path, expected_schema)
    meta, meta_json = _meta_from_schema(table.schema, path)
    if int(meta_json.get("schema_version", -1)) != SCHEMA_VERSION:
        raise DataError(f"{path}: schema version {meta_json.get('schema_version')} is not {SCHEMA_VERSION}")
    n = table.num_rows
    splits = np.asarray(table.column("split").to_pylist(), dtype=str) if n else np.array([], dtype=str)
    bad = {str(v) for v in np.unique(splits)} - set(ALL_SPLITS)
    if bad:
        raise DataError(f"{path}: column 'split' has values {sorted(bad)}; allowed: {list(ALL_SPLITS)}")
    labels = _read_labels(table, splits, meta, path, nullable=expected_schema.field("label").nullable)
    sources = np.asarray(table.column("source").to_pylist(), dtype=str) if n else np.array([], dtype=str)
    bad = {str(v) for v in np.unique(sources)} - set(SOURCES)
    if bad:
        raise DataError(f"{path}: column 'source' has values {sorted(bad)}; allowed: {list(SOURCES)}")
    pixels = table.column("pixels").combine_chunks()
    lengths = pixels.value_lengths().to_numpy(zero_copy_only=False) if n else np.array([], dtype=np.int32)
    if n and (lengths != meta.pixels_per_image).any():
        row = int(np.argmax(lengths != meta.pixels_per_image))
        raise DataError(
            f"{path}: column 'pixels' row {row} has {lengths[row]} values, expected "
            f"{meta.pixels_per_image} (channels x height x width = {meta.channels}x{meta.height}x{meta.width})"
        )
    if pixels.null_count or pixels.values.null_count:
        raise DataError(f"{path}: column 'pixels' has null values")
    images = pixels.values.to_numpy().reshape(n, meta.channels, meta.height, meta.width)
    sample_ids = np.asarray(table.column("sample_id").to_pylist(), dtype=str) if n else np.array([], dtype=str)
    extra = {
        name: table.column(name).to_numpy(zero_copy_only=False)
        for name in table.column_names
        if name not in DATASET_SCHEMA.names
    }
    _verify_content(path, meta, meta_json, {"sample_id": sample_ids, "label": labels.astype(np.int32), "split": splits,
                                            "source": sources, "pixels": images.reshape(n, meta.pixels_per_image), **extra})
    return LoadedDataset(
        images=images,
        labels=labels,
        splits=splits,
        sources=sources,
        sample_ids=sample_ids,
        meta=meta,
        content_hash=str(meta_json.get("content_hash", "")),
        path=path,
        extra_columns=extra,
    )


def _read_labels(table: pa.Table, splits: np.ndarray, meta: DatasetMeta, path: Path, nullable: bool) -> np.ndarray:
    """Labels as int64 with NO_LABEL for the pool's nulls; a null outside the pool (or a pool label) is an error."""
    column = table.column("label")
    missing = column.is_null().to_numpy(zero_copy_only=False) if len(column) else np.zeros(0, dtype=bool)
    labels = pc.fill_null(column, NO_LABEL).to_numpy().astype(np.int64) if len(column) else np.zeros(0, np.int64)
    pool = splits == POOL_SPLIT
    if not nullable and (missing.any() or pool.any()):
        raise DataError(f"{path}: column 'label' is null (or split '{POOL_SPLIT}') in {int((missing | pool).sum())} rows; "
                        "every row of this table needs a label")
    wrong = (missing & ~pool) | (~missing & pool)
    if wrong.any():
        row = int(np.argmax(wrong))
        problem = "is null" if missing[row] else f"holds {labels[row]}"
        need = f"only rows of split '{POOL_SPLIT}' may lack a label" if missing[row] else "pool rows must have a null label"
        raise DataError(f"{path}: column 'label' {problem} in row {row} (split '{splits[row]}'); {need}")
    known = labels[~pool]
    if len(known) and (known.min() < 0 or known.max() >= meta.num_classes):
        raise DataError(f"{path}: column 'label' has values outside 0..{meta.num_classes - 1}")
    return labels


def _verify_content(path: Path, meta: DatasetMeta, meta_json: dict[str, Any], columns: dict[str, np.ndarray]) -> None:
    """Recompute the content hash from the data just read; a mismatch means the file changed after it was written."""
    stored = str(meta_json.get("content_hash", ""))
    if not stored:
        raise DataError(f"{path}: no content hash in the ganaug metadata; write it again with ganaug")
    if _hash_arrays(meta, columns) != stored:
        raise DataError(
            f"{path}: the data does not match its recorded content hash {stored[:12]} (the file was modified or "
            "damaged after it was written); write it again (e.g. rerun `ganaug ingest` or `ganaug generate`)"
        )


def dataset_ref(path: str | Path) -> DatasetRef:
    """Reference to an existing dataset file (metadata read, pixels not loaded)."""
    path = Path(path)
    footer, schema = _parquet_footer(path)
    meta_json = _meta_from_schema(schema, path)[1]
    return DatasetRef(path=str(path), content_hash=str(meta_json.get("content_hash", "")), rows=footer.num_rows)
