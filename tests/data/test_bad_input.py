"""Every bad input gets a clear error naming what is wrong, and nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ingest_inputs import files_under, tiny_images, write_idx

from ganaug.config import IngestConfig
from ganaug.configbase import load_config
from ganaug.data.ingest import ingest
from ganaug.errors import ConfigError, DataError


def _fails(cfg: IngestConfig, out: Path, error: type[Exception], *fragments: str) -> None:
    with pytest.raises(error) as info:
        ingest(cfg, out)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert files_under(out) == []


def test_missing_path(tmp_path: Path) -> None:
    _fails(IngestConfig(source="npz", path=tmp_path / "nope.npz"), tmp_path / "out", DataError, "nope.npz", "does not exist")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _fails(IngestConfig(source="folder", path=tmp_path / "empty"), tmp_path / "out", DataError, "empty", "is empty")


def test_class_folder_without_images(tmp_path: Path, rgb_folder: Path) -> None:
    (rgb_folder / "zebra").mkdir()
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "zebra", "holds no images")


def test_idx_wrong_magic(tmp_path: Path) -> None:
    images, labels = tiny_images()
    bad = write_idx(tmp_path / "img", images, magic=b"\x12\x34\x08\x03")
    cfg = IngestConfig(source="idx", path=bad, labels_path=write_idx(tmp_path / "lab", labels))
    _fails(cfg, tmp_path / "out", DataError, str(bad), "wrong magic number")


def test_idx_truncated(tmp_path: Path) -> None:
    images, labels = tiny_images()
    path = write_idx(tmp_path / "img", images)
    path.write_bytes(path.read_bytes()[:-10])
    cfg = IngestConfig(source="idx", path=path, labels_path=write_idx(tmp_path / "lab", labels))
    _fails(cfg, tmp_path / "out", DataError, str(path), "truncated")


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    images, labels = tiny_images()
    cfg = IngestConfig(source="idx", path=write_idx(tmp_path / "img", images), labels_path=write_idx(tmp_path / "lab", labels[:-1]))
    _fails(cfg, tmp_path / "out", DataError, "count mismatch", "18 images", "17 labels")


def test_mixed_sizes_without_resize(tmp_path: Path, rgb_folder: Path) -> None:
    from PIL import Image

    Image.new("RGB", (9, 9)).save(rgb_folder / "dog" / "big.png")
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "big.png", "9x9", "resize")


def test_non_image_file_in_class_folder_is_an_error(tmp_path: Path, rgb_folder: Path) -> None:
    (rgb_folder / "cat" / "notes.txt").write_text("hello")
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "notes.txt", "not an image")
    (rgb_folder / "cat" / "notes.txt").unlink()
    (rgb_folder / "cat" / "broken.png").write_bytes(b"not a png")
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "broken.png", "not a readable image")


def test_hidden_files_are_ignored(tmp_path: Path, rgb_folder: Path) -> None:
    (rgb_folder / "cat" / ".DS_Store").write_bytes(b"\0")
    assert ingest(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out").rows == 18


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_pixels(tmp_path: Path, bad: float) -> None:
    images, labels = tiny_images()
    x = images.astype(np.float32)
    x[3, 2, 2] = bad
    np.savez(tmp_path / "d.npz", x=x, y=labels)
    _fails(IngestConfig(source="npz", path=tmp_path / "d.npz"), tmp_path / "out", DataError, "d.npz", "NaN or inf")


def test_labels_neither_integers_nor_strings(tmp_path: Path) -> None:
    images, labels = tiny_images()
    np.savez(tmp_path / "d.npz", x=images, y=labels + 0.5)
    _fails(IngestConfig(source="npz", path=tmp_path / "d.npz"), tmp_path / "out", DataError, "d.npz", "neither an integer nor a string")


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    images, labels = tiny_images()
    np.savez(tmp_path / "d.npz", x=images, y=np.array([{"a": 1}] * len(labels), dtype=object))
    _fails(IngestConfig(source="npz", path=tmp_path / "d.npz"), tmp_path / "out", DataError, "d.npz", "unpickling")


def test_single_class(tmp_path: Path) -> None:
    images, _ = tiny_images()
    np.savez(tmp_path / "d.npz", x=images, y=np.zeros(len(images), dtype=int))
    _fails(IngestConfig(source="npz", path=tmp_path / "d.npz"), tmp_path / "out", DataError, "only one class")


def test_class_too_small_for_split(tmp_path: Path) -> None:
    images, labels = tiny_images()
    keep = np.r_[np.flatnonzero(labels != 2), np.flatnonzero(labels == 2)[:2]]
    np.savez(tmp_path / "d.npz", x=images[keep], y=labels[keep])
    _fails(IngestConfig(source="npz", path=tmp_path / "d.npz"), tmp_path / "out", DataError, "class '2' has 2 samples", "at least 3")


def test_non_numeric_pixel_column(tmp_path: Path) -> None:
    pd.DataFrame({"label": [0, 1] * 5, "p0": ["x"] * 10}).to_csv(tmp_path / "t.csv", index=False)
    _fails(IngestConfig(source="table", path=tmp_path / "t.csv"), tmp_path / "out", DataError, "t.csv", "column 'p0'")


def test_missing_label_column(tmp_path: Path) -> None:
    pd.DataFrame({"y": [0, 1], "p0": [1, 2]}).to_csv(tmp_path / "t.csv", index=False)
    _fails(IngestConfig(source="table", path=tmp_path / "t.csv"), tmp_path / "out", DataError, "label column 'label'")


def test_imbalance_of_unknown_class(tmp_path: Path) -> None:
    _fails(IngestConfig(imbalance={"eleven": 3}), tmp_path / "out", ConfigError, "imbalance", "'eleven'")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"trian_fraction": 0.5}, "trian_fraction: unknown option"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"train_fraction": 1.5}, "train_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "below 1"),
        ({"source": "idx", "path": "a"}, "labels_path"),
        ({"resize": [4, 4]}, "resize applies only to source 'folder'"),
    ],
)
def test_bad_config(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(IngestConfig, overrides=overrides)


def test_config_file_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("source: digits\nsede: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*sede: unknown option"):
        load_config(IngestConfig, path)


def test_output_folder_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fails(IngestConfig(), blocker / "out", DataError, str(blocker / "out"))
    if os.geteuid() != 0:  # root can write anywhere, so the permission case only bites for other users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        _fails(IngestConfig(), locked, DataError, "not writable")


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (gray): a tiny file that would decode to a huge image."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [20000, 10000])  # over twice Pillow's pixel limit (its error), and over it (its warning)
def test_decompression_bomb_is_refused_in_one_line(tmp_path: Path, rgb_folder: Path, side: int) -> None:
    _png_header(rgb_folder / "cat" / "bomb.png", side, side)
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "bomb.png", "decompression bomb")


def test_symlinked_image_outside_the_folder_is_refused(tmp_path: Path, rgb_folder: Path) -> None:
    outside = tmp_path / "secret.png"
    (rgb_folder / "cat" / "000.png").rename(outside)
    (rgb_folder / "cat" / "link.png").symlink_to(outside)
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "link.png",
           "symbolic link", "outside the image folder")


def test_symlinked_class_folder_outside_the_folder_is_refused(tmp_path: Path, rgb_folder: Path) -> None:
    (rgb_folder / "owl").rename(tmp_path / "elsewhere")
    (rgb_folder / "owl").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "owl", "outside the image folder")
    (rgb_folder / "owl").unlink()
    (rgb_folder / "cat" / "nested").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # deeper down too
    _fails(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out", DataError, "nested", "outside the image folder")


def test_symlinks_inside_the_folder_are_followed(tmp_path: Path, rgb_folder: Path) -> None:
    (rgb_folder / ".store").mkdir()  # hidden: not a class
    (rgb_folder / "cat" / "000.png").rename(rgb_folder / ".store" / "000.png")
    (rgb_folder / "cat" / "000.png").symlink_to(rgb_folder / ".store" / "000.png")
    assert ingest(IngestConfig(source="folder", path=rgb_folder), tmp_path / "out").rows == 18


def test_symlink_out_of_an_unlabelled_pool_folder_is_refused(tmp_path: Path, rgb_folder: Path) -> None:
    from PIL import Image

    pool = tmp_path / "pool"
    pool.mkdir()
    Image.new("RGB", (8, 8)).save(pool / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "private.png")
    (pool / "b.png").symlink_to(tmp_path / "private.png")
    _fails(IngestConfig(source="folder", path=rgb_folder, unlabelled_path=pool), tmp_path / "out", DataError, "b.png",
           "outside the image folder")
