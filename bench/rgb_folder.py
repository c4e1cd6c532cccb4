"""A 32x32 RGB image folder for the GAN benchmarks: colour MNIST, built from the MNIST IDX files.

Each digit is padded from 28x28 to 32x32 and painted with a random stroke colour (any hue,
saturation 0.5-1, value 0.7-1) on a random dark background (any hue, value 0-0.35), so colour varies
within every class and says nothing about the label: a generator that collapses loses the colour
variety first. The folder has one sub-folder per class (PNG files) and a `test/` sub-folder with the
same classes, which `ganaug ingest --source folder` takes as the fixed test set:

    python bench/rgb_folder.py ../shared/datasets/mnist data/bench/rgb32 --per-class 300 --test-per-class 200
    ganaug ingest --source folder --path data/bench/rgb32 --train-per-class 100 --out data/bench/rgb32_run

Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

from ganaug.data.sources import read_idx_file


def colourise(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 28, 28) uint8 gray digits -> (n, 32, 32, 3) uint8 RGB, one random stroke and background colour each."""
    n = len(digits)
    alpha = np.pad(digits.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))[..., None]
    stroke = np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in
                       zip(rng.random(n), rng.uniform(0.5, 1.0, n), rng.uniform(0.7, 1.0, n))], dtype=np.float32)
    ground = np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in
                       zip(rng.random(n), rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 0.35, n))], dtype=np.float32)
    rgb = ground[:, None, None, :] * (1.0 - alpha) + stroke[:, None, None, :] * alpha
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def write_split(images: np.ndarray, labels: np.ndarray, per_class: int, folder: Path, rng: np.random.Generator) -> int:
    """Write `per_class` colourised images of each digit under folder/<digit>/; returns the count written."""
    written = 0
    for digit in range(10):
        picked = rng.permutation(np.flatnonzero(labels == digit))[:per_class]
        (folder / str(digit)).mkdir(parents=True, exist_ok=True)
        for index, pixels in zip(picked, colourise(images[picked], rng)):
            Image.fromarray(pixels, mode="RGB").save(folder / str(digit) / f"{index:05d}.png")
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mnist", type=Path, help="folder holding the MNIST IDX files (train-*, t10k-*)")
    parser.add_argument("out", type=Path, help="image folder to write (must not exist)")
    parser.add_argument("--per-class", type=int, default=300, help="training-folder images per class")
    parser.add_argument("--test-per-class", type=int, default=200, help="test/ images per class (from MNIST's test set)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; choose a new folder")
    rng = np.random.default_rng(args.seed)
    tmp = args.out.with_name(args.out.name + ".tmp")
    counts = []
    for prefix, per_class, folder in (("train", args.per_class, tmp), ("t10k", args.test_per_class, tmp / "test")):
        images = read_idx_file(args.mnist / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx_file(args.mnist / f"{prefix}-labels-idx1-ubyte.gz")
        counts.append(write_split(images, labels, per_class, folder, rng))
    n_train, n_test = counts
    tmp.rename(args.out)
    print(f"{args.out}: {n_train} training and {n_test} test images, 32x32 RGB, 10 classes")


if __name__ == "__main__":
    main()
