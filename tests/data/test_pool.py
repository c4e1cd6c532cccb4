"""The unlabelled pool at ingestion: every source, labels_per_class, the leakage guard, dedup, bad pools, the hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_inputs import files_under, tiny_images, write_idx
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.config import IngestConfig
from ganaug.configbase import load_config
from ganaug.data.ingest import ingest
from ganaug.data.tensors import load_tensors
from ganaug.errors import ConfigError, DataError
from ganaug.store import (NO_LABEL, POOL_SPLIT, SYNTHETIC_SCHEMA, DatasetMeta, _hash_arrays, read_dataset,
                          write_dataset)

runner = CliRunner()

# content hashes of built-in digits ingests made by the code before the pool existed (git HEAD)
DIGITS_HASH = "b1de56ddb756a620e3ccd7d54d6310d85790af89549883c60da10da2f0fde9ba"
DIGITS_CAPPED_HASH = "75d3ee4629c8553488bd7d07e4bef89b43f7fd1dd840fd4a9cc77b53f441ee64"


def _other_images(n: int, size: int = 8, channels: int = 1, seed: int = 7) -> np.ndarray:
    """Random uint8 images (N, H, W[, C]) unlike any of `tiny_images`."""
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _check_pool_file(path: str | Path, pool_rows: int) -> pa.Table:
    """The Parquet file holds `pool_rows` rows of split 'unlabelled', each with a null label; the other rows have labels."""
    table = pq.read_table(path)
    pool = np.asarray(table.column("split").to_pylist()) == POOL_SPLIT
    missing = table.column("label").is_null().to_numpy(zero_copy_only=False)
    assert pool.sum() == pool_rows and (missing == pool).all()
    assert table.schema.field("label").type == pa.int32()
    return table


def _save_png(folder: Path, images: np.ndarray) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"u{i:03d}.png")
    return folder


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------- every source


def test_folder_pool(tmp_path: Path, rgb_folder: Path) -> None:
    unlabelled = _other_images(5, channels=3)
    cfg = IngestConfig(source="folder", path=rgb_folder, unlabelled_path=_save_png(tmp_path / "pool", unlabelled))
    ref = ingest(cfg, tmp_path / "out")
    _check_pool_file(ref.path, 5)
    loaded = read_dataset(ref)
    pool = loaded.select(split=POOL_SPLIT)
    assert (loaded.labels[pool] == NO_LABEL).all() and (loaded.labels[~pool] >= 0).all()
    np.testing.assert_array_equal(loaded.images[pool], unlabelled.transpose(0, 3, 1, 2))
    assert list(loaded.sample_ids[pool]) == [f"unlabelled:u{i:03d}.png" for i in range(5)]
    assert loaded.meta.extra["pool"] == {**loaded.meta.extra["pool"], "rows_read": 5, "rows": 5, "moved_from_train": 0,
                                         "dropped_overlap_val_test": 0, "dropped_duplicates": 0, "source": "folder:pool"}


def test_idx_pool_without_labels_file(tmp_path: Path) -> None:
    images, labels = tiny_images()
    cfg = IngestConfig(source="idx", path=write_idx(tmp_path / "img", images), labels_path=write_idx(tmp_path / "lab", labels),
                       unlabelled_path=write_idx(tmp_path / "pool.gz", _other_images(4), compress=True))
    ref = ingest(cfg, tmp_path / "out")
    _check_pool_file(ref.path, 4)
    loaded = read_dataset(ref)
    assert loaded.meta.extra["pool"]["rows"] == 4 and loaded.meta.extra["pool"]["input_hash"]
    x, y = load_tensors(loaded, POOL_SPLIT)
    assert x.shape == (4, 1, 8, 8) and (y == NO_LABEL).all()
    assert len(load_tensors(loaded, None)[0]) == len(labels)  # None: the labelled rows, never the pool
    with pytest.raises(DataError, match="unknown split 'pool'"):
        load_tensors(loaded, "pool")


def test_npz_pool_with_x_only_and_float_pixels_scaled_on_their_own(tmp_path: Path) -> None:
    images, labels = tiny_images()
    unlabelled = _other_images(6)
    cfg = IngestConfig(source="npz", path=_npz(tmp_path / "d.npz", x=images, y=labels),
                       unlabelled_path=_npz(tmp_path / "u.npz", x=unlabelled.astype(np.float32) / 255.0))
    loaded = read_dataset(ingest(cfg, tmp_path / "out"))
    _check_pool_file(loaded.path, 6)
    np.testing.assert_array_equal(loaded.images[loaded.select(split=POOL_SPLIT), 0], unlabelled)
    assert loaded.meta.extra["pool"]["pixel_scaling"]["input_max"] == 1.0


def test_table_rows_with_an_empty_label_become_the_pool(tmp_path: Path) -> None:
    images, labels = tiny_images()
    frame = pd.DataFrame(images.reshape(len(images), -1))
    frame.columns = [f"p{i}" for i in range(frame.shape[1])]
    frame.insert(0, "label", [str(v) for v in labels])
    extra = pd.DataFrame(_other_images(3).reshape(3, -1), columns=frame.columns[1:])
    extra.insert(0, "label", [None, "", "  "])  # null, empty and blank
    table = pd.concat([frame, extra], ignore_index=True)
    table.to_csv(tmp_path / "t.csv", index=False)
    ref = ingest(IngestConfig(source="table", path=tmp_path / "t.csv"), tmp_path / "out")
    _check_pool_file(ref.path, 3)
    loaded = read_dataset(ref)
    assert loaded.meta.class_names == ["0", "1", "2"] and loaded.meta.extra["pool"]["rows_read"] == 3
    np.testing.assert_array_equal(loaded.images[loaded.select(split=POOL_SPLIT), 0], _other_images(3))


def test_table_pool_file_without_label_column(tmp_path: Path) -> None:
    images, labels = tiny_images()
    pd.DataFrame({"label": labels, "img": list(images.reshape(len(images), -1))}).to_parquet(tmp_path / "d.parquet")
    pd.DataFrame({"img": list(_other_images(2).reshape(2, -1)), "label": [None, None]}).to_parquet(tmp_path / "u.parquet")
    cfg = IngestConfig(source="table", path=tmp_path / "d.parquet", pixels_column="img",
                       unlabelled_path=tmp_path / "u.parquet")
    _check_pool_file(ingest(cfg, tmp_path / "out").path, 2)


# ---------------------------------------------------------------- labels_per_class


def test_labels_per_class_keeps_exactly_k_and_moves_the_rest(tmp_path: Path) -> None:
    full = read_dataset(ingest(IngestConfig(), tmp_path / "full"))
    loaded = read_dataset(ingest(IngestConfig(labels_per_class=7), tmp_path / "k"))
    train = loaded.splits == "train"
    assert set(np.bincount(loaded.labels[train], minlength=10)) == {7}
    for split in ("val", "test"):  # untouched
        assert list(full.sample_ids[full.splits == split]) == list(loaded.sample_ids[loaded.splits == split])
    pool = loaded.meta.extra["pool"]
    assert pool["moved_from_train"] == (full.splits == "train").sum() - 70 and pool["rows_read"] == 0
    assert pool["rows"] == (loaded.splits == POOL_SPLIT).sum() == pool["moved_from_train"] - pool["dropped_duplicates"] \
        - pool["dropped_overlap_val_test"]
    assert all(sample.startswith("moved:") for sample in loaded.sample_ids[loaded.splits == POOL_SPLIT])
    _check_pool_file(loaded.path, pool["rows"])


def test_imbalanced_regime_with_pool(tmp_path: Path) -> None:
    cfg = load_config(IngestConfig, None, {"labels_per_class": 100, "imbalance": {"2": 10, "5": 10, "8": 10}})
    loaded = read_dataset(ingest(cfg, tmp_path))
    counts = np.bincount(loaded.labels[loaded.splits == "train"], minlength=10)
    assert list(counts) == [100, 100, 10, 100, 100, 10, 100, 100, 10, 100]
    assert loaded.meta.extra["pool"]["moved_from_train"] == 1797 - 269 - 359 - counts.sum()


def test_labels_per_class_above_a_class_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="labels_per_class=500 keeps 500 labelled training images of class '0'"):
        ingest(IngestConfig(labels_per_class=500), tmp_path)
    assert files_under(tmp_path) == []


def test_moved_images_true_labels_never_reach_the_file(tmp_path: Path) -> None:
    """Swap the labels of pairs of moved images (same rank in their classes): the dataset stays byte-for-byte the same."""
    images = _other_images(80)
    labels = np.tile([0, 1], 40)  # row 2k is class 0, row 2k+1 class 1: a swap keeps each class's sorted positions
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()  # one file name: it is part of the sample ids
    cfg = IngestConfig(source="npz", path=_npz(tmp_path / "a" / "d.npz", x=images, y=labels), labels_per_class=5)
    first = read_dataset(ingest(cfg, tmp_path / "a"))
    moved_pixels = {image.tobytes() for image in first.images[first.splits == POOL_SPLIT]}
    moved = np.array([image[None].tobytes() in moved_pixels for image in images])
    pairs = [k for k in range(40) if moved[2 * k] and moved[2 * k + 1]]
    assert len(pairs) >= 10
    corrupted = labels.copy()
    for k in pairs:
        corrupted[2 * k], corrupted[2 * k + 1] = labels[2 * k + 1], labels[2 * k]
    cfg = cfg.model_copy(update={"path": _npz(tmp_path / "b" / "d.npz", x=images, y=corrupted)})
    second = read_dataset(ingest(cfg, tmp_path / "b"))
    assert (corrupted != labels).sum() == 2 * len(pairs)
    assert second.content_hash == first.content_hash
    assert pq.read_table(first.path).equals(pq.read_table(second.path))


# ---------------------------------------------------------------- leakage guard and dedup


def test_pool_images_identical_to_val_or_test_images_are_dropped_and_counted(tmp_path: Path) -> None:
    images, labels = tiny_images()
    path = _npz(tmp_path / "d.npz", x=images, y=labels)
    plain = read_dataset(ingest(IngestConfig(source="npz", path=path), tmp_path / "plain"))
    val, test = plain.images[plain.splits == "val", 0], plain.images[plain.splits == "test", 0]
    fresh = _other_images(3)
    unlabelled = np.concatenate([val[:2], fresh[:1], test[:1], fresh[1:]])
    cfg = IngestConfig(source="npz", path=path, unlabelled_path=_npz(tmp_path / "u.npz", x=unlabelled))
    loaded = read_dataset(ingest(cfg, tmp_path / "out"))
    pool = loaded.meta.extra["pool"]
    assert (pool["rows_read"], pool["dropped_overlap_val_test"], pool["dropped_duplicates"], pool["rows"]) == (6, 3, 0, 3)
    np.testing.assert_array_equal(loaded.images[loaded.splits == POOL_SPLIT, 0], fresh)


def test_duplicates_within_the_pool_are_dropped_first_kept(tmp_path: Path) -> None:
    images, labels = tiny_images()
    a, b, c = _other_images(3)
    cfg = IngestConfig(source="npz", path=_npz(tmp_path / "d.npz", x=images, y=labels),
                       unlabelled_path=_npz(tmp_path / "u.npz", x=np.stack([a, b, a, c, b, a])))
    loaded = read_dataset(ingest(cfg, tmp_path / "out"))
    pool = loaded.meta.extra["pool"]
    assert (pool["dropped_duplicates"], pool["dropped_overlap_val_test"], pool["rows"]) == (3, 0, 3)
    assert list(loaded.sample_ids[loaded.splits == POOL_SPLIT]) == ["unlabelled:0", "unlabelled:1", "unlabelled:3"]


# ---------------------------------------------------------------- bad pools: one line, exit 2, nothing written


def _gray_folder(root: Path) -> Path:
    images, labels = tiny_images()
    for name in range(3):
        _save_png(root / f"c{name}", images[labels == name])
    return root


def _bad_pools(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """CLI arguments of a bad pool and a fragment of its message, by name."""
    images, labels = tiny_images()
    npz = ["--source", "npz", "--path", str(_npz(tmp_path / "d.npz", x=images, y=labels)), "--unlabelled"]
    folder = ["--source", "folder", "--path", str(_gray_folder(tmp_path / "gray")), "--unlabelled"]
    plain = read_dataset(ingest(IngestConfig(source="npz", path=tmp_path / "d.npz"), tmp_path / "plain"))
    (tmp_path / "empty").mkdir()
    return {
        "labelled folder": (folder + [str(_gray_folder(tmp_path / "labelled"))], "looks like a labelled folder"),
        "other size": (npz + [str(_npz(tmp_path / "s.npz", x=_other_images(3, size=10)))],
                       "holds 10x10 images but the labelled images are 8x8"),
        "other channels": (npz + [str(_npz(tmp_path / "c.npz", x=_other_images(3, channels=3)))],
                           "holds 3-channel images but the labelled images have 1; set channels"),
        "rgb folder": (folder + [str(_save_png(tmp_path / "rgb", _other_images(2, channels=3)))], "3-channel images"),
        "empty folder": (folder + [str(tmp_path / "empty")], "holds no images"),
        "empty npz": (npz + [str(_npz(tmp_path / "e.npz", x=np.zeros((0, 8, 8), np.uint8)))], "holds no images"),
        "empty after guard": (npz + [str(_npz(tmp_path / "g.npz", x=plain.images[plain.splits != "train", 0]))],
                              "is empty after dropping 6 images identical to val/test images and 0 repeats"),
        "labelled npz": (npz + [str(tmp_path / "d.npz")], "holds labels (array 'y'), so it is a labelled file"),
    }


@pytest.mark.parametrize("name", ["labelled folder", "other size", "other channels", "rgb folder", "empty folder",
                                  "empty npz", "empty after guard", "labelled npz"])
def test_bad_pool_is_one_line_exit_2_and_nothing_written(tmp_path: Path, name: str) -> None:
    (tmp_path / "inputs").mkdir()
    arguments, message = _bad_pools(tmp_path / "inputs")[name]
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["ingest", *arguments, "--runs-root", str(runs), "--run-id", "r"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "unlabelled" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (runs / "r" / "dataset.parquet").exists() and files_under(runs) == []


def test_labelled_table_as_pool_is_refused(tmp_path: Path) -> None:
    images, labels = tiny_images()
    pd.DataFrame({"label": labels, "img": list(images.reshape(len(images), -1))}).to_parquet(tmp_path / "d.parquet")
    cfg = IngestConfig(source="table", path=tmp_path / "d.parquet", pixels_column="img", unlabelled_path=tmp_path / "d.parquet")
    with pytest.raises(DataError, match="column 'label' holds a label in row 0; a pool table's label column must be missing"):
        ingest(cfg, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize(("options", "message"), [
    ({"unlabelled_path": "pool"}, "source 'digits' is built in and takes no unlabelled_path"),
    ({"labels_per_class": 10, "train_fraction": 0.5}, "remove train_fraction and train_per_class"),
    ({"labels_per_class": 10, "train_per_class": 5}, "remove train_fraction and train_per_class"),
    ({"labels_per_class": 0}, "labels_per_class"),
])
def test_bad_pool_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(IngestConfig, None, options)


# ---------------------------------------------------------------- the CLI and the storage contract


def test_cli_options_reach_the_config_and_the_summary_shows_the_pool(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "--labels-per-class", "5", "--runs-root", str(tmp_path), "--run-id", "r"])
    assert result.exit_code == 0, result.output
    loaded = read_dataset(tmp_path / "r" / "dataset.parquet")
    pool = loaded.meta.extra["pool"]
    assert f"unlabelled pool: {pool['rows']} images" in result.output
    assert f"{pool['moved_from_train']} moved from the train split" in result.output
    assert "dropped 0 identical to val/test images and" in result.output
    assert f"+ {pool['rows']} unlabelled" in " ".join(result.output.split())  # the table's title, wrapped by rich
    config = json.loads((tmp_path / "r" / "run.json").read_text())["config"]["ingest"]
    assert config["labels_per_class"] == 5 and config["unlabelled_path"] is None


def test_run_options_map_onto_the_ingest_section(tmp_path: Path) -> None:
    from ganaug.cli.run import pipeline_config

    pool = _npz(tmp_path / "u.npz", x=_other_images(2))
    cfg = pipeline_config(None, "small", {"ingest": {"source": "npz", "path": pool, "unlabelled_path": pool,
                                                     "labels_per_class": 3}})
    assert (cfg.ingest.unlabelled_path, cfg.ingest.labels_per_class) == (pool, 3)
    result = runner.invoke(app, ["run", "--source", "npz", "--path", str(pool), "--unlabelled", str(tmp_path / "missing.npz"),
                                 "--runs-root", str(tmp_path / "runs")])  # refused before the flow starts
    assert result.exit_code == 2 and "ingest.unlabelled_path" in result.output and "missing.npz does not exist" in result.output
    result = runner.invoke(app, ["run", "--labels-per-class", "0", "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "labels_per_class" in result.output


def test_a_dataset_without_pool_keeps_its_content_hash(tmp_path: Path) -> None:
    ref = ingest(IngestConfig(), tmp_path / "a")
    assert ref.content_hash == DIGITS_HASH
    assert ingest(IngestConfig(train_per_class=20, imbalance={"3": 5}), tmp_path / "b").content_hash == DIGITS_CAPPED_HASH
    loaded = read_dataset(ref)
    assert not loaded.select(split=POOL_SPLIT).any() and "pool" not in loaded.meta.extra
    columns = {"sample_id": loaded.sample_ids, "label": loaded.labels.astype(np.int32), "split": loaded.splits,
               "source": loaded.sources, "pixels": loaded.images.reshape(len(loaded.images), -1)}
    assert _hash_arrays(loaded.meta, columns) == ref.content_hash
    assert pq.read_table(ref.path).column("label").null_count == 0


def _rewrite_labels(path: Path, labels: list[int | None]) -> None:
    table = pq.read_table(path)
    table = table.set_column(1, table.schema.field("label"), pa.array(labels, type=pa.int32()))
    pq.write_table(table, path)


def test_read_dataset_refuses_a_null_label_outside_the_pool_and_a_label_in_it(tmp_path: Path) -> None:
    meta = DatasetMeta(height=2, width=2, channels=1, class_names=["a", "b"], ingestion_source="tests")
    images = np.zeros((3, 1, 2, 2), np.uint8)
    path = tmp_path / "d.parquet"
    write_dataset(path, images, np.array([0, 1, NO_LABEL]), np.array(["train", "val", POOL_SPLIT]), meta)
    assert read_dataset(path).labels.tolist() == [0, 1, NO_LABEL]
    _rewrite_labels(path, [0, None, None])
    with pytest.raises(DataError, match=r"d.parquet: column 'label' is null in row 1 \(split 'val'\)"):
        read_dataset(path)
    _rewrite_labels(path, [0, 1, 1])
    with pytest.raises(DataError, match="d.parquet: column 'label' holds 1 in row 2 .* pool rows must have a null label"):
        read_dataset(path)
    for labels, splits in (([0, NO_LABEL, NO_LABEL], ["train", "val", POOL_SPLIT]), ([0, 1, 1], ["train", "val", POOL_SPLIT])):
        with pytest.raises(DataError, match="label"):
            write_dataset(tmp_path / "w.parquet", images, np.array(labels), np.array(splits), meta)
    assert not (tmp_path / "w.parquet").exists()


def test_synthetic_tables_must_have_labels(tmp_path: Path) -> None:
    meta = DatasetMeta(height=2, width=2, channels=1, class_names=["a", "b"], ingestion_source="tests")
    path = tmp_path / "s.parquet"
    extra = {"checkpoint_id": np.array(["c", "c"]), "quality_score": np.array([0.5, 0.5], np.float32)}
    write_dataset(path, np.zeros((2, 1, 2, 2), np.uint8), np.array([0, NO_LABEL]), np.array(["train", POOL_SPLIT]), meta,
                  sources=np.array(["synthetic", "real"]), extra_columns=extra)
    assert read_dataset(path).labels.tolist() == [0, NO_LABEL]  # as a dataset table: a pool row
    with pytest.raises(DataError, match="s.parquet: column 'label' is null .* every row of this table needs a label"):
        read_dataset(path, SYNTHETIC_SCHEMA)
    with pytest.raises(DataError, match="must be real images"):
        write_dataset(path, np.zeros((1, 1, 2, 2), np.uint8), np.array([NO_LABEL]), np.array([POOL_SPLIT]), meta,
                      sources=np.array(["synthetic"]))
