"""The ingestion stage: read a labelled dataset (and a pool), validate it, split it, write `dataset.parquet`."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ganaug.data.config import IngestConfig
from ganaug.data.folder import read_folder
from ganaug.data.pool import PoolRows, build_pool, split_unlabelled_rows
from ganaug.data.sources import RawImages, read_digits, read_idx, read_npz, read_table
from ganaug.data.splits import stratified_split, training_subset
from ganaug.data.validate import convert_channels, encode_labels, to_uint8
from ganaug.errors import DataError
from ganaug.runs import DATASET_FILE
from ganaug.store import NO_LABEL, POOL_SPLIT, DatasetMeta, DatasetRef, file_hash, write_dataset

log = logging.getLogger(__name__)

READERS: dict[str, Callable[[IngestConfig], RawImages]] = {
    "digits": read_digits,
    "idx": read_idx,
    "folder": read_folder,
    "npz": read_npz,
    "table": read_table,
}


def ingest(cfg: IngestConfig, out: str | Path) -> DatasetRef:
    """Read `cfg`'s source (and pool) and write `out/dataset.parquet` with stratified splits; return its reference."""
    raw, in_table_pool = split_unlabelled_rows(READERS[cfg.source](cfg), cfg)
    if cfg.test_path is not None:
        test = READERS[cfg.source](cfg.model_copy(update={"path": cfg.test_path, "labels_path": cfg.test_labels_path,
                                                          "test_path": None, "test_labels_path": None}))
        if test.notes.get("unlabelled") is not None:
            raise DataError(f"test set {cfg.test_path}: column '{cfg.label_column}' is empty in some rows; test rows need labels")
        raw = combine_with_test(raw, test, cfg)
    where = raw.description
    labels, class_names = encode_labels(raw.labels, where, raw.class_names)
    if len(class_names) < 2:
        raise DataError(f"{where}: only one class ({class_names[0]!r}) found; a classifier needs at least two")
    fixed_test = raw.notes.get("fixed_test")
    if fixed_test is not None:
        _check_test_classes(labels, fixed_test, class_names, cfg)
    images = convert_channels(raw.images, cfg.channels, where)
    pixel_max = cfg.pixel_max if cfg.pixel_max is not None else raw.pixel_max
    pixels, scaling = to_uint8(images, pixel_max, where)
    splits = stratified_split(labels, class_names, cfg, fixed_test)
    keep = training_subset(labels, splits, class_names, cfg)
    moved = ~keep if cfg.labels_per_class is not None else np.zeros(len(keep), dtype=bool)
    pool = build_pool(cfg, pixels, splits, moved, in_table_pool, float(scaling["input_max"]))
    meta = _dataset_meta(cfg, raw, class_names, scaling, pixels.shape[1:], len(labels), pool)
    sample_ids = np.asarray(raw.sample_ids)[keep]
    images_out, labels_out, splits_out = pixels[keep], labels[keep], splits[keep]
    if pool is not None:  # the pool's rows follow the labelled ones
        images_out = np.concatenate([images_out, pool.pixels])
        labels_out = np.concatenate([labels_out, np.full(len(pool.pixels), NO_LABEL, dtype=labels_out.dtype)])
        splits_out = np.concatenate([splits_out.astype(object), np.full(len(pool.pixels), POOL_SPLIT, dtype=object)])
        sample_ids = np.concatenate([sample_ids, pool.sample_ids])
    ref = write_dataset(Path(out) / DATASET_FILE, images=images_out, labels=labels_out, splits=splits_out, meta=meta,
                        sample_ids=sample_ids)
    _, channels, height, width = pixels.shape
    log.info("wrote %s: %d rows, %d classes, %dx%dx%d", ref.path, ref.rows, len(class_names), channels, height, width)
    return ref


def _dataset_meta(cfg: IngestConfig, raw: RawImages, class_names: list[str], scaling: dict[str, Any],
                  shape: tuple[int, ...], rows_read: int, pool: PoolRows | None) -> DatasetMeta:
    """The dataset's metadata; `labels_per_class` and `pool` appear only with a pool (older hashes stay as they were)."""
    channels, height, width = shape
    fixed_test = raw.notes.get("fixed_test")
    extra: dict[str, Any] = {
        "split_seed": cfg.seed,
        "val_fraction": cfg.val_fraction,
        "test_fraction": None if fixed_test is not None else cfg.test_fraction,
        "test_source": _test_source(cfg, raw),
        "train_fraction": cfg.train_fraction,
        "train_per_class": cfg.train_per_class,
        "imbalance": cfg.imbalance,
        "rows_read": rows_read,
        "input_files": len(raw.input_files),
        # with labels_per_class the input files hold the moved images' labels, which nothing stored may depend on
        "input_hash": _inputs_hash(raw) if cfg.labels_per_class is None else None,
    }
    if cfg.labels_per_class is not None:
        extra["labels_per_class"] = cfg.labels_per_class
    if pool is not None:
        extra["pool"] = {**pool.meta, "input_hash": _inputs_hash(pool.input_files) if pool.input_files else None}
    return DatasetMeta(height=height, width=width, channels=channels, class_names=class_names,
                       ingestion_source=raw.description, pixel_scaling=scaling, extra=extra)


def combine_with_test(main: RawImages, test: RawImages, cfg: IngestConfig) -> RawImages:
    """One `RawImages` of `main` followed by the separate test set, its rows marked in notes['fixed_test']."""
    if test.images.shape[2:] != main.images.shape[2:]:
        raise DataError(
            f"test set {cfg.test_path} holds {test.images.shape[2]}x{test.images.shape[3]} images but {cfg.path} holds "
            f"{main.images.shape[2]}x{main.images.shape[3]}; both must have one size (set resize for image folders)"
        )
    test_labels = np.asarray(test.labels)
    if main.class_names is not None and test.class_names is not None:  # folders: classes are folder names
        unknown = sorted(set(test.class_names) - set(main.class_names))
        if unknown:
            raise DataError(f"test set {cfg.test_path} has classes {unknown[:5]} that {cfg.path} does not contain")
        index = {name: code for code, name in enumerate(main.class_names)}
        test_labels = np.array([index[test.class_names[code]] for code in test.labels], dtype=np.int64)
    labels = np.concatenate([np.asarray(main.labels), test_labels])
    channels = max(main.images.shape[1], test.images.shape[1]) if cfg.channels is None else cfg.channels
    main_images = convert_channels(main.images, channels, main.description)
    test_images = convert_channels(test.images, channels, test.description)
    factor = _rescale(main, test, cfg)
    if factor != 1.0:
        main_images, test_images = main_images.astype(np.float64), test_images.astype(np.float64) * factor
    images = np.concatenate([main_images, test_images])
    return RawImages(
        images=images,
        labels=labels,
        description=main.description,
        sample_ids=[*main.sample_ids, *(f"test:{sample}" for sample in test.sample_ids)],
        pixel_max=main.pixel_max,
        class_names=main.class_names,
        input_files=[*main.input_files, *test.input_files],
        notes={**main.notes, "fixed_test": np.arange(len(labels)) >= len(main.labels), "test_description": test.description},
    )


def _rescale(main: RawImages, test: RawImages, cfg: IngestConfig) -> float:
    """Factor that puts the test set's intensities on the main set's scale (pixel_max known for both)."""
    if cfg.pixel_max is not None or main.pixel_max is None or test.pixel_max is None:
        return 1.0
    return main.pixel_max / test.pixel_max


def _check_test_classes(labels: np.ndarray, fixed_test: np.ndarray, class_names: list[str], cfg: IngestConfig) -> None:
    train_classes = set(np.unique(labels[~fixed_test]).tolist())
    unknown = sorted(set(np.unique(labels[fixed_test]).tolist()) - train_classes)
    if unknown:
        where = cfg.test_path or f"column '{cfg.split_column}' of {cfg.path}"
        raise DataError(
            f"test set {where} has classes {[class_names[i] for i in unknown][:5]} that the training data of {cfg.path} "
            "does not contain"
        )


def _test_source(cfg: IngestConfig, raw: RawImages) -> str:
    if cfg.test_path is not None:
        return f"separate: {raw.notes.get('test_description', cfg.test_path)}"
    if cfg.split_column is not None:
        return f"column '{cfg.split_column}'"
    return f"stratified share {cfg.test_fraction} of the input"


def _inputs_hash(raw: RawImages | list[Path]) -> str | None:
    """One sha256 over the input files' relative names and contents (independent of where they lie)."""
    files = raw if isinstance(raw, list) else raw.input_files
    if not files:
        return None
    root = Path(os.path.commonpath([p.parent for p in files]))
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_hash(path)}\n".encode())
    return digest.hexdigest()


def split_counts(labels: np.ndarray, splits: np.ndarray, class_names: list[str]) -> dict[str, dict[str, int]]:
    """{class name: {split: count}} for summaries."""
    return {
        name: {split: int(((labels == code) & (splits == split)).sum()) for split in ("train", "val", "test")}
        for code, name in enumerate(class_names)
    }
