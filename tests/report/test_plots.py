"""The report's real-vs-synthetic figure draws every image with square pixels, as separate tiles."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from ganaug.report.plots import TILE_GAP, _tile, sample_grid

GRAY = 128  # every test image is uniformly this gray, so the mosaics are the only gray pixels of the figure


def _panel_boxes(png: Path) -> list[tuple[int, int]]:
    """(width, height) in screen pixels of the gray area of each panel (left half, right half of the figure)."""
    pixels = np.asarray(Image.open(png).convert("L")).astype(int)
    half = pixels.shape[1] // 2
    boxes = []
    for part in (pixels[:, :half], pixels[:, half:]):
        gray = np.abs(part - GRAY) <= 2
        # rows and columns that cross the mosaic are mostly gray; anti-aliased text adds only a few gray pixels
        rows = np.flatnonzero(gray.sum(1) >= 0.5 * gray.sum(1).max())
        columns = np.flatnonzero(gray.sum(0) >= 0.5 * gray.sum(0).max())
        boxes.append((int(columns[-1] - columns[0] + 1), int(rows[-1] - rows[0] + 1)))
    return boxes


@pytest.mark.parametrize(("size", "classes"), [(8, 10), (28, 10), (28, 3), (8, 2)])
@pytest.mark.parametrize("style_aspect", ["equal", "auto"])  # "auto": a matplotlibrc or style that stretches images
def test_panels_keep_square_pixels(tmp_path: Path, size: int, classes: int, style_aspect: str) -> None:
    labels = np.repeat(np.arange(classes), 8)
    images = np.full((len(labels), 1, size, size), GRAY, dtype=np.uint8)
    with matplotlib.rc_context({"image.aspect": style_aspect}):
        path = sample_grid((images, labels), (images, labels), [f"class {k}" for k in range(classes)], tmp_path / "g.png")
    mosaic_height, mosaic_width = _tile(images, labels, classes, 8).shape[:2]
    for width, height in _panel_boxes(path):
        # up to 3 screen pixels per side: the frame covers the outermost ones, and the image snaps to whole pixels
        wanted = mosaic_width / mosaic_height
        assert abs(width / height - wanted) <= (3 / width + 3 / height) * wanted, (width, height, wanted)


def test_tiles_are_separated_and_empty_cells_stay_black() -> None:
    images = np.full((3, 1, 2, 2), 100, dtype=np.uint8)
    mosaic = _tile(images, np.array([0, 0, 1]), num_classes=2, per_class=2)[..., 0]
    assert mosaic.shape == (2 * 2 + TILE_GAP, 2 * 2 + TILE_GAP)
    assert (mosaic[:2, :2] == 100).all() and (mosaic[:2, 3:] == 100).all()  # class 0: two images
    assert (mosaic[3:, :2] == 100).all() and (mosaic[3:, 3:] == 0).all()  # class 1: one image, then an empty cell
    assert (mosaic[2, :] == 255).all() and (mosaic[:, 2] == 255).all()  # the white gaps between tiles
