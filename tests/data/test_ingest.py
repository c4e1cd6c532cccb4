"""Ingestion from every source: splits, determinism, metadata, low-data options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from ingest_inputs import tiny_images, write_idx

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.data.tensors import load_tensors
from ganaug.store import read_dataset


def test_digits_default_splits_are_disjoint_stratified_and_deterministic(tmp_path: Path) -> None:
    ref = ingest(IngestConfig(), tmp_path / "a")
    again = ingest(IngestConfig(), tmp_path / "b")
    assert ref.rows == 1797 and ref.content_hash == again.content_hash

    frame = pd.read_parquet(ref.path)  # readable by pandas alone
    assert pq.read_table(ref.path).num_rows == 1797  # and by pyarrow alone
    assert frame["sample_id"].is_unique
    assert set(frame["split"]) == {"train", "val", "test"} and set(frame["source"]) == {"real"}
    overall = frame["split"].value_counts(normalize=True)
    for _, group in frame.groupby("label"):
        counts = group["split"].value_counts()
        for split in ("train", "val", "test"):
            assert abs(counts[split] - overall[split] * len(group)) <= 1.0

    loaded = read_dataset(ref)
    assert loaded.meta.class_names == [str(i) for i in range(10)]
    assert (loaded.meta.height, loaded.meta.width, loaded.meta.channels) == (8, 8, 1)
    assert loaded.meta.pixel_scaling["input_max"] == 16.0
    assert loaded.images.max() == 255


def test_other_seed_gives_other_split(tmp_path: Path) -> None:
    a = ingest(IngestConfig(seed=0), tmp_path / "a")
    b = ingest(IngestConfig(seed=1), tmp_path / "b")
    assert a.content_hash != b.content_hash


@pytest.mark.parametrize("compress", [True, False])
def test_idx_pair_gzipped_or_raw(tmp_path: Path, compress: bool) -> None:
    images, labels = tiny_images()
    suffix = ".gz" if compress else ""
    cfg = IngestConfig(
        source="idx",
        path=write_idx(tmp_path / f"img{suffix}", images, compress),
        labels_path=write_idx(tmp_path / f"lab{suffix}", labels, compress),
    )
    loaded = read_dataset(ingest(cfg, tmp_path / "out"))
    order = np.argsort([int(s.split(":")[1]) for s in loaded.sample_ids])
    np.testing.assert_array_equal(loaded.images[order, 0], images)
    np.testing.assert_array_equal(loaded.labels[order], labels)


def test_rgb_png_folder_keeps_class_names_and_colour(tmp_path: Path, rgb_folder: Path) -> None:
    loaded = read_dataset(ingest(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out"))
    assert loaded.meta.class_names == ["cat", "dog", "owl"]
    assert loaded.images.shape == (18, 3, 8, 8)
    images, labels = tiny_images(channels=3)
    first = list(loaded.sample_ids).index("cat/000.png")
    np.testing.assert_array_equal(loaded.images[first], images[0].transpose(2, 0, 1))


def test_folder_resize_and_grayscale(tmp_path: Path, rgb_folder: Path) -> None:
    cfg = IngestConfig(source="folder", path=rgb_folder, resize=(4, 6), channels=1)
    loaded = read_dataset(ingest(cfg, tmp_path / "out"))
    assert loaded.images.shape == (18, 1, 4, 6)


def test_npz_and_float_pixels(tmp_path: Path) -> None:
    images, labels = tiny_images()
    path = tmp_path / "f.npz"
    np.savez(path, x=images.astype(np.float32) / 255.0, y=np.array(["a", "b", "c"])[labels])
    loaded = read_dataset(ingest(IngestConfig(source="npz", path=path), tmp_path / "out"))
    assert loaded.meta.class_names == ["a", "b", "c"]
    assert loaded.meta.pixel_scaling["input_max"] == 1.0
    order = np.argsort([int(s.split(":")[1]) for s in loaded.sample_ids])
    np.testing.assert_array_equal(loaded.images[order, 0], images)


def test_csv_pixel_columns_and_parquet_list_column(tmp_path: Path) -> None:
    images, labels = tiny_images()
    flat = images.reshape(len(images), -1)
    csv = tmp_path / "t.csv"
    pd.DataFrame(flat, columns=[f"p{i}" for i in range(64)]).assign(label=labels).to_csv(csv, index=False)
    from_csv = read_dataset(ingest(IngestConfig(source="table", path=csv), tmp_path / "csv"))
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"digit": labels, "img": list(flat)}).to_parquet(parquet)
    cfg = IngestConfig(source="table", path=parquet, label_column="digit", pixels_column="img", height=8)
    from_parquet = read_dataset(ingest(cfg, tmp_path / "pq"))
    assert from_csv.images.shape == from_parquet.images.shape == (18, 1, 8, 8)
    assert sorted(from_csv.images.reshape(18, -1).sum(1)) == sorted(flat.astype(int).sum(1))


def test_train_fraction_per_class_and_imbalance_touch_only_training(tmp_path: Path) -> None:
    full = read_dataset(ingest(IngestConfig(), tmp_path / "full"))
    low = read_dataset(ingest(IngestConfig(train_fraction=0.1), tmp_path / "low"))
    capped = read_dataset(ingest(IngestConfig(train_per_class=5, imbalance={"3": 2}), tmp_path / "cap"))
    for split in ("val", "test"):
        assert (low.splits == split).sum() == (full.splits == split).sum()
    train_counts = np.bincount(low.labels[low.splits == "train"], minlength=10)
    full_counts = np.bincount(full.labels[full.splits == "train"], minlength=10)
    np.testing.assert_array_equal(train_counts, np.maximum(1, np.round(full_counts * 0.1)))
    capped_counts = np.bincount(capped.labels[capped.splits == "train"], minlength=10)
    assert capped_counts[3] == 2 and set(np.delete(capped_counts, 3)) == {5}


def test_load_tensors_range_shape_and_split(tmp_path: Path) -> None:
    ref = ingest(IngestConfig(), tmp_path)
    x, y = load_tensors(ref, "val")
    assert x.shape == (269, 1, 8, 8) and x.dtype.is_floating_point and y.dtype.is_signed
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() == -1.0 and x.max() == 1.0
    x_all, _ = load_tensors(ref, None)
    assert len(x_all) == 1797
