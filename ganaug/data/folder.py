"""Image-folder reader: one sub-folder per class, PNG/JPEG (and other Pillow formats) inside.

Hidden files (names starting with '.') are ignored; any other file that is not a readable
image is an error naming the file, so a stray file never silently shrinks a class.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ganaug.data.config import IngestConfig
from ganaug.data.sources import IMAGE_SUFFIXES, RawImages
from ganaug.errors import DataError

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F", "P"}


def refuse_links_out(root: Path, entries: list[Path]) -> None:
    """Refuse any of `entries` that is a symbolic link leading outside `root` (a file or a folder).

    Ingesting follows links, so a link out of the folder would read files its owner never put there.
    Links that stay inside the folder are fine.
    """
    top = root.resolve()
    for entry in entries:
        if entry.is_symlink() and not entry.resolve().is_relative_to(top):
            raise DataError(f"{entry} is a symbolic link to {entry.resolve()}, outside the image folder {root}; "
                            "copy what it points to into the folder, or remove the link")


def _class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    refuse_links_out(root, entries)
    if not entries:
        raise DataError(f"image folder {root} is empty; expected one sub-folder per class")
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise DataError(f"image folder {root} holds a file {stray[0].name}; expected only one sub-folder per class")
    return entries


def _image_files(root: Path, folder: Path) -> list[Path]:
    entries = [p for p in sorted(folder.rglob("*")) if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    refuse_links_out(root, entries)
    files = [p for p in entries if p.is_file()]
    if not files:
        raise DataError(f"class folder {folder} holds no images")
    return files


def _is_gray(image: object) -> bool:
    mode = getattr(image, "mode", "")
    if mode == "P":
        palette = image.convert("RGB")  # type: ignore[attr-defined]
        array = np.asarray(palette)
        return bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())
    return mode in _GRAY_MODES


def _open(path: Path):  # -> PIL.Image.Image
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path} is not an image file (suffix {path.suffix or 'none'}); remove it or move it out of the class folder")
    try:
        with warnings.catch_warnings():  # over Image.MAX_IMAGE_PIXELS: a decompression bomb, or no image of this kind
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"{path} is too large to be read safely ({err}); images of a training set are far smaller, so "
                        "it is refused as a possible decompression bomb") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path} is not a readable image: {err}") from None
    return image


def _refuse_unnamed_test_set(root: Path, folders: list[Path]) -> None:
    """A `test/` folder holding sub-folders named like the classes is a test set, not a class: say so."""
    names = {folder.name for folder in folders}
    for folder in folders:
        if folder.name.lower() != "test":
            continue
        nested = sorted(sub.name for sub in folder.iterdir() if sub.is_dir() and sub.name in names)
        if nested:
            raise DataError(
                f"image folder {root}: {folder} holds class sub-folders ({', '.join(nested[:5])}), so it looks like a "
                f"test set, not a class; pass --test-path {folder} (test_path) to make it the fixed test split, "
                "or rename it if 'test' really is a class"
            )


def read_folder(cfg: IngestConfig) -> RawImages:
    """Read every image under `cfg.path/<class>/`; resize to `cfg.resize` when given."""
    root = cfg.path
    if root is None:
        raise DataError("no image folder given")
    folders = _class_folders(root)
    if cfg.test_path is not None:  # a test/ sub-folder given as test_path is not a class
        folders = [folder for folder in folders if folder.resolve() != cfg.test_path.resolve()]
        if not folders:
            raise DataError(f"image folder {root} holds only the test folder {cfg.test_path}; expected class sub-folders")
    else:
        _refuse_unnamed_test_set(root, folders)
    files: list[tuple[int, Path]] = [(label, f) for label, folder in enumerate(folders) for f in _image_files(root, folder)]
    return RawImages(
        images=load_images([path for _, path in files], cfg),
        labels=np.array([label for label, _ in files], dtype=np.int64),
        description=f"folder:{root.name}",
        sample_ids=[str(path.relative_to(root)) for _, path in files],
        pixel_max=255.0,
        class_names=[folder.name for folder in folders],
        input_files=[path for _, path in files],
    )


def load_images(paths: list[Path], cfg: IngestConfig) -> np.ndarray:
    """(N, C, H, W) uint8 images of `paths`: `cfg.channels` (None: RGB if any is colour), resized to `cfg.resize`."""
    from PIL import Image

    opened = [(path, _open(path)) for path in paths]
    channels = cfg.channels or (1 if all(_is_gray(image) for _, image in opened) else 3)
    mode = "L" if channels == 1 else "RGB"
    expected: tuple[int, int] | None = None
    arrays = []
    for path, image in opened:
        image = image.convert(mode)
        if cfg.resize is not None:
            height, width = cfg.resize
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        size = (image.height, image.width)
        if expected is None:
            expected = size
        elif size != expected:
            raise DataError(
                f"{path} is {size[0]}x{size[1]} but earlier images are {expected[0]}x{expected[1]}; "
                "set the resize option (e.g. --resize 28 28) to bring all images to one size"
            )
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))  # (C, H, W)
    return np.stack(arrays)
