"""A few labels per class plus an unlabelled pool: does a GAN that learns from the pool beat self-training?

Each regime ingests an MNIST-format dataset with ganaug's `labels_per_class` (K labels per class
kept, the rest of the training file moved into the unlabelled pool with its labels dropped), the
official 10k test set kept apart, and runs the evaluation protocols over several seeds:
`real` and `classic` (labelled images only), `self_training` (the no-GAN baseline that uses the
pool) and `gan_classifier` (the semi-supervised GAN's discriminator, trained on labelled, pool and
generated images) and `augmented` (the labelled images plus samples of the class-conditional GAN
trained on labelled and pseudo-labelled pool images, its teacher ganaug's self-training; trained
and sampled once per regime); imbalanced regimes add `oversampled`. Every protocol of a seed is paired with
the same seed of the others; the table gives paired differences with 95% t intervals. Where the
pool's true labels are known (they are: the bench reads them from the IDX labels file, ganaug never
does), the share of pool images each method labels correctly is printed too.

    python bench/semi_supervised.py --regimes mnist-10 --seeds 5
    python bench/semi_supervised.py --regimes mnist-10,fashion-10,mnist-imb --seeds 5 --gan-steps 6000
    python bench/semi_supervised.py --report docs/benchmarks/semi_supervised/results.jsonl   # tables only

MNIST comes from ../shared/datasets/mnist (beside the project); Fashion-MNIST from Debian's
`dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist). Rows are appended to
--out/results.jsonl as each run finishes; a rerun skips the runs already there.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug.classifier import TrainConfig, predict_logits
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.data.sources import read_idx_file
from ganaug.data.tensors import images_to_tensor
from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate.config import SelfTrainingConfig
from ganaug.evaluate.data import ProtocolData, load_protocol_data
from ganaug.evaluate.pool import PoolFit
from ganaug.evaluate.protocols import RunSpec, build_run_specs, compose_training_set, real_subset, score
from ganaug.evaluate.stats import paired_interval, format_interval
from ganaug.evaluate.strategies import train_run
from ganaug.gan import GanConfig, train_gan
from ganaug.gan.semi import SemiSupervisedConfig
from ganaug.generate import GenerateConfig, generate
from ganaug.runner import pool_pseudo_labels
from ganaug.store import POOL_SPLIT, SyntheticRef, dataset_ref, read_dataset

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"mnist": ROOT / "shared" / "datasets" / "mnist", "fashion": Path("/usr/share/datasets/fashion-mnist")}
RARE = {"2": 10, "5": 10, "8": 10}  # imbalanced regime: three classes keep 10 labels, the others 100
BASELINES = ("real", "classic", "oversampled", "self_training")


def regime_config(name: str, val_fraction: float) -> tuple[IngestConfig, bool]:
    """(ingest config, imbalanced?) of mnist-10, fashion-10, mnist-imb or fashion-imb."""
    data, _, size = name.partition("-")
    folder = FOLDERS[data]
    files = {stem: _find(folder, stem) for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    imbalanced = size == "imb"
    cfg = IngestConfig(source="idx", path=files["train-images-idx3-ubyte"], labels_path=files["train-labels-idx1-ubyte"],
                       test_path=files["t10k-images-idx3-ubyte"], test_labels_path=files["t10k-labels-idx1-ubyte"],
                       labels_per_class=100 if imbalanced else int(size), imbalance=RARE if imbalanced else None,
                       val_fraction=val_fraction, seed=0)
    return cfg, imbalanced


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"{folder}/{stem}[.gz] not found (see the module docstring for where the data comes from)")


def pool_truth(regime_dir: Path, images_file: Path, labels_file: Path) -> np.ndarray:
    """True labels of the dataset's pool rows, in row order, found in the IDX files by the images' pixels
    (ganaug names a moved image by a hash of its pixels and keeps nothing of its label)."""
    loaded = read_dataset(regime_dir / "dataset.parquet")
    pool = loaded.images[loaded.select(split=POOL_SPLIT)]
    source, truth = read_idx_file(images_file), read_idx_file(labels_file).astype(np.int64)
    by_pixels = {image.tobytes(): label for image, label in zip(source, truth)}
    return np.array([by_pixels.get(image.tobytes(), -1) for image in pool], dtype=np.int64)


def run_one(spec: RunSpec, data: ProtocolData, cfg: EvaluateConfig, truth: np.ndarray) -> dict[str, Any]:
    """One protocol run through the library's own `train_run`, scored like `run_protocol`, plus pool-label accuracy."""
    started = time.perf_counter()
    training = compose_training_set(spec, data, cfg)
    outcome = train_run(spec, training, data, cfg, len(real_subset(data, spec.train_fraction, spec.seed)))
    fit = outcome if isinstance(outcome, PoolFit) else PoolFit(outcome[0])
    logits = predict_logits(fit.trained.model, images_to_tensor(data.test_images))
    row = {"protocol": spec.protocol, "seed": spec.seed, **score(logits.argmax(1).numpy(), data.test_labels, data.num_classes),
           "val_accuracy": fit.trained.best_val_accuracy, "n_pseudo": fit.pseudo_labels, "details": fit.details,
           "seconds": round(time.perf_counter() - started, 1)}
    if fit.pool_labels is not None:
        labelled = fit.pool_labels >= 0
        row["pool_labelled"] = int(labelled.sum())
        row["pool_label_accuracy"] = float((fit.pool_labels[labelled] == truth[labelled]).mean()) if labelled.any() else None
    return row


def pool_gan(regime_dir: Path, args: argparse.Namespace) -> SyntheticRef:
    """The conditional GAN trained on labelled plus pseudo-labelled pool images (GanConfig.pool), sampled once per regime."""
    synthetic = regime_dir / "synthetic.parquet"
    if not synthetic.is_file():
        dataset = dataset_ref(regime_dir / "dataset.parquet")
        cfg = GanConfig(steps=args.cgan_steps, pool="pseudo_label")
        started = time.perf_counter()
        pseudo = pool_pseudo_labels(dataset, cfg)
        print(f"teacher labelled {len(pseudo.labels)} pool images in {time.perf_counter() - started:.0f} s", flush=True)
        gan = train_gan(dataset, cfg, regime_dir, pseudo_labelled=pseudo)
        generate(gan, dataset, GenerateConfig(mode="per_class", per_class=args.synthetic_per_class), regime_dir)
        (regime_dir / "pool_gan.json").write_text(json.dumps({"pseudo_labels": len(pseudo.labels), **pseudo.details,
                                                              "gan_seconds": gan.seconds}, default=float))
    return SyntheticRef(**dataset_ref(synthetic).model_dump(exclude={"kind"}))


def run_regime(name: str, args: argparse.Namespace, out: Path) -> None:
    """Ingest the regime (once) and run every (protocol, seed) not yet in results.jsonl."""
    ingest_cfg, imbalanced = regime_config(name, args.val_fraction)
    regime_dir = out / name
    if not (regime_dir / "dataset.parquet").is_file():
        ingest(ingest_cfg, regime_dir)
    protocols = ["real", "classic", *(["oversampled"] if imbalanced else []), "self_training", "gan_classifier", "gan_self_training",
                 "semi_augmented", "augmented"]
    protocols = [p for p in protocols if p in args.protocols]
    cfg = EvaluateConfig(
        protocols=protocols, seeds=args.seeds, base_seed=args.first_seed, generative_metrics=False, selection_metric="macro_f1" if imbalanced else "accuracy",
        train=TrainConfig(steps=args.steps), semi_supervised=SemiSupervisedConfig(steps=args.gan_steps),
        self_training=SelfTrainingConfig(student_steps=args.student_steps, rounds=args.rounds),
        ratios=[args.synthetic_per_class / (100 if imbalanced else int(name.rsplit("-", 1)[1]))],
    )
    synthetic = pool_gan(regime_dir, args) if "augmented" in protocols else None
    data = load_protocol_data(dataset_ref(regime_dir / "dataset.parquet"), synthetic)
    truth = pool_truth(regime_dir, ingest_cfg.path, ingest_cfg.labels_path)
    results = out / "results.jsonl"
    done = {(r["regime"], r["protocol"], r["seed"]) for r in read_rows([results])}
    for spec in build_run_specs(cfg):
        if (name, spec.protocol, spec.seed) in done:
            continue
        row = {"regime": name, **run_one(spec, data, cfg, truth), "config": {
            "gan_steps": args.gan_steps, "steps": args.steps, "student_steps": args.student_steps, "rounds": args.rounds}}
        print(f"{name} {spec.protocol} seed {spec.seed}: test accuracy {row['accuracy']:.4f} "
              f"(val {row['val_accuracy']:.4f}, {row['seconds']:.0f} s)", flush=True)
        with results.open("a") as handle:
            handle.write(json.dumps(row, default=float) + "\n")


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        if path.is_file():
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def report(rows: list[dict[str, Any]], rare: list[int]) -> str:
    """A markdown table per regime: accuracy, paired differences vs each baseline, pool-label accuracy."""
    lines = []
    by_regime: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        by_regime[row["regime"]][row["protocol"]][int(row["seed"])] = row
    for regime, protocols in by_regime.items():
        baselines = [b for b in BASELINES if b in protocols]
        lines += [f"### {regime}", "", "| protocol | seeds | test accuracy | macro-F1 | rare-class recall | pool labels right | "
                  + " | ".join(f"vs {b}" for b in baselines) + " |", "|---" * (6 + len(baselines)) + "|"]
        for protocol, seeds in protocols.items():
            accuracy = np.array([r["accuracy"] for r in seeds.values()])
            f1 = np.mean([r["macro_f1"] for r in seeds.values()])
            recall = (np.mean([np.mean([r["per_class_recall"][c] for c in rare]) for r in seeds.values()])
                      if rare and regime.endswith("-imb") else None)
            pool = [r.get("pool_label_accuracy") for r in seeds.values() if r.get("pool_label_accuracy") is not None]
            cells = []
            for baseline in baselines:
                pairs = [r["accuracy"] - protocols[baseline][s]["accuracy"] for s, r in seeds.items() if s in protocols[baseline]]
                cells.append("" if baseline == protocol or not pairs else format_interval(paired_interval(pairs)))
            lines.append(f"| {protocol} | {len(seeds)} | {accuracy.mean():.4f} ± {accuracy.std(ddof=1) if len(accuracy) > 1 else 0:.4f} "
                         f"| {f1:.4f} | {'' if recall is None else f'{recall:.3f}'} | {f'{np.mean(pool):.3f}' if pool else ''} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regimes", default="mnist-10", help="comma-separated: mnist-10, fashion-10, mnist-imb, fashion-imb")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--protocols", default="real,classic,oversampled,self_training,gan_classifier,gan_self_training,semi_augmented,augmented")
    parser.add_argument("--gan-steps", type=int, default=SemiSupervisedConfig().steps, help="semi-supervised GAN steps")
    parser.add_argument("--steps", type=int, default=None, help="classifier steps of real/classic/teacher (None: ganaug's rule)")
    parser.add_argument("--student-steps", type=int, default=3000, help="steps of each self-training student")
    parser.add_argument("--rounds", type=int, default=SelfTrainingConfig().rounds, help="most self-training rounds")
    parser.add_argument("--cgan-steps", type=int, default=3000, help="steps of the conditional GAN on pseudo-labelled pool images")
    parser.add_argument("--synthetic-per-class", type=int, default=1000,
                        help="its samples per class (augmented: all of them); semi_augmented adds as many per class")
    parser.add_argument("--val-fraction", type=float, default=0.02, help="share of the training file kept as labelled val")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", type=Path, default=ROOT / "main" / "docs" / "benchmarks" / "semi_supervised")
    parser.add_argument("--report", type=Path, nargs="*", help="print the tables of these results files and run nothing")
    args = parser.parse_args()
    args.protocols = args.protocols.split(",")
    if args.report:
        print(report(read_rows(args.report), [2, 5, 8]))
        return
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.regimes.split(","):
        run_regime(name, args, args.out)
    print(report(read_rows([args.out / "results.jsonl"]), [2, 5, 8]))


if __name__ == "__main__":
    main()
