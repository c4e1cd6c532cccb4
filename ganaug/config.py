"""Stage configurations (pydantic) and the `PipelineConfig` that composes them.

Every field has a default, a range and a one-line description; unknown keys are rejected.
Each stage's config lives next to its code and is re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ganaug.configbase import StrictModel, load_config, read_config_file, validate_config

__all__ = ["IngestConfig", "PipelineConfig", "StrictModel", "load_config", "read_config_file", "validate_config"]

IngestSource = Literal["digits", "idx", "folder", "npz", "table"]


class IngestConfig(StrictModel):
    """How to read a labelled dataset and split it into train/val/test."""

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
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="Share of each class put in the validation split.")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of each class put in the held-out test split.")
    train_fraction: float | None = Field(None, gt=0.0, le=1.0, description="Keep this share of each class's training samples (low-data regimes); None = all.")
    train_per_class: int | None = Field(None, ge=1, description="Keep at most this many training samples per class; None = all.")
    imbalance: dict[str, int] | None = Field(None, description="Keep only k training samples of the named classes, e.g. {'3': 10} (imbalanced regimes).")
    seed: int = Field(0, ge=0, description="Seed of the stratified split and of subsampling.")

    @model_validator(mode="after")
    def _check_combination(self) -> IngestConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 so that a training split remains")
        if self.train_fraction is not None and self.train_per_class is not None:
            raise ValueError("set train_fraction or train_per_class, not both")
        if self.source != "digits" and self.path is None:
            raise ValueError(f"source '{self.source}' needs a path")
        if self.source == "idx" and self.labels_path is None:
            raise ValueError("source 'idx' needs labels_path (the IDX labels file)")
        only_for = {"labels_path": "idx", "resize": "folder", "pixels_column": "table"}
        for option, source in only_for.items():
            if getattr(self, option) is not None and self.source != source:
                raise ValueError(f"{option} applies only to source '{source}', not '{self.source}'")
        if self.source == "digits" and self.path is not None:
            raise ValueError("source 'digits' is built in and takes no path")
        for name, count in (self.imbalance or {}).items():
            if count < 1:
                raise ValueError(f"imbalance['{name}'] must be at least 1, got {count}")
        return self


def __getattr__(name: str) -> object:
    """`PipelineConfig` is defined in `ganaug.orchestration` and loaded on first use.

    It composes every stage's config, and those import torch; loading it lazily keeps
    `ganaug --help` and the stages that do not need it fast.
    """
    if name == "PipelineConfig":
        from ganaug.orchestration import PipelineConfig

        return PipelineConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
