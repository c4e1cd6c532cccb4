"""Classification accuracy score (CAS) of the GAN against training time, on digits.

Trains the GAN with the default config (or overrides), keeping a checkpoint every
--checkpoint-every steps. For each checkpoint, samples --per-class images per class from the EMA
generator, trains the project's default classifier on those samples only (best checkpoint on a
separate synthetic validation set), and scores it on the real test split. The same classifier
trained on the real train split is printed as the reference.

    python bench/gan_quality.py                       # default config, one GAN seed
    python bench/gan_quality.py --gan-seeds 3         # three trainings (seeds 0, 1, 2)
    python bench/gan_quality.py --set '{"diffaugment": ["translation"]}'   # an ablation
    python bench/gan_quality.py --dataset data/bench/mnist100/dataset.parquet  # another dataset.parquet

Each row also shows the collapse monitor's val 1-NN CAS at that step (the score that picks
best.pt), and the last line the CAS of the checkpoint it picked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
from ganaug.store import dataset_ref


def within_class_spread(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Per-pixel standard deviation within each class, averaged (low = near-identical samples per class)."""
    return float(torch.stack([images[labels == c].flatten(1).std(dim=0).mean() for c in labels.unique()]).mean())


def classification_accuracy_score(checkpoint: Path, test: tuple[torch.Tensor, torch.Tensor], per_class: int,
                                  train_cfg: TrainConfig, seed: int, use_ema: bool = True) -> tuple[float, float]:
    """(accuracy on the real test split of a classifier trained only on the generator's samples,
    within-class spread of those samples)."""
    generator, meta = load_generator(checkpoint, use_ema=use_ema, device="cpu")
    classes = int(meta["num_classes"])
    labels = torch.arange(classes).repeat_interleave(per_class)
    val_labels = torch.arange(classes).repeat_interleave(max(per_class // 5, 10))
    train = (sample(generator, labels, seed=seed), labels)
    val = (sample(generator, val_labels, seed=seed + 1), val_labels)
    trained = train_classifier(ArchSpec(), train, val, classes, train_cfg, seed=seed)
    return accuracy(trained.model, *test), within_class_spread(*train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="{}", help="JSON object of GanConfig overrides.")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="Steps between scored checkpoints.")
    parser.add_argument("--per-class", type=int, default=300, help="Synthetic training images per class for CAS.")
    parser.add_argument("--gan-seeds", type=int, default=1, help="GAN trainings (seeds 0, 1, ...) to score.")
    parser.add_argument("--out", type=Path, default=None, help="Working folder (default: a temporary one).")
    parser.add_argument("--dataset", type=Path, default=None, help="A dataset.parquet (default: the built-in digits, ingested).")
    parser.add_argument("--classifier-steps", type=int, default=2000, help="Optimizer steps of every classifier.")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="gan_quality_"))
    ref = dataset_ref(args.dataset) if args.dataset else ingest(IngestConfig(), out)
    overrides = json.loads(args.set)
    base = GanConfig(**{"checkpoint_every": args.checkpoint_every, "keep_checkpoints": 10_000, "device": "cpu", **overrides})
    defaults = GanConfig().model_dump(mode="json")
    changed = {k: v for k, v in base.model_dump(mode="json").items() if v != defaults[k]}
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"# GanConfig changes from the defaults: {json.dumps(changed)}")
    started = time.perf_counter()
    test = load_tensors(ref, "test")
    train_cfg = TrainConfig(steps=args.classifier_steps, device="cpu")
    real_train = load_tensors(ref, "train")
    real = train_classifier(ArchSpec(), real_train, load_tensors(ref, "val"), 10, train_cfg, seed=0)
    print(f"# reference: the same classifier trained on the real train split scores {accuracy(real.model, *test):.4f} "
          f"on test; within-class spread of the real train split {within_class_spread(*real_train):.3f}")
    print("| GAN seed | step | training seconds | images/s | within-class spread | val 1-NN CAS | CAS (real test accuracy) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    finals, chosen = [], []
    for seed in range(args.gan_seeds):
        result = train_gan(ref, base.model_copy(update={"seed": seed}), out / f"seed{seed}")
        metrics = pq.read_table(result.metrics_path, columns=["step", "seconds", "val_nn_cas"]).to_pydict()
        seconds = dict(zip(metrics["step"], metrics["seconds"]))
        nn_cas = dict(zip(metrics["step"], metrics["val_nn_cas"]))
        scores = {}
        for step, path in periodic_checkpoints(Path(result.checkpoint_path).parent):
            score, spread = classification_accuracy_score(path, test, args.per_class, train_cfg, seed=0,
                                                          use_ema=base.ema_decay is not None)
            scores[step] = score
            rate = step * base.batch_size * base.d_steps_per_g / seconds[step]
            print(f"| {seed} | {step} | {seconds[step]:.1f} | {rate:.0f} | {spread:.3f} | {nn_cas.get(step, float('nan')):.3f} "
                  f"| {score:.4f} |", flush=True)
        finals.append(score)
        best, _ = classification_accuracy_score(Path(result.best_checkpoint_path), test, args.per_class, train_cfg, seed=0,
                                                use_ema=base.ema_decay is not None)
        chosen.append(best)
        print(f"# seed {seed}: best.pt is step {result.best_step} (val 1-NN CAS {result.best_score}); its CAS {best:.4f}")
    print(f"final CAS over {len(finals)} GAN seed(s): mean {statistics.mean(finals):.4f}, min {min(finals):.4f}; "
          f"best.pt CAS: mean {statistics.mean(chosen):.4f}, min {min(chosen):.4f}")
    print(f"# total bench time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
