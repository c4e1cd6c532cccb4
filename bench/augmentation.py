"""Does GAN augmentation help a downstream classifier? Ingest -> GAN -> generate -> evaluate per regime.

Each regime ingests the dataset with `train_fraction` (so the GAN, like the classifiers, only
ever sees the kept real training images), trains the GAN, generates synthetic images and runs
the real / classic / augmented / synthetic protocols with several seeds, scored on the real test
split. Prints one protocol table (paired 95% confidence intervals) per regime.

    python bench/augmentation.py                       # digits at 10% and 100% of the train split
    python bench/augmentation.py --regimes mnist-1     # MNIST (IDX files in ../shared/datasets/mnist) at 1%
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ganaug.classifier import TrainConfig
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.evaluate import EvaluateConfig, evaluate
from ganaug.gan import GanConfig, train_gan
from ganaug.generate import GenerateConfig, generate
from ganaug.report.markdown import summary_markdown

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
REGIMES = {
    "digits-10": dict(source="digits", train_fraction=0.1),
    "digits-100": dict(source="digits", train_fraction=None),
    "mnist-1": dict(source="idx", path=MNIST / "train-images-idx3-ubyte.gz",
                    labels_path=MNIST / "train-labels-idx1-ubyte.gz", train_fraction=0.01,
                    val_fraction=0.02, test_fraction=0.1),  # 1,200 val / 6,000 test images keep CPU scoring cheap
}


def run_regime(name: str, args: argparse.Namespace, root: Path) -> dict:
    """One regime end to end; returns timings, generative metrics and the summary rows."""
    out = root / name
    timings = {}
    started = time.perf_counter()
    dataset = ingest(IngestConfig(seed=args.seed, **REGIMES[name]), out)
    timings["ingest"] = time.perf_counter() - started
    steps = args.mnist_gan_steps if name.startswith("mnist") else args.gan_steps
    gan_cfg = GanConfig(steps=steps, g_width=args.g_width, d_width=args.d_width, device="cpu", seed=args.seed,
                        checkpoint_every=None, grid_every=None)
    started = time.perf_counter()
    gan = train_gan(dataset, gan_cfg, out)
    timings["gan"] = time.perf_counter() - started
    started = time.perf_counter()
    synthetic = generate(gan, dataset, GenerateConfig(mode="ratio", ratio=max(args.ratios), seed=args.seed, device="cpu"), out)
    timings["generate"] = time.perf_counter() - started
    cfg = EvaluateConfig(ratios=args.ratios, seeds=args.seeds, base_seed=args.seed,
                         train=TrainConfig(steps=args.steps, device="cpu"))
    started = time.perf_counter()
    result = evaluate(dataset, synthetic, cfg, out)
    timings["evaluate"] = time.perf_counter() - started
    print(f"\n## {name}: {dataset.rows} images; GAN {steps} steps (g_width {args.g_width}, d_width {args.d_width})")
    print(summary_markdown(result.summary))
    metrics = result.generative_metrics or {}
    print("generative metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return {"regime": name, "gan_steps": steps, "timings": timings, "generative_metrics": metrics,
            "summary": [row.model_dump(mode="json") for row in result.summary], "report": result.report_path}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regimes", default="digits-10,digits-100", help=f"comma-separated, of {sorted(REGIMES)}")
    parser.add_argument("--out", type=Path, default=Path("data/runs/bench-augmentation"), help="work folder (git-ignored)")
    parser.add_argument("--gan-steps", type=int, default=1500, help="GAN generator steps (digits)")
    parser.add_argument("--mnist-gan-steps", type=int, default=600, help="GAN generator steps (MNIST)")
    parser.add_argument("--g-width", type=int, default=64)
    parser.add_argument("--d-width", type=int, default=32)
    parser.add_argument("--ratios", type=lambda s: [float(x) for x in s.split(",")], default=[0.5, 1.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="Classifier steps (default: two per real training image, 1,000 to 20,000).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in args.regimes.split(","):
        if name not in REGIMES:
            parser.error(f"unknown regime {name!r}; choose from {sorted(REGIMES)}")
        if name.startswith("mnist") and not MNIST.is_dir():
            print(f"\n## {name}: skipped, {MNIST} not found")
            continue
        results.append(run_regime(name, args, args.out))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
