"""Does GAN data help a downstream classifier, and which use of it? Ingest -> GAN -> generate -> evaluate per regime.

Each regime ingests the dataset (MNIST and Fashion-MNIST with their official 10k test sets) keeping
a few labelled images per class, trains the GAN on them (default GanConfig), generates synthetic
images and runs the baselines (real, classic affine augmentation, and for imbalanced regimes the
oversampled real images with augmentation) next to every way of using the synthetic images, over
several seeds. The best use is chosen on val (accuracy; macro-F1 in imbalanced regimes) and its
paired test differences are printed, or the plain verdict that nothing helped.

    python bench/augmentation.py --regimes mnist-imb --seeds 5
    python bench/augmentation.py --regimes digits-10,digits-100 --seeds 3          # quick, built-in data

MNIST comes from ../shared/datasets/mnist (beside the project); Fashion-MNIST from Debian's
`dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist); --mnist/--fashion name other
folders. Results are appended to --out/results.jsonl as each regime finishes.

The GAN can be trained on another machine (e.g. a GPU): `--until generate` stops after writing the
regime's synthetic.parquet; copy the regime folder back and `--reuse` evaluates that
synthetic.parquet (ingest runs again here and must give the same dataset: its hash is checked).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from ganaug.classifier import TrainConfig
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.evaluate import EvaluateConfig, evaluate
from ganaug.report import write_report
from ganaug.gan import GanConfig, train_gan
from ganaug.generate import GenerateConfig, generate
from ganaug.report.markdown import summary_markdown
from ganaug.store import SyntheticRef, dataset_ref, read_dataset_meta

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"mnist": ROOT / "shared" / "datasets" / "mnist", "fashion": Path("/usr/share/datasets/fashion-mnist")}
RARE = {"2": 10, "5": 10, "8": 10}  # imbalanced regimes: three classes keep 10 images, the others 100
BALANCED_USES = ["real", "classic", "augmented", "weighted", "augmented_classic", "pretrain", "synthetic"]
IMBALANCED_USES = [*BALANCED_USES, "balanced", "balanced_classic", "oversampled", "balanced_mixed"]


def regime_config(name: str, folders: dict[str, Path] = FOLDERS) -> tuple[IngestConfig, bool]:
    """(ingest config, imbalanced?) of a regime name such as mnist-100, fashion-imb or digits-10."""
    data, _, size = name.partition("-")
    if data == "digits":
        return IngestConfig(train_fraction=None if size == "100" else int(size) / 100), False
    folder = folders[data]
    files = {"path": folder / "train-images-idx3-ubyte.gz", "labels_path": folder / "train-labels-idx1-ubyte.gz",
             "test_path": folder / "t10k-images-idx3-ubyte.gz", "test_labels_path": folder / "t10k-labels-idx1-ubyte.gz"}
    if size == "imb":
        return IngestConfig(source="idx", train_per_class=100, imbalance=RARE, **files), True
    return IngestConfig(source="idx", train_per_class=int(size), **files), False


def synthetic_images(name: str, out: Path, dataset: Any, imbalanced: bool, most: int,
                     args: argparse.Namespace) -> tuple[SyntheticRef, dict[str, Any], dict[str, float]]:
    """Train the GAN and generate (or, with --reuse, read the regime's synthetic.parquet made earlier)."""
    path = out / "synthetic.parquet"
    if args.reuse and path.is_file():
        made_from = read_dataset_meta(path).extra.get("dataset_hash")
        if made_from not in (None, dataset.content_hash):
            raise SystemExit(f"{path}: made from dataset {made_from}, but ingest gave {dataset.content_hash}")
        ref = dataset_ref(path)
        info = json.loads((out / "gan_info.json").read_text()) if (out / "gan_info.json").is_file() else {}
        return SyntheticRef(**ref.model_dump(exclude={"kind"})), {**info, "reused": str(path)}, {}
    timings: dict[str, float] = {}
    gan_cfg = GanConfig(device=args.device, seed=args.seed, **({"steps": args.gan_steps} if args.gan_steps else {}),
                        **json.loads(args.gan_set))
    started = time.perf_counter()
    gan = train_gan(dataset, gan_cfg, out)
    timings["gan"] = time.perf_counter() - started
    started = time.perf_counter()
    per_class = max(1, round(most * max(args.ratios)))  # enough for every ratio, and to fill rare classes up
    synthetic = generate(gan, dataset, GenerateConfig(mode="per_class", per_class=per_class, seed=args.seed,
                                                      device=args.device), out)
    timings["generate"] = time.perf_counter() - started
    info = {"gan_steps": gan.steps, "gan_device": str(gan.device), "gan_seconds": timings["gan"],
            "best_step": gan.best_step, "gan_set": json.loads(args.gan_set)}
    (out / "gan_info.json").write_text(json.dumps(info))
    return synthetic, info, timings


def run_regime(name: str, args: argparse.Namespace) -> dict:
    """One regime end to end; returns timings, generative metrics, the summary rows and the verdicts."""
    out = args.out / name
    ingest_cfg, imbalanced = regime_config(name, {"mnist": args.mnist, "fashion": args.fashion})
    started = time.perf_counter()
    dataset = ingest(ingest_cfg, out)
    timings = {"ingest": time.perf_counter() - started}
    most = 100 if imbalanced or not ingest_cfg.train_per_class else ingest_cfg.train_per_class
    synthetic, gan, gan_timings = synthetic_images(name, out, dataset, imbalanced, most, args)
    timings.update(gan_timings)
    if args.until == "generate":
        print(f"## {name}: synthetic images in {synthetic.path}; " + json.dumps(gan), flush=True)
        return {"regime": name, "gan": gan, "timings": timings}
    protocols = IMBALANCED_USES if imbalanced else BALANCED_USES
    if args.protocols:
        protocols = [p for p in protocols if p in args.protocols.split(",")]
    cfg = EvaluateConfig(protocols=protocols, ratios=args.ratios,
                         seeds=args.seeds, base_seed=args.seed, train=TrainConfig(steps=args.steps),
                         selection_metric="macro_f1" if imbalanced else "accuracy")
    started = time.perf_counter()
    result = evaluate(dataset, synthetic, cfg, out, report=write_report)
    timings["evaluate"] = time.perf_counter() - started
    print(f"\n## {name}: {dataset.rows} images; GAN {gan.get('gan_steps')} steps on {gan.get('gan_device')}; "
          f"selection on val {cfg.selection_metric}")
    print(summary_markdown(result.summary))
    for selection in result.selections:
        print(f"**{selection.statement}**")
    metrics = result.generative_metrics or {}
    print("generative metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), flush=True)
    return {"regime": name, "gan": gan, "timings": timings, "generative_metrics": metrics,
            "summary": [row.model_dump(mode="json") for row in result.summary],
            "verdicts": [s.model_dump(mode="json") for s in result.selections], "report": result.report_path}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regimes", default="mnist-imb,mnist-10,mnist-100,fashion-imb,fashion-10,fashion-100",
                        help="comma-separated: digits-10, digits-100, {mnist,fashion}-{10,100,imb}")
    parser.add_argument("--out", type=Path, default=Path("data/runs/bench-augmentation"), help="work folder (git-ignored)")
    parser.add_argument("--gan-steps", type=int, default=None, help="GAN generator steps (default: GanConfig's)")
    parser.add_argument("--ratios", type=lambda s: [float(x) for x in s.split(",")], default=[1.0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="Classifier steps (default: two per real training image, 1,000 to 20,000).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocols", default=None, help="comma-separated subset of the protocols to run (default: all that apply)")
    parser.add_argument("--device", default="auto", help="GAN and generation device: auto, cpu, cuda")
    parser.add_argument("--gan-set", default="{}", help='GanConfig overrides as JSON, e.g. \'{"amp": false}\'')
    parser.add_argument("--until", choices=["evaluate", "generate"], default="evaluate",
                        help="generate: stop after the synthetic images (train the GAN elsewhere, evaluate with --reuse)")
    parser.add_argument("--reuse", action="store_true", help="use the regime folder's synthetic.parquet instead of training a GAN")
    parser.add_argument("--mnist", type=Path, default=FOLDERS["mnist"], help="folder of the MNIST IDX files")
    parser.add_argument("--fashion", type=Path, default=FOLDERS["fashion"], help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.regimes.split(","):
        data = name.partition("-")[0]
        folder = {"mnist": args.mnist, "fashion": args.fashion}.get(data)
        if folder is not None and not folder.is_dir():
            print(f"\n## {name}: skipped, {folder} not found")
            continue
        result = run_regime(name, args)
        with (args.out / "results.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result, default=str) + "\n")
    print(f"\nresults: {args.out / 'results.jsonl'}")


if __name__ == "__main__":
    main()
