"""Classification accuracy score (CAS) of the GAN against training time, on digits.

Trains the GAN with the default config (or overrides), keeping a checkpoint every
--checkpoint-every steps. For each checkpoint, samples --per-class images per class from the EMA
generator, trains the project's default classifier on those samples only (early stopping on a
separate synthetic validation set), and scores it on the real test split. The same classifier
trained on the real train split is printed as the reference.

    python bench/gan_quality.py                       # default config
    python bench/gan_quality.py --set '{"steps": 1500}' --checkpoint-every 250
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from ganaug.classifier import ArchSpec, TrainConfig, accuracy, train_classifier
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.data.tensors import load_tensors
from ganaug.gan import GanConfig, load_generator, sample, train_gan
from ganaug.gan.checkpoint import periodic_checkpoints


def classification_accuracy_score(checkpoint: Path, test: tuple[torch.Tensor, torch.Tensor], per_class: int,
                                  train_cfg: TrainConfig, seed: int) -> float:
    """Accuracy on the real test split of a classifier trained only on the generator's samples."""
    generator, meta = load_generator(checkpoint, device="cpu")
    classes = int(meta["num_classes"])
    labels = torch.arange(classes).repeat_interleave(per_class)
    val_labels = torch.arange(classes).repeat_interleave(max(per_class // 5, 10))
    train = (sample(generator, labels, seed=seed), labels)
    val = (sample(generator, val_labels, seed=seed + 1), val_labels)
    trained = train_classifier(ArchSpec(), train, val, classes, train_cfg, seed=seed)
    return accuracy(trained.model, *test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="{}", help="JSON object of GanConfig overrides.")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="Steps between scored checkpoints.")
    parser.add_argument("--per-class", type=int, default=300, help="Synthetic training images per class for CAS.")
    parser.add_argument("--classifier-seeds", type=int, default=1, help="Classifier seeds averaged per checkpoint.")
    parser.add_argument("--out", type=Path, default=None, help="Working folder (default: a temporary one).")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="gan_quality_"))
    ref = ingest(IngestConfig(), out)
    overrides = json.loads(args.set)
    cfg = GanConfig(**{"checkpoint_every": args.checkpoint_every, "keep_checkpoints": 10_000,
                       "device": "cpu", **overrides})
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"# GanConfig overrides: {json.dumps({k: v for k, v in cfg.model_dump(mode='json').items() if v != GanConfig().model_dump(mode='json')[k]})}")
    started = time.perf_counter()
    result = train_gan(ref, cfg, out)
    print(f"# trained {result.steps} steps in {result.seconds:.1f} s ({result.images_per_second:.0f} images/s)")

    test = load_tensors(ref, "test")
    train_cfg = TrainConfig(device="cpu")
    real = train_classifier(ArchSpec(), load_tensors(ref, "train"), load_tensors(ref, "val"), 10, train_cfg, seed=0)
    print(f"# reference: classifier trained on the real train split scores {accuracy(real.model, *test):.4f} on test")

    metrics = pq.read_table(result.metrics_path, columns=["step", "seconds"]).to_pydict()
    seconds = dict(zip(metrics["step"], metrics["seconds"]))
    print("| step | training seconds | CAS (real test accuracy) |")
    print("|---:|---:|---:|")
    for step, path in periodic_checkpoints(Path(result.checkpoint_path).parent):
        scores = [classification_accuracy_score(path, test, args.per_class, train_cfg, seed)
                  for seed in range(args.classifier_seeds)]
        print(f"| {step} | {seconds.get(step, float('nan')):.1f} | {sum(scores) / len(scores):.4f} |", flush=True)
    print(f"# total bench time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
