"""Tiny inputs of every supported kind, written by the tests themselves (import as `ingest_inputs`)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = False, magic: bytes | None = None) -> Path:
    """Write an IDX file (uint8) with the canonical header."""
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    payload = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def tiny_images(n_per_class: int = 6, classes: int = 3, size: int = 8, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class-dependent uint8 images (N, H, W[, C]) and int labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    base = rng.integers(0, 256, size=(classes, size, size, channels))
    noise = rng.integers(0, 40, size=(len(labels), size, size, channels))
    images = np.clip(base[labels] + noise, 0, 255).astype(np.uint8)
    return (images[..., 0] if channels == 1 else images), labels


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []
