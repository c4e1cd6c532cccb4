"""Checks and conversions every source goes through: labels, pixel scaling, channels."""

from __future__ import annotations

from typing import Any

import numpy as np

from ganaug.errors import DataError

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights, as Pillow's RGB -> L


def encode_labels(labels: np.ndarray, where: str, class_names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Map labels to 0..K-1. Integers keep their numeric order; strings are sorted."""
    if class_names is not None:
        return labels.astype(np.int64), class_names
    values = np.asarray(labels)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise DataError(f"{where}: labels contain NaN or inf")
        if (values != np.round(values)).any():
            bad = values[values != np.round(values)][0]
            raise DataError(f"{where}: label {bad} is neither an integer nor a string")
        values = values.astype(np.int64)
    elif values.dtype.kind == "O":
        kinds = {type(v) for v in values.tolist()}
        if kinds <= {str}:
            values = values.astype(str)
        elif kinds <= {int, np.int64}:
            values = values.astype(np.int64)
        else:
            raise DataError(f"{where}: labels must be all integers or all strings, found {sorted(k.__name__ for k in kinds)}")
    elif values.dtype.kind not in "iuU":
        raise DataError(f"{where}: labels of type {values.dtype} are neither integers nor strings")
    uniques = np.unique(values)
    codes = np.searchsorted(uniques, values).astype(np.int64)
    return codes, [str(v) for v in uniques.tolist()]


def to_uint8(images: np.ndarray, pixel_max: float | None, where: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Scale pixel intensities 0..pixel_max to uint8 0..255; reject NaN/inf and out-of-range values."""
    if images.dtype.kind not in "uif":
        raise DataError(f"{where}: pixels of type {images.dtype} are not numbers")
    if images.size == 0:
        raise DataError(f"{where}: no images found")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        count = int((~np.isfinite(images)).sum())
        raise DataError(f"{where}: {count} pixel values are NaN or inf")
    low, high = float(images.min()), float(images.max())
    if low < 0:
        raise DataError(f"{where}: pixel values go down to {low}; expected intensities from 0 to the maximum")
    inferred = pixel_max is None
    if pixel_max is None:
        if images.dtype == np.uint8 or high > 1.0:
            pixel_max = 255.0
        else:
            pixel_max = 1.0
    if high > pixel_max:
        raise DataError(f"{where}: pixel values reach {high}, above the full intensity {pixel_max}; set pixel_max")
    if images.dtype == np.uint8 and pixel_max == 255.0:
        scaled = images
    else:
        scaled = np.rint(images.astype(np.float64) * (255.0 / pixel_max)).astype(np.uint8)
    scaling = {
        "input_dtype": str(images.dtype),
        "input_max": pixel_max,
        "input_max_inferred": inferred,
        "stored": "uint8, 0..255 = round(value * 255 / input_max)",
        "model_input": "float32 in [-1, 1] = stored / 127.5 - 1",
    }
    return np.ascontiguousarray(scaled), scaling


def convert_channels(images: np.ndarray, channels: int | None, where: str) -> np.ndarray:
    """(N, C, H, W) -> the requested channel count (grayscale <-> RGB; alpha dropped)."""
    current = images.shape[1]
    if current == 4:
        images, current = images[:, :3], 3
    if current not in (1, 3):
        raise DataError(f"{where}: images have {current} channels; ganaug handles 1 (grayscale) or 3 (RGB)")
    if channels is None or channels == current:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=1)
    return np.tensordot(images.astype(np.float64), _LUMA, axes=([1], [0]))[:, None]
