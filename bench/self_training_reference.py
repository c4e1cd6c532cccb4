"""ganaug's `self_training` protocol next to a plain, textbook self-training loop on the same dataset and seeds.

The reference is written here with plain PyTorch and nothing from ganaug but `read_dataset` (to load
the arrays of the run folder's dataset.parquet; the pool is its split `unlabelled`): the small CNN of
bench/reference.py (conv32-BN-ReLU-pool, conv64-BN-ReLU-pool, dropout 0.25, fc128, fc K), AdamW 2e-3
with torch's OneCycleLR, batches of 64, random affine augmentation (+-10 degrees, +-10% scale,
+-10% shift) on every batch. A teacher trains on the labelled train images for --teacher-steps; each
round, the latest network labels the pool (argmax of softmax, kept where its probability reaches
--reference-threshold) and a fresh student trains on labelled + pseudo-labelled images for --steps.
No model selection: its test accuracy is printed after every round (round 0 = the teacher).

ganaug runs `real`, `classic` and `self_training` through `ganaug.evaluate` on the same dataset and
seeds (students for --steps, thresholds --thresholds and rounds --rounds, both chosen on val). The
rule (issue 25): ganaug's self_training within half a point of the reference's last round.

    python bench/self_training_reference.py --run-dir data/runs/mnist-pool --seeds 3
    python bench/self_training_reference.py --run-dir data/runs/digits-pool --seeds 3 --steps 1000 --teacher-steps 500

A run folder comes from `ganaug ingest` with a pool (e.g. --labels-per-class 10). Per seed a JSON
line is appended to --out; a markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganaug.classifier import TrainConfig
from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate.config import SelfTrainingConfig
from ganaug.evaluate.data import load_protocol_data
from ganaug.evaluate.protocols import build_run_specs
from ganaug.evaluate.stage import run_all
from ganaug.store import dataset_ref, read_dataset
from reference import ReferenceCNN, random_affine  # bench/reference.py: the plain CNN and affine transform

Arrays = tuple[torch.Tensor, torch.Tensor]


def train_network(train: Arrays, classes: int, steps: int) -> nn.Module:
    """A fresh reference CNN trained for `steps` batches of 64 (reshuffled each epoch), affine on every batch."""
    x, y = train
    model = ReferenceCNN(x.shape[1], x.shape[2], classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    model.train()
    step = 0
    while step < steps:
        for batch in torch.randperm(len(x)).split(64):
            if step == steps or len(batch) < 2:
                break
            loss = F.cross_entropy(model(random_affine(x[batch])), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
    return model.eval()


@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.softmax(model(x[i:i + 1000]), 1) for i in range(0, len(x), 1000)])


def reference_rounds(labelled: Arrays, pool: torch.Tensor, test: Arrays, args: argparse.Namespace, seed: int) -> dict:
    """The plain loop: teacher, then `rounds` students on labelled + confident pseudo-labels; test accuracy per round."""
    torch.manual_seed(seed)
    classes = int(labelled[1].max()) + 1
    model = train_network(labelled, classes, args.teacher_steps)
    accuracies, pseudo = [], []
    for round_number in range(args.rounds + 1):
        accuracies.append(float((probabilities(model, test[0]).argmax(1) == test[1]).float().mean()))
        print(f"  reference seed {seed} round {round_number}: test {accuracies[-1]:.4f}"
              + (f" ({pseudo[-1]} pseudo-labels)" if pseudo else ""), flush=True)
        if round_number == args.rounds:
            break
        confidence, predicted = probabilities(model, pool).max(1)
        keep = confidence >= args.reference_threshold
        pseudo.append(int(keep.sum()))
        student_set = (torch.cat([labelled[0], pool[keep]]), torch.cat([labelled[1], predicted[keep]]))
        model = train_network(student_set, classes, args.steps)
    return {"reference_by_round": accuracies, "reference_pseudo_by_round": [0, *pseudo]}


def load_arrays(path: Path, pool_max_samples: int | None) -> tuple[Arrays, torch.Tensor, Arrays]:
    """Labelled train images, the pool and the test split as float tensors in [0, 1]."""
    loaded = read_dataset(path)
    def pick(split: str) -> Arrays:
        mask = (loaded.splits == split) & (loaded.sources == "real")
        return torch.from_numpy(loaded.images[mask]).float() / 255.0, torch.from_numpy(loaded.labels[mask]).long()
    pool = pick("unlabelled")[0]
    if len(pool) == 0:
        raise SystemExit(f"{path} has no pool (rows with split 'unlabelled'); ingest with one")
    if pool_max_samples is not None and len(pool) > pool_max_samples:
        pool = pool[torch.from_numpy(np.random.default_rng(0).permutation(len(pool))[:pool_max_samples])]
    return pick("train"), pool, pick("test")


def ganaug_rows(path: Path, args: argparse.Namespace) -> list[dict]:
    """ganaug's real, classic and self_training rows on the dataset (default training, students for --steps)."""
    settings = SelfTrainingConfig(rounds=args.rounds, thresholds=args.thresholds, student_steps=args.steps,
                                  class_balance=not args.no_class_balance, pool_max_samples=args.pool_max_samples)
    cfg = EvaluateConfig(protocols=["real", "classic", "self_training"], seeds=args.seeds, generative_metrics=False,
                         train=TrainConfig(device="cpu"), self_training=settings, workers=args.workers)
    data = load_protocol_data(dataset_ref(path), None)
    return run_all(build_run_specs(cfg), data, cfg)


def table(results: list[dict]) -> str:
    mean = statistics.fmean
    lines = ["| seed | reference by round (test) | reference last | ganaug real | ganaug classic | ganaug self_training "
             "| diff to last | ganaug threshold; round kept; pseudo | val by round |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d = r["details"]
        lines.append(f"| {r['seed']} | {', '.join(f'{a:.4f}' for a in r['reference_by_round'])} | "
                     f"{r['reference_by_round'][-1]:.4f} | {r['real']:.4f} | {r['classic']:.4f} | {r['self_training']:.4f} | "
                     f"{r['self_training'] - r['reference_by_round'][-1]:+.4f} | {d['threshold']}; {d['round_kept']}; "
                     f"{r['n_pseudo']} | {', '.join(f'{v:.4f}' for v in d['val_by_round'])} |")
    last = mean(r["reference_by_round"][-1] for r in results)
    best = mean(max(r["reference_by_round"]) for r in results)
    ours = mean(r["self_training"] for r in results)
    lines.append(f"\nmeans: reference last round {last:.4f}, reference best round (chosen on test: an upper bound) "
                 f"{best:.4f}, ganaug self_training {ours:.4f} ({ours - last:+.4f} to the last round), "
                 f"real {mean(r['real'] for r in results):.4f}, classic {mean(r['classic'] for r in results):.4f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="A folder with dataset.parquet (with a pool).")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds 0..N-1 (the reference and ganaug use the same).")
    parser.add_argument("--steps", type=int, default=3000, help="Steps of each student (both loops).")
    parser.add_argument("--teacher-steps", type=int, default=1000,
                        help="Steps of the reference's teacher (ganaug's teacher: its default rule, 1,000 for <= 500 images).")
    parser.add_argument("--rounds", type=int, default=3, help="Student rounds (the reference runs all; ganaug at most).")
    parser.add_argument("--reference-threshold", type=float, default=0.95, help="Confidence threshold of the reference.")
    parser.add_argument("--thresholds", type=lambda s: [float(v) for v in s.split(",")], default=[0.9, 0.95, 0.99],
                        help="ganaug's candidate thresholds (chosen on val), comma-separated.")
    parser.add_argument("--no-class-balance", action="store_true", help="ganaug without its per-class cap of pseudo-labels.")
    parser.add_argument("--pool-max-samples", type=int, default=None, help="Use at most this many pool images (both).")
    parser.add_argument("--workers", type=int, default=1, help="ganaug runs trained at once (one torch thread each).")
    parser.add_argument("--out", type=Path, default=Path("bench/results/self_training_reference.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = args.run_dir / "dataset.parquet"
    labelled, pool, test = load_arrays(path, args.pool_max_samples)
    print(f"{path}: {len(labelled[1])} labelled, {len(pool)} pool, {len(test[1])} test images", flush=True)
    started = time.perf_counter()
    rows = ganaug_rows(path, args)
    ganaug_seconds = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        result = {"dataset": str(path), "seed": seed, **reference_rounds(labelled, pool, test, args, seed),
                  "reference_seconds": round(time.perf_counter() - started, 1), "ganaug_seconds": round(ganaug_seconds, 1),
                  "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
        for row in (r for r in rows if r["seed"] == seed):
            result[row["protocol"]] = row["accuracy"]
            if row["protocol"] == "self_training":
                result["n_pseudo"], result["details"] = row["n_pseudo"], json.loads(row["pool_details"])
        results.append(result)
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
