"""Load and cross-check the real dataset and the synthetic table before any protocol runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ganaug.errors import DataError
from ganaug.store import POOL_SPLIT, SYNTHETIC_SCHEMA, ArtifactRef, LoadedDataset, read_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolData:
    """Everything a protocol run needs, as plain arrays (picklable for process or Dask workers).

    Images are (N, C, H, W) uint8. `rows` holds each split's row numbers in dataset.parquet so a
    run can prove that its training rows are train rows.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    rows: dict[str, np.ndarray]
    class_names: list[str]
    synthetic_images: np.ndarray | None = None
    synthetic_labels: np.ndarray | None = None
    pool_images: np.ndarray | None = None  # the unlabelled pool (N, C, H, W) uint8; None when the dataset has none
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self, labels: np.ndarray) -> np.ndarray:
        return np.bincount(labels, minlength=self.num_classes)

    def synthetic_per_class(self, real_labels: np.ndarray, ratio: float) -> np.ndarray:
        """How many synthetic images of each class a ratio asks for, given the real images kept."""
        return np.array([round(ratio * n) for n in self.class_counts(real_labels)], dtype=np.int64)


def _check_split(loaded: LoadedDataset, split: str) -> np.ndarray:
    rows = np.flatnonzero(loaded.select(split=split, source="real"))
    if len(rows) == 0:
        raise DataError(f"{loaded.path}: no real rows with split '{split}' (column 'split'); re-run `ganaug ingest`")
    return rows


def check_synthetic(real: LoadedDataset, synthetic: LoadedDataset) -> None:
    """Refuse a synthetic table that does not fit the dataset; messages name both files."""
    rm, sm = real.meta, synthetic.meta
    if len(synthetic.labels) == 0:
        raise DataError(f"{synthetic.path} has no rows; run `ganaug generate` with a positive count")
    if (sm.channels, sm.height, sm.width) != (rm.channels, rm.height, rm.width):
        raise DataError(
            f"{synthetic.path} holds {sm.channels}x{sm.height}x{sm.width} images (channels x height x width) but "
            f"{real.path} holds {rm.channels}x{rm.height}x{rm.width}; generate from a GAN trained on this dataset"
        )
    if list(sm.class_names) != list(rm.class_names):
        raise DataError(
            f"{synthetic.path} has class names {sm.class_names} but {real.path} has {rm.class_names}; "
            "generate from a GAN trained on this dataset"
        )
    bad_source = sorted(set(synthetic.sources.tolist()) - {"synthetic"})
    if bad_source:
        raise DataError(f"{synthetic.path}: column 'source' must be 'synthetic' everywhere, found {bad_source}")
    train_classes = set(np.unique(real.labels[real.select(split="train", source="real")]).tolist())
    unseen = sorted(set(np.unique(synthetic.labels).tolist()) - train_classes)
    if unseen:
        names = [rm.class_names[i] if 0 <= i < rm.num_classes else str(i) for i in unseen]
        raise DataError(
            f"{synthetic.path}: column 'label' has classes {names} that the train split of {real.path} does not contain"
        )


def load_protocol_data(dataset: ArtifactRef, synthetic: ArtifactRef | None) -> ProtocolData:
    """Read dataset.parquet (and synthetic.parquet), validate them together, split into arrays."""
    real = read_dataset(dataset)
    rows = {split: _check_split(real, split) for split in ("train", "val", "test")}
    pool = real.select(split=POOL_SPLIT)
    pool_images = real.images[pool] if pool.any() else None
    syn_images = syn_labels = None
    notes: list[str] = []
    if synthetic is not None:
        loaded = read_dataset(synthetic, SYNTHETIC_SCHEMA)
        check_synthetic(real, loaded)
        syn_images, syn_labels = loaded.images.copy(), loaded.labels  # Arrow buffers are read-only
        trained_on = loaded.meta.extra.get("gan_dataset_hash") or loaded.meta.extra.get("dataset_hash")
        if trained_on and trained_on != real.content_hash:
            notes.append(
                f"synthetic data was generated from a GAN trained on a dataset with hash {trained_on[:12]}, "
                f"not on {real.path} ({real.content_hash[:12]})"
            )
            log.warning(notes[-1])
    return ProtocolData(
        train_images=real.images[rows["train"]],
        train_labels=real.labels[rows["train"]],
        val_images=real.images[rows["val"]],
        val_labels=real.labels[rows["val"]],
        test_images=real.images[rows["test"]],
        test_labels=real.labels[rows["test"]],
        rows=rows,
        class_names=list(real.meta.class_names),
        synthetic_images=syn_images,
        synthetic_labels=syn_labels,
        pool_images=pool_images,
        notes=notes,
    )
