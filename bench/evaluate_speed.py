"""How fast the evaluate stage trains its classifiers: side by side vs one after another.

4 protocols x 3 seeds train the same architecture 12 times. ganaug runs them side by side, one
torch thread each (`EvaluateConfig.workers`, one per core), in bfloat16 autocast where the CPU has
native bf16 (AVX-512 BF16 / AMX) and channels-last. The baseline trains the same 12 runs one after
another in float32, each spread over all cores (what the stage did before). Both are timed in this
one run on the same images and step budget; the ratio is printed. Then the whole stage (all four
protocols, converged default budget, generative metrics included) is timed once.

    python bench/evaluate_speed.py                      # MNIST 100/class (../shared/datasets/mnist), else digits
    python bench/evaluate_speed.py --ratio-steps 300 --skip-stage

The synthetic table here is a timing stand-in (real training images, randomly shifted by up to
2 pixels): it costs what GAN images cost to train on, and no accuracy from this script is a claim
about GAN data.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganaug.classifier import TrainConfig
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate.data import ProtocolData, load_protocol_data
from ganaug.evaluate.metrics import generative_metrics
from ganaug.evaluate.protocols import build_run_specs, run_protocol
from ganaug.evaluate.stage import run_all

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def load_data(root: Path, digits: bool = False) -> tuple[str, ProtocolData]:
    """MNIST 100/class when ../shared/datasets/mnist holds it (and not `digits`), else digits; with a stand-in synthetic table."""
    if not digits and (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        cfg = IngestConfig(source="idx", path=MNIST / "train-images-idx3-ubyte.gz", labels_path=MNIST / "train-labels-idx1-ubyte.gz",
                           test_path=MNIST / "t10k-images-idx3-ubyte.gz", test_labels_path=MNIST / "t10k-labels-idx1-ubyte.gz",
                           train_per_class=100)
        name = "MNIST 100/class, official 10k test set"
    else:
        cfg, name = IngestConfig(), "digits"
    data = load_protocol_data(ingest(cfg, root), None)
    rng = np.random.default_rng(0)
    shifted = np.stack([np.roll(image, tuple(rng.integers(-2, 3, size=2)), axis=(1, 2)) for image in data.train_images])
    return name, dataclasses.replace(data, synthetic_images=shifted, synthetic_labels=data.train_labels.copy())


def one_after_another(specs, data: ProtocolData, cfg: EvaluateConfig) -> float:
    """The baseline: float32, every core on one run at a time."""
    baseline = cfg.model_copy(update={"train": cfg.train.model_copy(update={"precision": "float32"})})
    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    for spec in specs:
        run_protocol(spec, data, baseline)
    return time.perf_counter() - started


def side_by_side(specs, data: ProtocolData, cfg: EvaluateConfig) -> float:
    started = time.perf_counter()
    run_all(specs, data, cfg)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio-steps", type=int, default=400, help="Steps per classifier in the side-by-side comparison.")
    parser.add_argument("--skip-stage", action="store_true", help="Skip timing the whole converged stage.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        name, data = load_data(Path(tmp))
        cfg = EvaluateConfig(train=TrainConfig(steps=args.ratio_steps), generative_metrics=False)
        specs = build_run_specs(cfg)
        print(f"{name}: {len(specs)} runs (4 protocols x 3 seeds), {args.ratio_steps} steps each, "
              f"{os.cpu_count()} CPU cores, torch {torch.__version__}", flush=True)
        ours = side_by_side(specs, data, cfg)
        baseline = one_after_another(specs, data, cfg)
        print(f"one after another (float32, {os.cpu_count()} threads each): {baseline:.1f} s", flush=True)
        print(f"ganaug side by side ({cfg.resolved_workers()} at once, 1 thread each, precision auto): {ours:.1f} s")
        print(f"speed-up: {baseline / ours:.2f}x", flush=True)
        if args.skip_stage:
            return
        stage_cfg = EvaluateConfig()
        started = time.perf_counter()
        rows = run_all(build_run_specs(stage_cfg), data, stage_cfg)
        trained = time.perf_counter() - started
        metrics = generative_metrics(data, stage_cfg)
        total = time.perf_counter() - started
        steps = sorted({row["steps_run"] for row in rows})
        print(f"whole stage, default (converged) budget: {len(rows)} runs x {steps} steps in {trained:.0f} s, "
              f"+ generative metrics (feature network {metrics['feature_classifier_steps']} steps) = {total:.0f} s "
              f"({total / 60:.1f} min)")
        for protocol in ("real", "classic"):
            accuracies = [row["accuracy"] for row in rows if row["protocol"] == protocol]
            print(f"  {protocol}: test accuracy {np.mean(accuracies):.4f} over {len(accuracies)} seeds")


if __name__ == "__main__":
    main()
