"""The ingestion stage: read a labelled dataset, validate it, split it, write `dataset.parquet`."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganaug.config import IngestConfig
from ganaug.data.folder import read_folder
from ganaug.data.sources import RawImages, read_digits, read_idx, read_npz, read_table
from ganaug.data.splits import stratified_split, training_subset
from ganaug.data.validate import convert_channels, encode_labels, to_uint8
from ganaug.errors import DataError
from ganaug.store import DatasetMeta, DatasetRef, file_hash, write_dataset

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.parquet"
READERS: dict[str, Callable[[IngestConfig], RawImages]] = {
    "digits": read_digits,
    "idx": read_idx,
    "folder": read_folder,
    "npz": read_npz,
    "table": read_table,
}


def ingest(cfg: IngestConfig, out: str | Path) -> DatasetRef:
    """Read `cfg`'s source and write `out/dataset.parquet` with stratified splits; return its reference."""
    raw = READERS[cfg.source](cfg)
    where = raw.description
    labels, class_names = encode_labels(raw.labels, where, raw.class_names)
    if len(class_names) < 2:
        raise DataError(f"{where}: only one class ({class_names[0]!r}) found; a classifier needs at least two")
    images = convert_channels(raw.images, cfg.channels, where)
    pixel_max = cfg.pixel_max if cfg.pixel_max is not None else raw.pixel_max
    pixels, scaling = to_uint8(images, pixel_max, where)
    splits = stratified_split(labels, class_names, cfg)
    keep = training_subset(labels, splits, class_names, cfg)
    _, channels, height, width = pixels.shape
    meta = DatasetMeta(
        height=height,
        width=width,
        channels=channels,
        class_names=class_names,
        ingestion_source=raw.description,
        pixel_scaling=scaling,
        extra={
            "split_seed": cfg.seed,
            "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction,
            "train_fraction": cfg.train_fraction,
            "train_per_class": cfg.train_per_class,
            "imbalance": cfg.imbalance,
            "rows_read": int(len(labels)),
            "input_files": len(raw.input_files),
            "input_hash": _inputs_hash(raw),
        },
    )
    ref = write_dataset(
        Path(out) / DATASET_FILE,
        images=pixels[keep],
        labels=labels[keep],
        splits=splits[keep],
        meta=meta,
        sample_ids=np.asarray(raw.sample_ids)[keep],
    )
    log.info("wrote %s: %d rows, %d classes, %dx%dx%d", ref.path, ref.rows, len(class_names), channels, height, width)
    return ref


def _inputs_hash(raw: RawImages) -> str | None:
    """One sha256 over the input files' relative names and contents (independent of where they lie)."""
    if not raw.input_files:
        return None
    root = Path(os.path.commonpath([p.parent for p in raw.input_files]))
    digest = hashlib.sha256()
    for path in sorted(raw.input_files):
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_hash(path)}\n".encode())
    return digest.hexdigest()


def split_counts(labels: np.ndarray, splits: np.ndarray, class_names: list[str]) -> dict[str, dict[str, int]]:
    """{class name: {split: count}} for summaries."""
    return {
        name: {split: int(((labels == code) & (splits == split)).sum()) for split in ("train", "val", "test")}
        for code, name in enumerate(class_names)
    }
