"""The unlabelled pool: its readers (one per source), the leakage guard and deduplication.

The pool is stored in dataset.parquet as split 'unlabelled' with a null label. It is made of up to
three parts, in this order: rows of a table whose label is empty, training images that
`labels_per_class` moved out of the labelled split (their labels dropped), and the images of
`unlabelled_path`. A pool image identical to a val or test image is dropped (a leakage guard), and
so is every repeat of an image already in the pool; both are counted in the metadata `pool`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganaug.data.config import IngestConfig
from ganaug.data.folder import load_images, refuse_links_out
from ganaug.data.sources import RawImages, empty_labels, images_from_array, read_frame, read_idx_file, table_images
from ganaug.data.validate import convert_channels, to_uint8
from ganaug.errors import DataError
from ganaug.store import NO_LABEL

MOVED_PREFIX = "moved:"  # sample ids of moved training images: a hash of their pixels, nothing of their source
POOL_PREFIX = "unlabelled:"  # sample ids of unlabelled_path's images, beside the labelled source's ids


@dataclass
class PoolRows:
    """The pool as it goes into dataset.parquet: (N, C, H, W) uint8 pixels, sample ids and the metadata `pool`."""

    pixels: np.ndarray
    sample_ids: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    input_files: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------- readers of unlabelled_path


def _where(cfg: IngestConfig) -> str:
    return f"unlabelled pool {cfg.unlabelled_path}"


def _read_pool_folder(cfg: IngestConfig, path: Path) -> tuple[np.ndarray, list[str], float | None]:
    """A flat folder of images; class sub-folders mean a labelled folder and are refused."""
    if not path.is_dir():
        raise DataError(f"{_where(cfg)} is not a folder; for source 'folder' the pool is a flat folder of images")
    entries = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
    refuse_links_out(path, entries)
    folders = [p.name for p in entries if p.is_dir()]
    if folders:
        raise DataError(f"{_where(cfg)} holds sub-folders ({', '.join(folders[:5])}), so it looks like a labelled folder "
                        "with one sub-folder per class; a pool is one flat folder of images without labels")
    files = [p for p in entries if p.is_file()]
    if not files:
        raise DataError(f"{_where(cfg)} holds no images")
    return load_images(files, cfg), [p.name for p in files], 255.0


def _read_pool_idx(cfg: IngestConfig, path: Path) -> tuple[np.ndarray, list[str], float | None]:
    """An IDX images file (N, H, W) or (N, H, W, C), without a labels file."""
    images = read_idx_file(path)
    if images.ndim not in (3, 4):
        raise DataError(f"{_where(cfg)} has shape {images.shape}; expected an IDX images file (N, H, W) or (N, H, W, C), "
                        "not a labels file")
    nchw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return nchw, [str(i) for i in range(len(images))], 255.0 if images.dtype == np.uint8 else None


def _read_pool_npz(cfg: IngestConfig, path: Path) -> tuple[np.ndarray, list[str], float | None]:
    """A .npz with array 'x' only; an array 'y' means a labelled file and is refused."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "y" in archive.files:
                raise DataError(f"{_where(cfg)} holds labels (array 'y'), so it is a labelled file; a pool .npz holds "
                                "array 'x' only (pass a labelled file as path)")
            if "x" not in archive.files:
                raise DataError(f"{_where(cfg)} has no array 'x' (found: {sorted(archive.files)})")
            x = archive["x"]
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{_where(cfg)} cannot be read without unpickling objects or is damaged: {err}") from None
    if not len(x):
        raise DataError(f"{_where(cfg)} holds no images (array 'x' is empty)")
    images = images_from_array(x, cfg, f"{_where(cfg)} array 'x'")
    return images, [str(i) for i in range(len(x))], 255.0 if x.dtype == np.uint8 else None


def _read_pool_table(cfg: IngestConfig, path: Path) -> tuple[np.ndarray, list[str], float | None]:
    """A table whose label column is missing or empty in every row."""
    frame = read_frame(path)
    if cfg.label_column in frame.columns:
        labelled = np.flatnonzero(~empty_labels(frame[cfg.label_column]))
        if len(labelled):
            raise DataError(f"{_where(cfg)}: column '{cfg.label_column}' holds a label in row {labelled[0]}; a pool table's "
                            "label column must be missing or empty (rows with labels belong in path)")
    if not len(frame):
        raise DataError(f"{_where(cfg)} holds no images")
    return table_images(frame, cfg, path), [str(i) for i in range(len(frame))], None


_POOL_READERS: dict[str, Callable[[IngestConfig, Path], tuple[np.ndarray, list[str], float | None]]] = {
    "folder": _read_pool_folder,
    "idx": _read_pool_idx,
    "npz": _read_pool_npz,
    "table": _read_pool_table,
}


def read_pool(cfg: IngestConfig) -> RawImages:
    """The images of `cfg.unlabelled_path`, read as `cfg.source` reads its labelled input but without labels."""
    path = cfg.unlabelled_path
    if path is None:
        raise DataError("no unlabelled pool given")
    if not path.exists():
        raise DataError(f"{_where(cfg)} does not exist")
    images, names, pixel_max = _POOL_READERS[cfg.source](cfg, path)
    if not len(images):
        raise DataError(f"{_where(cfg)} holds no images")
    files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")] if path.is_dir() else [path]
    return RawImages(images=images, labels=np.full(len(images), NO_LABEL), description=f"{cfg.source}:{path.name}",
                     sample_ids=[f"{POOL_PREFIX}{name}" for name in names], pixel_max=pixel_max, input_files=files)


# ---------------------------------------------------------------- unlabelled rows of the labelled source


def _take(raw: RawImages, rows: np.ndarray) -> RawImages:
    """The rows `rows` (a boolean mask) of `raw`, with its per-row notes."""
    notes = {key: value[rows] if isinstance(value, np.ndarray) and len(value) == len(rows) else value
             for key, value in raw.notes.items() if key != "unlabelled"}
    return RawImages(images=raw.images[rows], labels=np.asarray(raw.labels)[rows], description=raw.description,
                     sample_ids=[sample for sample, keep in zip(raw.sample_ids, rows) if keep], pixel_max=raw.pixel_max,
                     class_names=raw.class_names, input_files=raw.input_files, notes=notes)


def split_unlabelled_rows(raw: RawImages, cfg: IngestConfig) -> tuple[RawImages, RawImages | None]:
    """(the labelled rows, the rows without a label or None): a table's empty labels go to the pool."""
    unlabelled = raw.notes.get("unlabelled")
    if unlabelled is None or not unlabelled.any():
        return raw, None
    if unlabelled.all():
        raise DataError(f"table file {cfg.path}: column '{cfg.label_column}' is empty in every row; "
                        "a dataset needs labelled rows (put unlabelled tables in unlabelled_path)")
    fixed_test = raw.notes.get("fixed_test")
    if fixed_test is not None and (fixed_test & unlabelled).any():
        row = int(np.argmax(fixed_test & unlabelled))
        raise DataError(f"table file {cfg.path}: row {row} is marked 'test' in column '{cfg.split_column}' but its "
                        f"'{cfg.label_column}' is empty; test rows need labels")
    return _take(raw, ~unlabelled), _take(raw, unlabelled)


# ---------------------------------------------------------------- conversion, leakage guard, dedup


def pool_pixels(pool: RawImages, cfg: IngestConfig, shape: tuple[int, ...], pixel_max: float | None,
                where: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The pool's images as the labelled ones: `cfg.channels`, the same size, uint8 0..255."""
    images = convert_channels(pool.images, cfg.channels, where)
    channels, height, width = shape
    if images.shape[1] != channels:
        raise DataError(f"{where} holds {images.shape[1]}-channel images but the labelled images have {channels}; "
                        f"set channels (--channels {channels}) to convert both")
    if images.shape[2:] != (height, width):
        hint = " (set resize to bring both to one size)" if cfg.source == "folder" else ""
        raise DataError(f"{where} holds {images.shape[2]}x{images.shape[3]} images but the labelled images are "
                        f"{height}x{width}{hint}")
    return to_uint8(images, pixel_max, where)


def guard_pool(pixels: np.ndarray, heldout: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(rows to keep, dropped as identical to a val/test image, dropped as repeats within the pool; first kept)."""
    flat = pixels.reshape(len(pixels), -1)
    held = {row.tobytes() for row in heldout.reshape(len(heldout), -1)}
    keep = np.zeros(len(pixels), dtype=bool)
    seen: set[bytes] = set()
    overlap = duplicates = 0
    for i, row in enumerate(flat):
        key = row.tobytes()
        if key in held:
            overlap += 1
        elif key in seen:
            duplicates += 1
        else:
            seen.add(key)
            keep[i] = True
    return keep, overlap, duplicates


def moved_sample_ids(pixels: np.ndarray) -> np.ndarray:
    """Ids of moved training images: a hash of their pixels, so neither the id nor the order says their class."""
    return np.array([MOVED_PREFIX + hashlib.sha256(image.tobytes()).hexdigest()[:16] for image in pixels])


def build_pool(cfg: IngestConfig, pixels: np.ndarray, splits: np.ndarray, moved: np.ndarray,
               in_table: RawImages | None, input_max: float) -> PoolRows | None:
    """The pool's rows after the leakage guard and dedup (None: no pool); `pixels` are the labelled source's, uint8.

    `moved` marks the training rows that labels_per_class takes out of the labelled split; `in_table` holds a
    table's rows without a label, scaled as the rest of that table (`input_max`).
    """
    shape = pixels.shape[1:]
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    sources: list[str] = []
    meta: dict[str, Any] = {}
    files: list[Path] = []
    if in_table is not None:
        table_max = cfg.pixel_max if cfg.pixel_max is not None else input_max
        part = pool_pixels(in_table, cfg, shape, table_max, f"table file {cfg.path} (rows without a label)")[0]
        parts.append((part, np.asarray(in_table.sample_ids)))
        sources.append(f"rows of {in_table.description} with an empty '{cfg.label_column}'")
    read = sum(len(part) for part, _ in parts)
    if moved.any():
        ids = moved_sample_ids(pixels[moved])
        order = np.argsort(ids, kind="stable")  # an order that says nothing of the classes
        parts.append((pixels[moved][order], ids[order]))
        sources.append(f"training images beyond labels_per_class={cfg.labels_per_class}")
    if cfg.unlabelled_path is not None:
        raw = read_pool(cfg)
        part, scaling = pool_pixels(raw, cfg, shape, cfg.pixel_max if cfg.pixel_max is not None else raw.pixel_max, _where(cfg))
        parts.append((part, np.asarray(raw.sample_ids)))
        sources.append(raw.description)
        read += len(part)
        files = raw.input_files
        meta["pixel_scaling"] = {key: scaling[key] for key in ("input_dtype", "input_max", "input_max_inferred")}
    if not parts:
        if cfg.labels_per_class is not None:
            raise DataError(f"labels_per_class={cfg.labels_per_class} moves no training image into the pool (no class has "
                            "more); the unlabelled pool would be empty: lower labels_per_class")
        return None
    return _guarded(parts, pixels[(splits == "val") | (splits == "test")], sources,
                    {**meta, "rows_read": read, "moved_from_train": int(moved.sum())}, files)


def _guarded(parts: list[tuple[np.ndarray, np.ndarray]], heldout: np.ndarray, sources: list[str],
             meta: dict[str, Any], files: list[Path]) -> PoolRows:
    """The pool's parts joined, minus images identical to val/test images and repeats; an empty result is an error."""
    pixels = np.concatenate([part for part, _ in parts])
    sample_ids = np.concatenate([ids for _, ids in parts])
    keep, overlap, duplicates = guard_pool(pixels, heldout)
    source = " + ".join(sources)
    if not keep.any():
        raise DataError(f"the unlabelled pool ({source}) is empty after dropping {overlap} images identical to val/test "
                        f"images and {duplicates} repeats; give a pool of other images")
    meta = {"source": source, **meta, "dropped_overlap_val_test": overlap, "dropped_duplicates": duplicates,
            "rows": int(keep.sum())}
    return PoolRows(pixels=pixels[keep], sample_ids=sample_ids[keep], meta=meta, input_files=files)


def describe_pool(pool: dict[str, Any]) -> str:
    """One line on the pool (the metadata `pool` of a dataset): its size, where it came from and what was dropped."""
    counts = [f"{pool['rows_read']} read"] if pool.get("rows_read") else []
    counts += [f"{pool['moved_from_train']} moved from the train split"] if pool.get("moved_from_train") else []
    return (f"unlabelled pool: {pool['rows']} images from {pool['source']} ({', '.join(counts)}); dropped "
            f"{pool['dropped_overlap_val_test']} identical to val/test images and {pool['dropped_duplicates']} duplicates")
