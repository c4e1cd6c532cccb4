"""GAN configurations side by side at 28x28: quality per configuration, several in parallel.

Each job trains `train_gan` with the default config plus overrides on a dataset.parquet (e.g.
MNIST ingested with `train_per_class: 100`) and scores the best checkpoint (chosen on val by the
collapse monitor) and the last one:

- CAS: the project's classifier (`ArchSpec()`) trained only on --per-class samples per class of the
  EMA generator (best checkpoint on a separate synthetic val set), accuracy on the real test split;
- GAN-test: accuracy on those samples of the same classifier trained on the real train split;
- precision / recall (Kynkäänniemi et al. 2019, k=5) of the samples against the real test split, in
  the penultimate-layer features of that real-trained classifier (as the evaluation report does);
- within-class spread of the samples as a share of the real train split's (pixels);
- for the last checkpoint also the spread of the live (non-averaged) generator in eval mode.

A job of kind "textbook" trains a conditional pytorch/examples-style DCGAN loop instead (same
networks and loss, equal learning rates, no EMA, no monitor) and scores it every --eval-every steps;
a job with "curve": true scores ganaug's periodic checkpoints the same way (time to quality).

Results are appended to <out>/sweep.jsonl as each job finishes, so a stopped sweep keeps its rows.

    python bench/gan_sweep.py --dataset data/bench/mnist100/dataset.parquet --jobs bench/gan_sweep_jobs.json \
        --device cuda --workers 12 --deadline 330
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ganaug.classifier import ArchSpec, TrainConfig, accuracy, embed, predict_logits, train_classifier
from ganaug.data.tensors import load_tensors
from ganaug.gan import GanConfig, load_generator, sample, train_gan
from ganaug.gan.checkpoint import periodic_checkpoints
from ganaug.gan.losses import LOSSES
from ganaug.gan.monitor import precision_recall_density_coverage, within_class_spread
from ganaug.gan.networks import Discriminator, Generator, ImageShape
from ganaug.store import read_dataset

NEAREST_K = 5
REAL_REFERENCE = 1000  # real test images in the precision/recall reference (seeded pick)
_REAL: dict[str, Any] = {}  # per process: dataset tensors and the real-trained classifier


def classifier_config(steps: int, train_size: int, device: str) -> TrainConfig:
    """The classifier's training budget as optimizer steps (or, for an epoch-based TrainConfig, the same images)."""
    if "steps" in TrainConfig.model_fields:
        return TrainConfig(steps=steps, device=device)
    batch = TrainConfig.model_fields["batch_size"].default
    return TrainConfig(epochs=max(1, math.ceil(steps * batch / train_size)), device=device)


def real_data(dataset: str, device: str, classifier_steps: int) -> dict[str, Any]:
    """Tensors of the dataset and a classifier trained on its real train split (cached per process)."""
    if dataset not in _REAL:
        loaded = read_dataset(dataset)
        train, val, test = (load_tensors(loaded, split, source="real") for split in ("train", "val", "test"))
        classes = loaded.meta.num_classes
        trained = train_classifier(ArchSpec(), train, val, classes, classifier_config(classifier_steps, len(train[0]), device), seed=0)
        pick = torch.randperm(len(test[0]), generator=torch.Generator().manual_seed(0))[:REAL_REFERENCE]
        _REAL[dataset] = {
            "train": train, "test": test, "classes": classes, "model": trained.model,
            "real_accuracy": accuracy(trained.model, *test),
            "real_spread": within_class_spread(*train, classes),
            "reference": embed(trained.model, test[0][pick]),
        }
    return _REAL[dataset]


def score_generator(generator: torch.nn.Module, real: dict[str, Any], per_class: int, classifier_steps: int,
                    device: str) -> dict[str, float]:
    """CAS, GAN-test, precision, recall and spread of a generator in eval mode."""
    classes = real["classes"]
    labels = torch.arange(classes).repeat_interleave(per_class)
    val_labels = torch.arange(classes).repeat_interleave(max(per_class // 5, 10))
    images = sample(generator, labels, seed=0)
    val_images = sample(generator, val_labels, seed=1)
    trained = train_classifier(ArchSpec(), (images, labels), (val_images, val_labels), classes,
                               classifier_config(classifier_steps, len(images), device), seed=0)
    per_ref = max(REAL_REFERENCE // classes, NEAREST_K + 1)
    subset = torch.cat([torch.nonzero(labels == c).flatten()[:per_ref] for c in range(classes)])
    fake_features = embed(real["model"], images[subset])
    spread = within_class_spread(images, labels, classes) / real["real_spread"]
    manifold = precision_recall_density_coverage(real["reference"], fake_features, NEAREST_K)
    return {
        "cas": accuracy(trained.model, *real["test"]),
        "gan_test": float((predict_logits(real["model"], images).argmax(1) == labels).float().mean()),
        "recall": manifold["recall"],
        "precision": manifold["precision"],
        "spread": float(spread.mean()),
        "min_class_spread": float(spread.min()),
    }


def textbook_generators(cfg: GanConfig, shape: ImageShape, images: torch.Tensor, labels: torch.Tensor,
                        steps: int, every: int, device: torch.device) -> list[tuple[int, float, dict[str, torch.Tensor]]]:
    """A conditional pytorch/examples-style DCGAN loop; (step, seconds, generator weights) every `every` steps."""
    torch.manual_seed(cfg.seed)
    g_width, d_width = cfg.widths(shape.height, shape.width)
    net_g = Generator(cfg.latent_dim, shape, g_width).to(device)
    net_d = Discriminator(shape, d_width, cfg.spectral_norm, cfg.conditioning, cfg.minibatch_std).to(device)
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=cfg.g_lr, betas=cfg.betas)
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=cfg.g_lr, betas=cfg.betas)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=cfg.batch_size,
                                         shuffle=True, drop_last=True)
    d_loss_fn, g_loss_fn = LOSSES[cfg.loss]
    step, saved, started = 0, [], time.perf_counter()
    while step < steps:
        for real, label in loader:
            real, label = real.to(device), label.to(device)
            net_d.zero_grad()
            fake = net_g(torch.randn(len(real), cfg.latent_dim, device=device), label)
            err_d = d_loss_fn(net_d(real, label)[0], net_d(fake.detach(), label)[0])
            err_d.backward()
            optimizer_d.step()
            net_g.zero_grad()
            err_g = g_loss_fn(net_d(fake, label)[0])
            err_g.backward()
            optimizer_g.step()
            err_d.item(), err_g.item()
            step += 1
            if step % every == 0 or step == steps:
                saved.append((step, time.perf_counter() - started,
                              {k: v.detach().cpu().clone() for k, v in net_g.state_dict().items()}))
            if step == steps:
                break
    return saved


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train and score one job; never raises (errors are reported in the row)."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    row: dict[str, Any] = {"name": job["name"], "seed": job["seed"], "steps": job["steps"], "set": job.get("set", {}),
                           "dataset": job["dataset_key"], "kind": job.get("kind", "ganaug")}
    try:
        device, out = job["device"], Path(job["out"])
        real = real_data(job["dataset"], device, job["classifier_steps"])
        row["real_test_accuracy"] = real["real_accuracy"]
        settings = {"device": device, "amp": False, "checkpoint_every": job.get("eval_every") if job.get("curve") else None,
                    "keep_checkpoints": 10_000, "grid_every": None, "metrics_every": 250,
                    **job.get("set", {}), "steps": job["steps"], "seed": job["seed"]}
        cfg = GanConfig(**settings)
        score = lambda g: score_generator(g, real, job["per_class"], job["classifier_steps"], device)  # noqa: E731
        if row["kind"] == "textbook":
            loaded = read_dataset(job["dataset"])
            shape = ImageShape(loaded.meta.channels, loaded.meta.height, loaded.meta.width, loaded.meta.num_classes)
            g_width, _ = cfg.widths(shape.height, shape.width)
            row["curve"] = []
            for step, seconds, state in textbook_generators(cfg, shape, *real["train"], job["steps"], job["eval_every"],
                                                            torch.device(device)):
                generator = Generator(cfg.latent_dim, shape, g_width)
                generator.load_state_dict(state)
                row["curve"].append({"step": step, "seconds": seconds, **score(generator.to(device).eval())})
        else:
            result = train_gan(job["dataset"], cfg, out / f"{job['dataset_key']}_{job['name']}_s{job['seed']}")
            row.update(train_seconds=result.seconds, best_step=result.best_step, best_score=result.best_score,
                       monitor=result.final_metrics)
            row["best"] = score(load_generator(result.best_checkpoint_path, use_ema=cfg.ema_decay is not None, device=device)[0])
            row["last"] = score(load_generator(result.checkpoint_path, use_ema=cfg.ema_decay is not None, device=device)[0])
            live, _ = load_generator(result.checkpoint_path, use_ema=False, device=device)
            labels = torch.arange(real["classes"]).repeat_interleave(job["per_class"])
            row["last"]["live_spread"] = float((within_class_spread(sample(live, labels, seed=0), labels, real["classes"])
                                                / real["real_spread"]).mean())
            if job.get("curve"):
                row["curve"] = [{"step": step, **score(load_generator(path, use_ema=cfg.ema_decay is not None, device=device)[0])}
                                for step, path in periodic_checkpoints(Path(result.checkpoint_path).parent)]
            grid = Path(result.grid_path)
            if job.get("keep_grid") and grid.is_file():
                (out / f"grid_{job['dataset_key']}_{job['name']}_s{job['seed']}.png").write_bytes(grid.read_bytes())
    except Exception as err:  # a failed job must not stop the sweep; its row says why
        row["error"] = f"{type(err).__name__}: {err}"[:500]
    row["wall_seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", required=True, help="KEY=PATH of a dataset.parquet (repeatable).")
    parser.add_argument("--jobs", type=Path, required=True, help="JSON list of jobs: name, seed, steps, set, dataset, kind, curve.")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=500, help="Synthetic images per class for CAS and GAN-test.")
    parser.add_argument("--classifier-steps", type=int, default=2000, help="Optimizer steps of every classifier.")
    parser.add_argument("--eval-every", type=int, default=500, help="Steps between scored checkpoints (curves).")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="Multiply every job's steps (tiny trial runs).")
    parser.add_argument("--deadline", type=float, default=1e9, help="Seconds after which unfinished jobs are abandoned.")
    parser.add_argument("--out", type=Path, default=Path("data/bench/gan_sweep"))
    args = parser.parse_args()

    datasets = dict(item.split("=", 1) for item in args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for job in json.loads(args.jobs.read_text()):
        key = job.get("dataset", "mnist")
        jobs.append({**job, "dataset_key": key, "dataset": datasets[key], "device": args.device, "out": str(args.out),
                     "steps": max(1, round(job["steps"] * args.steps_scale)), "per_class": args.per_class,
                     "classifier_steps": args.classifier_steps,
                     "eval_every": max(1, round(job.get("eval_every", args.eval_every) * args.steps_scale))})
    print(f"# torch {torch.__version__}, device {args.device}, {len(jobs)} jobs on {args.workers} workers, {os.cpu_count()} CPUs",
          flush=True)
    started = time.perf_counter()
    results = args.out / "sweep.jsonl"
    with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=None) as pool:
        pending = pool.imap_unordered(run_job, jobs)
        for done in range(len(jobs)):
            try:
                row = pending.next(timeout=max(1.0, args.deadline - (time.perf_counter() - started)))
            except mp.TimeoutError:
                print(f"# deadline: {len(jobs) - done} job(s) abandoned", flush=True)
                pool.terminate()
                break
            with results.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            brief = {k: row.get(k) for k in ("dataset", "name", "seed", "error", "wall_seconds", "best_step")}
            brief.update({f"best_{k}": round(v, 4) for k, v in (row.get("best") or {}).items()})
            print(json.dumps(brief), flush=True)
    print(f"# sweep time {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
