"""Time the default GAN training on this machine and extrapolate to the default step count.

    python bench/gan_cpu_time.py data/runs/<run>/dataset.parquet            # e.g. MNIST 100/class
    python bench/gan_cpu_time.py data/runs/<run>/dataset.parquet --steps 500 --threads 2

Trains the default `GanConfig` (collapse monitor included, no periodic checkpoints or grids) for
--steps on the CPU and prints images/s and the minutes the default's full step count would take.
Run it on an otherwise idle machine: the figure is an absolute time.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from ganaug.gan import GanConfig, train_gan
from ganaug.store import dataset_ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a dataset.parquet (e.g. MNIST ingested with train_per_class 100)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    full = GanConfig().steps
    with tempfile.TemporaryDirectory() as out:
        result = train_gan(dataset_ref(args.dataset), GanConfig(steps=args.steps, checkpoint_every=None, grid_every=None,
                                                                device="cpu"), out)
    rate = args.steps * GanConfig().batch_size / result.seconds
    print(f"default GanConfig, {args.steps} steps on {args.threads} threads: {result.seconds:.1f} s, {rate:.0f} images/s; "
          f"{full} steps -> {full * result.seconds / args.steps / 60:.1f} min")


if __name__ == "__main__":
    main()
