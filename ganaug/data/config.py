"""`IngestConfig`: how to read a labelled dataset (and an unlabelled pool) and split it into train/val/test."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ganaug.configbase import StrictModel

IngestSource = Literal["digits", "idx", "folder", "npz", "table"]


class IngestConfig(StrictModel):
    """How to read a labelled dataset (and an unlabelled pool) and split it into train/val/test."""

    source: IngestSource = Field("digits", description="Input kind: built-in digits, IDX pair, image folder, .npz or Parquet/CSV table.")
    path: Path | None = Field(None, description="Input file or folder (IDX images file, image folder, .npz, .parquet/.csv).")
    labels_path: Path | None = Field(None, description="IDX labels file (source=idx).")
    label_column: str = Field("label", min_length=1, description="Label column of a table (source=table).")
    pixels_column: str | None = Field(None, description="A list column holding each image's pixels (source=table); None = every other numeric column is a pixel.")
    height: int | None = Field(None, ge=1, le=4096, description="Image height for flat pixel data (table, flat npz); None = square grayscale.")
    width: int | None = Field(None, ge=1, le=4096, description="Image width for flat pixel data; None = same as height.")
    channels: Literal[1, 3] | None = Field(None, description="Channels to keep: 1 (grayscale) or 3 (RGB); None = as found (folder: RGB if any image is colour).")
    resize: tuple[int, int] | None = Field(None, description="Resize every image to (height, width) (source=folder); None = sizes must already agree.")
    pixel_max: float | None = Field(None, gt=0, description="Value that means full intensity in the input; None = infer (uint8 -> 255, floats <= 1 -> 1).")
    test_path: Path | None = Field(
        None,
        description="A separate test set in the same format as path (e.g. IDX t10k files, a test/ image folder): all of it becomes the test split and val comes from path; None = test split drawn from path.",
    )
    test_labels_path: Path | None = Field(None, description="IDX labels file of the separate test set (source=idx with test_path).")
    split_column: str | None = Field(
        None, min_length=1,
        description="A column of the table (source=table) whose value 'test' marks the test split; other rows ('train' or 'val') are split into train and val.",
    )
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="Share of each class put in the validation split.")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of each class put in the held-out test split.")
    train_fraction: float | None = Field(None, gt=0.0, le=1.0, description="Keep this share of each class's training samples (low-data regimes); None = all.")
    train_per_class: int | None = Field(None, ge=1, description="Keep at most this many training samples per class; None = all.")
    imbalance: dict[str, int] | None = Field(None, description="Keep only k training samples of the named classes, e.g. {'3': 10} (imbalanced regimes).")
    unlabelled_path: Path | None = Field(
        None,
        description="An unlabelled pool in the same format as path, stored as split 'unlabelled' with null labels: a flat "
                    "folder of images (no class sub-folders), an IDX images file without labels, a .npz with array 'x' "
                    "only, or a table whose label column is missing or empty. Not for source 'digits' "
                    "(use labels_per_class). A table's rows with an empty label always go to the pool.",
    )
    labels_per_class: int | None = Field(
        None, ge=1,
        description="Benchmark regime: keep K labelled training images per class and move the rest of the training "
                    "split into the unlabelled pool, labels dropped; imbalance then caps the named classes lower (their "
                    "other images move to the pool too). Not with train_fraction or train_per_class; None = off.",
    )
    seed: int = Field(0, ge=0, description="Seed of the stratified split and of subsampling.")

    @model_validator(mode="after")
    def _check_combination(self) -> IngestConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 so that a training split remains")
        if self.train_fraction is not None and self.train_per_class is not None:
            raise ValueError("set train_fraction or train_per_class, not both")
        if self.labels_per_class is not None and (self.train_fraction is not None or self.train_per_class is not None):
            raise ValueError("labels_per_class sets the training labels per class; remove train_fraction and train_per_class "
                             "(use imbalance to keep fewer of some classes)")
        if self.source == "digits" and self.unlabelled_path is not None:
            raise ValueError("source 'digits' is built in and takes no unlabelled_path; "
                             "use labels_per_class to move part of its training split into the pool")
        if self.source != "digits" and self.path is None:
            raise ValueError(f"source '{self.source}' needs a path")
        if self.source == "idx" and self.labels_path is None:
            raise ValueError("source 'idx' needs labels_path (the IDX labels file)")
        only_for = {"labels_path": "idx", "resize": "folder", "pixels_column": "table", "test_labels_path": "idx",
                    "split_column": "table"}
        for option, source in only_for.items():
            if getattr(self, option) is not None and self.source != source:
                raise ValueError(f"{option} applies only to source '{source}', not '{self.source}'")
        if self.source == "digits" and self.path is not None:
            raise ValueError("source 'digits' is built in and takes no path")
        if self.test_path is not None and self.source == "digits":
            raise ValueError("source 'digits' is built in and takes no test_path")
        if self.source == "idx" and (self.test_path is None) != (self.test_labels_path is None):
            raise ValueError("source 'idx' needs test_path and test_labels_path together (the IDX images and labels of the test set)")
        if self.test_path is not None and self.split_column is not None:
            raise ValueError("set test_path or split_column, not both: each defines the test split")
        if self.fixed_test() and "test_fraction" in self.model_fields_set:
            raise ValueError("test_fraction does not apply when the test split comes from test_path or split_column; remove it")
        for name, count in (self.imbalance or {}).items():
            if count < 1:
                raise ValueError(f"imbalance['{name}'] must be at least 1, got {count}")
        return self

    def fixed_test(self) -> bool:
        """Whether the test split comes from a separate source rather than a share of `path`."""
        return self.test_path is not None or self.split_column is not None
