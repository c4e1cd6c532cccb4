"""Readers for each input kind. Each returns `RawImages`: (N, C, H, W) numeric pixels and raw labels."""

from __future__ import annotations

import gzip
import logging
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganaug.data.config import IngestConfig
from ganaug.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class RawImages:
    """Pixels as read, before scaling: (N, C, H, W) of any numeric dtype, and labels as found."""

    images: np.ndarray
    labels: np.ndarray
    description: str
    sample_ids: list[str]
    pixel_max: float | None = None  # known full-intensity value, when the source defines one
    class_names: list[str] | None = None  # given by the source (folder names), in label order
    input_files: list[Path] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def _require_path(path: Path | None, what: str) -> Path:
    if path is None:
        raise DataError(f"no {what} given")
    if not path.exists():
        raise DataError(f"{what} {path} does not exist")
    return path


def read_digits(cfg: IngestConfig) -> RawImages:
    """scikit-learn's built-in handwritten digits: 1797 8x8 images, intensities 0..16."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images[:, None, :, :]  # (N, 1, 8, 8)
    return RawImages(
        images=images,
        labels=digits.target,
        description="digits (scikit-learn load_digits, UCI optdigits test set)",
        sample_ids=[f"digits-{i:04d}" for i in range(len(images))],
        pixel_max=16.0,
    )


# ---------------------------------------------------------------- IDX


def read_idx_file(path: Path) -> np.ndarray:
    """Parse an IDX file (raw or gzip): magic 0x00 0x00 <dtype> <ndim>, big-endian dims, data."""
    raw = _require_path(path, "IDX file").read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"IDX file {path} is a damaged gzip file: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"IDX file {path} has a wrong magic number {raw[:4].hex() or '(empty file)'}; "
            "expected 0000 followed by a dtype code (08 for uint8) and the number of dimensions"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"IDX file {path} is truncated: its header declares {ndim} dimensions")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        kind = "truncated" if actual < expected else "longer than its header says"
        raise DataError(f"IDX file {path} is {kind}: header shape {dims} needs {expected} data bytes, found {actual}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(cfg: IngestConfig) -> RawImages:
    """An MNIST-format pair: images (N, H, W) or (N, H, W, C) and labels (N,)."""
    images_path = _require_path(cfg.path, "IDX images file")
    labels_path = _require_path(cfg.labels_path, "IDX labels file")
    images = read_idx_file(images_path)
    labels = read_idx_file(labels_path)
    if images.ndim not in (3, 4):
        raise DataError(f"IDX images file {images_path} has {images.ndim} dimensions; expected (N, H, W) or (N, H, W, C)")
    if labels.ndim != 1:
        raise DataError(f"IDX labels file {labels_path} has shape {labels.shape}; expected one label per image (N,)")
    if len(images) != len(labels):
        raise DataError(
            f"image/label count mismatch: {images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    nchw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return RawImages(
        images=nchw,
        labels=labels,
        description=f"idx:{images_path.name}+{labels_path.name}",
        sample_ids=[f"{images_path.name}:{i}" for i in range(len(images))],
        pixel_max=255.0 if images.dtype == np.uint8 else None,
        input_files=[images_path, labels_path],
    )


# ---------------------------------------------------------------- NumPy and tables


def images_from_array(x: np.ndarray, cfg: IngestConfig, where: str) -> np.ndarray:
    """Accept (N, H, W), (N, H, W, C), (N, C, H, W) or flat (N, D); return (N, C, H, W)."""
    if x.ndim == 2:
        return _unflatten(x, cfg, where)
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            return x.transpose(0, 3, 1, 2)
        if x.shape[1] in (1, 3, 4):
            return x
        raise DataError(f"{where}: cannot tell the channel axis of shape {x.shape}; use (N, H, W, C) or (N, C, H, W) with C in 1, 3")
    raise DataError(f"{where}: images must have 2 to 4 dimensions, got shape {x.shape}")


def _unflatten(flat: np.ndarray, cfg: IngestConfig, where: str) -> np.ndarray:
    n, size = flat.shape
    channels = cfg.channels or 1
    if cfg.height is not None:
        height, width = cfg.height, cfg.width or cfg.height
    else:
        side = math.isqrt(size // channels) if size % channels == 0 else 0
        if side * side * channels != size:
            raise DataError(f"{where}: {size} pixels per image is not a square {channels}-channel image; set height and width")
        height = width = side
    if channels * height * width != size:
        raise DataError(f"{where}: {size} pixels per image do not match channels x height x width = {channels}x{height}x{width}")
    return flat.reshape(n, channels, height, width)


def read_npz(cfg: IngestConfig) -> RawImages:
    """A NumPy `.npz` with arrays `x` (images) and `y` (labels); never unpickles objects."""
    path = _require_path(cfg.path, "npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x", "y") if key not in archive.files]
            if missing:
                raise DataError(f"npz file {path} has no array {missing[0]!r} (found: {sorted(archive.files)}); expected 'x' and 'y'")
            x, y = archive["x"], archive["y"]
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"npz file {path} cannot be read without unpickling objects or is damaged: {err}") from None
    if y.ndim != 1:
        raise DataError(f"npz file {path}: array 'y' has shape {y.shape}; expected one label per image (N,)")
    if len(x) != len(y):
        raise DataError(f"image/label count mismatch in {path}: 'x' has {len(x)} images but 'y' has {len(y)} labels")
    return RawImages(
        images=images_from_array(x, cfg, f"npz file {path} array 'x'"),
        labels=y,
        description=f"npz:{path.name}",
        sample_ids=[f"{path.name}:{i}" for i in range(len(x))],
        pixel_max=255.0 if x.dtype == np.uint8 else None,
        input_files=[path],
    )


def read_frame(path: Path) -> Any:
    """A Parquet or CSV table as a pandas DataFrame."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"table file {path} cannot be read: {err}") from None
    raise DataError(f"table file {path} must end in .parquet, .pq or .csv")


def table_images(frame: Any, cfg: IngestConfig, path: Path) -> np.ndarray:
    """(N, C, H, W) pixels of a table: `cfg.pixels_column`, or every column but the label and split columns."""
    import pandas as pd

    if cfg.pixels_column is not None:
        if cfg.pixels_column not in frame.columns:
            raise DataError(f"table file {path} has no pixels column '{cfg.pixels_column}'")
        rows = frame[cfg.pixels_column].tolist()
        lengths = {len(row) for row in rows}
        if len(lengths) > 1:
            raise DataError(f"table file {path}: column '{cfg.pixels_column}' has rows of different lengths {sorted(lengths)[:5]}")
        flat = np.asarray(rows, dtype=np.float64)
    else:
        pixel_columns = [c for c in frame.columns if c not in (cfg.label_column, cfg.split_column)]
        for column in pixel_columns:
            if not pd.api.types.is_numeric_dtype(frame[column]):
                raise DataError(f"table file {path}: column '{column}' is not numeric; pixel columns must hold numbers")
        if not pixel_columns:
            raise DataError(f"table file {path} has no pixel columns besides '{cfg.label_column}'")
        flat = frame[pixel_columns].to_numpy(dtype=np.float64)
    return _unflatten(flat, cfg, f"table file {path}")


def empty_labels(column: Any) -> np.ndarray:
    """Boolean mask of a label column's empty cells: null, NaN or a blank string."""
    blank = column.map(lambda value: isinstance(value, str) and not value.strip())
    return (column.isna() | blank.astype(bool)).to_numpy(dtype=bool)


def read_table(cfg: IngestConfig) -> RawImages:
    """A Parquet or CSV table: a label column plus pixel columns or one list column of pixels.

    Rows whose label is empty are marked in notes['unlabelled']: ingestion puts them in the pool.
    """
    path = _require_path(cfg.path, "table file")
    frame = read_frame(path)
    if cfg.label_column not in frame.columns:
        raise DataError(f"table file {path} has no label column '{cfg.label_column}' (columns: {list(frame.columns)[:10]})")
    labels = frame[cfg.label_column].to_numpy()
    notes: dict[str, Any] = {}
    if cfg.split_column is not None:
        notes["fixed_test"] = _test_rows(frame, cfg.split_column, path)
    unlabelled = empty_labels(frame[cfg.label_column])
    if unlabelled.any():
        notes["unlabelled"] = unlabelled
    return RawImages(
        images=table_images(frame, cfg, path),
        labels=labels,
        description=f"table:{path.name}",
        sample_ids=[f"{path.name}:{i}" for i in range(len(frame))],
        input_files=[path],
        notes=notes,
    )


def _test_rows(frame: Any, column: str, path: Path) -> np.ndarray:
    """Boolean mask of the rows whose `column` says 'test'; other values must be 'train' or 'val'."""
    if column not in frame.columns:
        raise DataError(f"table file {path} has no split column '{column}' (columns: {list(frame.columns)[:10]})")
    values = frame[column].astype(str).str.strip().str.lower().to_numpy()
    unknown = sorted(set(values.tolist()) - {"train", "val", "test"})
    if unknown:
        raise DataError(f"table file {path}: column '{column}' holds {unknown[:3]}; expected train, val or test")
    if not (values == "test").any():
        raise DataError(f"table file {path}: column '{column}' marks no row as 'test'")
    return values == "test"
