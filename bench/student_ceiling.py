"""How far a self-training student could get: ganaug's default classifier on truly labelled MNIST at a student's budget.

A self-training student (docs/evaluation.md) trains on about 50,000 pool images whose pseudo-labels
are 99.1-99.7% right on MNIST with 10 labels per class (docs/benchmarks/semi_supervised.md), for
3,000 steps with the classic affine augmentation, and reaches 0.967-0.979 on the official test set.
This script trains the same network (`ArchSpec()`, `TrainConfig(steps=...)`, the classic augmentation)
on 50,000 training images *with their true labels*, val on 1,200 others, and prints its test accuracy:
the ceiling of that student. A student far below it is limited by which pool images its thresholds
let in, not by its network or budget.

    python bench/student_ceiling.py --steps 3000
    python bench/student_ceiling.py --steps 3000 6000 --seed 1

MNIST is read from ../shared/datasets/mnist (beside the project). One torch thread; deterministic per seed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ganaug.classifier import ArchSpec, TrainConfig, predict_logits, train_classifier
from ganaug.data.sources import read_idx_file
from ganaug.data.tensors import images_to_tensor
from ganaug.evaluate.augment import classic_augment
from ganaug.evaluate.config import ClassicAugmentConfig

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
TRAIN, VAL = 50_000, 1_200


def _idx(stem: str) -> np.ndarray:
    for name in (f"{stem}.gz", stem):
        if (MNIST / name).is_file():
            return read_idx_file(MNIST / name)
    raise SystemExit(f"{MNIST}/{stem}[.gz] not found (see the module docstring)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[3000], help="step budgets to train at")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = _idx("train-images-idx3-ubyte")[:, None], _idx("train-labels-idx1-ubyte").astype(np.int64)
    x_test, y_test = _idx("t10k-images-idx3-ubyte")[:, None], _idx("t10k-labels-idx1-ubyte").astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(x))
    train, val = order[:TRAIN], order[TRAIN:TRAIN + VAL]
    images, labels = images_to_tensor(x[train]), torch.from_numpy(y[train])
    val_set = (images_to_tensor(x[val]), torch.from_numpy(y[val]))
    for steps in args.steps:
        started = time.perf_counter()
        trained = train_classifier(ArchSpec(), (images, labels), val_set, 10, TrainConfig(steps=steps), seed=args.seed,
                                   augment=classic_augment(ClassicAugmentConfig()))
        accuracy = float((predict_logits(trained.model, images_to_tensor(x_test)).argmax(1).numpy() == y_test).mean())
        print(f"{TRAIN} true labels, {steps} steps, seed {args.seed}: test accuracy {accuracy:.4f} "
              f"(val {trained.best_val_accuracy:.4f}, {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
