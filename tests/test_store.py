"""Artifact store: atomic writes, validated reads, references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ganaug.errors import DataError
from ganaug.store import (
    META_KEY,
    DatasetMeta,
    LoadedDataset,
    atomic_path,
    dataset_ref,
    read_dataset,
    read_dataset_meta,
    write_dataset,
)

META = DatasetMeta(height=2, width=2, channels=1, class_names=["a", "b"], ingestion_source="test")


def _write(tmp_path: Path, **changes) -> Path:
    images = np.arange(16, dtype=np.uint8).reshape(4, 1, 2, 2)
    ref = write_dataset(tmp_path / "d.parquet", images, np.array([0, 1, 0, 1]), np.array(["train", "val", "test", "train"]), META)
    if not changes:
        return Path(ref.path)
    table = pq.read_table(ref.path)
    for name, column in changes.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    pq.write_table(table, ref.path)
    return Path(ref.path)


def test_roundtrip_and_reference(tmp_path: Path) -> None:
    path = _write(tmp_path)
    loaded = read_dataset(path)
    np.testing.assert_array_equal(loaded.images, np.arange(16, dtype=np.uint8).reshape(4, 1, 2, 2))
    ref = dataset_ref(path)
    assert ref.rows == 4 and ref.content_hash == loaded.content_hash and len(ref.content_hash) == 64
    assert json.loads(pq.read_schema(path).metadata[META_KEY])["pixel_layout"] == "CHW"


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.parquet") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("column", "values", "fragment"),
    [
        ("label", pa.array([0, 1, 5, 1], pa.int32()), "column 'label' has values outside 0..1"),
        ("label", pa.array([0, 1, 0, 1], pa.int64()), "column 'label' has type int64"),
        ("split", pa.array(["train", "val", "holdout", "train"]), "column 'split' has values ['holdout']"),
        ("source", pa.array(["real", "fake", "real", "real"]), "column 'source'"),
        ("pixels", pa.array([[1, 2, 3, 4], [1], [1, 2, 3, 4], [1, 2, 3, 4]], pa.list_(pa.uint8())), "column 'pixels' row 1 has 1 values"),
    ],
)
def test_read_validates_columns(tmp_path: Path, column: str, values: pa.Array, fragment: str) -> None:
    path = _write(tmp_path, **{column: values})
    with pytest.raises(DataError) as info:
        read_dataset(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_read_rejects_missing_column_and_foreign_parquet(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"sample_id": ["a"], "label": pa.array([0], pa.int32())}), path)
    with pytest.raises(DataError, match="column 'split' is missing"):
        read_dataset(path)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="junk.parquet is not a readable Parquet file"):
        read_dataset(tmp_path / "junk.parquet")
    with pytest.raises(DataError, match="junk.parquet is not a readable Parquet file"):
        dataset_ref(tmp_path / "junk.parquet")
    with pytest.raises(DataError, match="missing.parquet does not exist"):
        dataset_ref(tmp_path / "missing.parquet")


def _pixel_chunk_span(path: Path) -> tuple[int, int]:
    """(first byte, byte count) of the `pixels` column chunk's pages in a one-row-group file."""
    column = pq.ParquetFile(path).metadata.row_group(0).column(4)
    assert column.path_in_schema.startswith("pixels")
    start = column.dictionary_page_offset or column.data_page_offset
    return start, column.total_compressed_size


def test_bit_flips_in_pixel_data_are_caught_on_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 1, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 2, size=64)
    meta = DatasetMeta(height=8, width=8, channels=1, class_names=["a", "b"], ingestion_source="test")
    ref = write_dataset(tmp_path / "d.parquet", images, labels, np.full(64, "train"), meta)
    read_dataset(ref.path)  # intact: reads
    original = Path(ref.path).read_bytes()
    start, size = _pixel_chunk_span(Path(ref.path))
    positions = np.linspace(start + size // 4, start + size - 2, 25).astype(int)
    silent = []
    for position in positions:
        flipped = bytearray(original)
        flipped[position] ^= 0x10
        Path(ref.path).write_bytes(bytes(flipped))
        try:
            read_dataset(ref.path)
        except DataError as err:
            assert "d.parquet" in str(err)
        else:
            silent.append(int(position))
    assert silent == []


def test_changed_labels_with_the_old_hash_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path)
    table = pq.read_table(path)  # keeps the schema metadata, so the stored hash is the old one
    table = table.set_column(1, table.schema.field("label"), pa.array([1, 0, 1, 0], pa.int32()))
    pq.write_table(table, path)
    with pytest.raises(DataError, match="does not match its recorded content hash"):
        read_dataset(path)


def _flips(size: int) -> list[tuple[int, int]]:
    """(byte, bit) of a single-bit-flip sweep: the high bit of every byte (what turns text into invalid UTF-8)
    and a rotating low bit of every third byte."""
    return [(position, 7) for position in range(size)] + [(position, position // 3 % 7) for position in range(0, size, 3)]


def _same(loaded: LoadedDataset, original: LoadedDataset) -> bool:
    return (loaded.meta == original.meta and loaded.content_hash == original.content_hash
            and np.array_equal(loaded.images, original.images) and np.array_equal(loaded.labels, original.labels)
            and loaded.splits.tolist() == original.splits.tolist() and loaded.sources.tolist() == original.sources.tolist()
            and loaded.sample_ids.tolist() == original.sample_ids.tolist())


def test_single_bit_flips_anywhere_give_a_data_error_or_the_unchanged_data(tmp_path: Path) -> None:
    images = np.arange(24, dtype=np.uint8).reshape(6, 1, 2, 2)
    splits = np.array(["train", "val", "test", "train", "val", "test"])
    path = Path(write_dataset(tmp_path / "d.parquet", images, np.array([0, 1, 0, 1, 0, 1]), splits, META).path)
    original, intact = read_dataset(path), path.read_bytes()
    escaped, silent = [], []
    for position, bit in _flips(len(intact)):
        flipped = bytearray(intact)
        flipped[position] ^= 1 << bit
        path.write_bytes(bytes(flipped))
        for reader in (read_dataset, read_dataset_meta, dataset_ref):
            try:
                loaded = reader(path)
            except DataError as err:
                assert "d.parquet" in str(err)
            except Exception as err:  # noqa: BLE001 - every other exception is the failure this test looks for
                escaped.append((position, bit, reader.__name__, type(err).__name__))
            else:
                if reader is read_dataset and not _same(loaded, original):
                    silent.append((position, bit))
    assert escaped == [] and silent == []


def test_single_bit_flips_in_a_synthetic_table_give_a_data_error_or_the_unchanged_data(tmp_path: Path) -> None:
    from ganaug.generate import write_synthetic
    from ganaug.store import SYNTHETIC_SCHEMA, read_origin

    images = np.arange(24, dtype=np.uint8).reshape(6, 1, 2, 2)
    meta = DatasetMeta(height=2, width=2, channels=1, class_names=["a", "b"], ingestion_source="synthetic",
                       extra={"checkpoint_id": "c0ffee", "dataset_hash": "d" * 64})
    path = write_synthetic(tmp_path / "s.parquet", images, np.array([0, 1, 0, 1, 0, 1]), meta, "c0ffee",
                           np.linspace(0, 1, 6, dtype=np.float32), origin={"run_id": "run-a"}).file
    original, intact = read_dataset(path, SYNTHETIC_SCHEMA), path.read_bytes()
    assert read_origin(path) == {"run_id": "run-a"}
    escaped, silent = [], []
    for position, bit in _flips(len(intact)):
        flipped = bytearray(intact)
        flipped[position] ^= 1 << bit
        path.write_bytes(bytes(flipped))
        for reader in (lambda p: read_dataset(p, SYNTHETIC_SCHEMA), read_origin):  # footer readers: the test above
            try:
                loaded = reader(path)
            except DataError as err:
                assert "s.parquet" in str(err)
            except Exception as err:  # noqa: BLE001 - every other exception is the failure this test looks for
                escaped.append((position, bit, type(err).__name__))
            else:
                if isinstance(loaded, LoadedDataset) and not _same(loaded, original):
                    silent.append((position, bit))
    assert escaped == [] and silent == []
