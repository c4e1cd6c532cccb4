"""Training throughput: the project's GAN trainer against a textbook DCGAN-style loop.

Both train the project's default Generator and Discriminator (same config, same data, same batch
size, same loss, DiffAugment policy and EMA) on the digits train split:

  (a) project: `ganaug.gan.train_gan` (data held as one tensor, batches by indexing, one fused D
      pass over real+fake, no D weight gradients in the G step, fused Adam, losses read only at
      metrics steps) -- its own images/s, measured around the training loop;
  (b) textbook: the loop of pytorch/examples' DCGAN main.py -- a DataLoader over a TensorDataset,
      separate D passes for real and fake, D weight gradients computed in the G step, default Adam,
      `.item()` on every loss every step.

Runs alternate a/b/a/b so that load from other processes hits both alike; the ratio is per round.
The achieved FLOP/s of the project's training step (FLOPs counted by torch's FlopCounterMode) is
printed as a share of a large matmul timed in the same run (fp32; bf16 when the config trains with
bf16 autocast on CUDA).

    python bench/gan_throughput.py                   # digits (8x8), default config, 3 rounds of 300 steps
    python bench/gan_throughput.py --steps 200 --rounds 2 --set '{"batch_size": 128}'
    python bench/gan_throughput.py --dataset data/bench/mnist100/dataset.parquet   # a 28x28 row
    python bench/gan_throughput.py --dataset ... --device cuda --set '{"amp": true, "compile": true}'
    python bench/gan_throughput.py --device cuda --set '{"compile": "graph"}'   # the step replayed from one CUDA graph
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.data.tensors import load_tensors
from ganaug.gan import GanConfig, train_gan
from ganaug.gan.augment import diff_augment
from ganaug.gan.losses import LOSSES
from ganaug.gan.networks import Discriminator, Generator, ImageShape
from ganaug.gan.trainer import GanTrainer
from ganaug.store import read_dataset, read_dataset_meta


def _autocast(cfg: GanConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if cfg.amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def textbook_images_per_second(cfg: GanConfig, shape: ImageShape, images: torch.Tensor, labels: torch.Tensor,
                               steps: int, device: torch.device = torch.device("cpu")) -> float:
    """Images/s of a DCGAN-example style loop over the same networks, loss, augmentation, EMA and precision."""
    torch.manual_seed(cfg.seed)
    g_width, d_width = cfg.widths(shape.height, shape.width)
    net_g = Generator(cfg.latent_dim, shape, g_width).to(device)
    net_d = Discriminator(shape, d_width, cfg.spectral_norm, cfg.conditioning, cfg.minibatch_std).to(device)
    ema = Generator(cfg.latent_dim, shape, g_width).to(device).requires_grad_(False)
    ema.load_state_dict(net_g.state_dict())
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=cfg.d_lr, betas=cfg.betas)
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=cfg.g_lr, betas=cfg.betas)
    loader = DataLoader(TensorDataset(images, labels), batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    d_loss_fn, g_loss_fn = LOSSES[cfg.loss]
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    step, log = 0, []
    _sync(device)
    started = time.perf_counter()
    while step < steps:
        for real, label in loader:
            real, label = real.to(device), label.to(device)
            # (1) update D: a pass on real images, a pass on fake images
            net_d.zero_grad()
            with _autocast(cfg, device):
                out_real, _ = net_d(diff_augment(real, cfg.diffaugment, rng), label)
                noise = torch.randn(len(real), cfg.latent_dim, device=device)
                fake = net_g(noise, label)
                out_fake, _ = net_d(diff_augment(fake.detach(), cfg.diffaugment, rng), label)
            err_d = d_loss_fn(out_real.float(), out_fake.float())
            err_d.backward()
            optimizer_d.step()
            # (2) update G through D (whose weight gradients are computed and then discarded)
            net_g.zero_grad()
            with _autocast(cfg, device):
                out_g, _ = net_d(diff_augment(fake, cfg.diffaugment, rng), label)
            err_g = g_loss_fn(out_g.float())
            err_g.backward()
            optimizer_g.step()
            with torch.no_grad():
                for averaged, current in zip(ema.parameters(), net_g.parameters()):
                    averaged.mul_(cfg.ema_decay or 0.0).add_(current, alpha=1 - (cfg.ema_decay or 0.0))
            log.append((err_d.item(), err_g.item(), out_real.mean().item(), out_fake.mean().item()))
            step += 1
            if step == steps:
                break
    _sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - started)


def project_images_per_second(cfg: GanConfig, dataset: Path, steps: int, out: Path) -> float:
    """Images/s that `train_gan` reports for its training loop (metrics rows and the final checkpoint included)."""
    run = cfg.model_copy(update={"steps": steps, "checkpoint_every": None, "grid_every": None})
    return train_gan(dataset, run, out).images_per_second


def flops_per_step(cfg: GanConfig, shape: ImageShape, images: torch.Tensor, labels: torch.Tensor,
                   device: torch.device = torch.device("cpu")) -> int:
    """FLOPs of one project training step (convolutions and matmuls, forward and backward)."""
    trainer = GanTrainer(cfg.model_copy(update={"compile": False}), shape, device, images, labels)
    trainer.train_step()
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return counter.get_total_flops()


def convolution_share(cfg: GanConfig, shape: ImageShape, images: torch.Tensor, labels: torch.Tensor,
                      steps: int = 20) -> float:
    """Share of the project step's CPU time spent inside convolution kernels (forward and backward)."""
    from torch.profiler import ProfilerActivity, profile

    trainer = GanTrainer(cfg, shape, torch.device("cpu"), images, labels)
    for _ in range(3):
        trainer.train_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            trainer.train_step()
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    conv = sum(event.self_cpu_time_total for event in events if "convolution" in event.key)
    return conv / total


def matmul_flops_per_second(size: int = 2048, repeats: int = 10, device: torch.device = torch.device("cpu"),
                            dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="Training steps per timed run.")
    parser.add_argument("--rounds", type=int, default=3, help="a/b rounds.")
    parser.add_argument("--set", default="{}", help="JSON object of GanConfig overrides.")
    parser.add_argument("--dataset", type=Path, default=None, help="A dataset.parquet (default: the built-in digits, ingested).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="gan_throughput_"))
    dataset = args.dataset or Path(ingest(IngestConfig(), out / "data").path)
    meta = read_dataset_meta(dataset)
    shape = ImageShape(meta.channels, meta.height, meta.width, meta.num_classes)
    images, labels = load_tensors(read_dataset(dataset), "train", source="real")
    device = torch.device(args.device)
    cfg = GanConfig(**{"device": args.device, **json.loads(args.set)})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"# torch {torch.__version__}, {name}, {torch.get_num_threads()} threads; "
          f"{len(images)} training images {tuple(images.shape[1:])}, batch {cfg.batch_size}, {args.steps} steps per run")
    print(f"# config overrides: {args.set}; widths (g, d) {cfg.widths(shape.height, shape.width)}")
    project_images_per_second(cfg, dataset, 20, out / "warmup")  # first-call costs (oneDNN, allocator, compile)
    textbook_images_per_second(cfg, shape, images, labels, 20, device)
    print("| round | project images/s | textbook images/s | ratio |")
    print("|---:|---:|---:|---:|")
    ratios, project_rates = [], []
    for round_index in range(1, args.rounds + 1):
        project = project_images_per_second(cfg, dataset, args.steps, out / f"run{round_index}")
        textbook = textbook_images_per_second(cfg, shape, images, labels, args.steps, device)
        ratios.append(project / textbook)
        project_rates.append(project)
        print(f"| {round_index} | {project:.0f} | {textbook:.0f} | {project / textbook:.2f} |", flush=True)
    print(f"median ratio project/textbook: {statistics.median(ratios):.2f}")
    flops = flops_per_step(cfg, shape, images, labels, device)
    bf16 = cfg.amp and device.type == "cuda"
    size = 8192 if device.type == "cuda" else 2048
    peak = matmul_flops_per_second(size, device=device, dtype=torch.bfloat16 if bf16 else torch.float32)
    achieved = flops * statistics.median(project_rates) / cfg.batch_size
    print(f"training step: {flops / 1e9:.3f} GFLOP; achieved {achieved / 1e9:.1f} GFLOP/s; "
          f"{size}x{size} {'bf16' if bf16 else 'fp32'} matmul {peak / 1e9:.1f} GFLOP/s; ratio {achieved / peak:.3f}")
    if device.type == "cpu":
        print(f"convolution kernels: {convolution_share(cfg, shape, images, labels):.0%} of the project step's CPU time")


if __name__ == "__main__":
    sys.exit(main())
