"""ganaug's converged `real` and `classic` protocols next to a plain reference training loop.

The reference is the textbook small CNN (conv32-BN-ReLU-pool, conv64-BN-ReLU-pool, dropout 0.25,
fc128, fc10), AdamW 2e-3 with torch's OneCycleLR, batch 64, a fixed number of steps, no model
selection, written here with plain PyTorch; with and without random affine augmentation (+-10
degrees, +-10% scale, +-10% shift: the `classic` protocol's own transform, so the two sides differ
only in the training loop). Both train on the same images and are
scored on the same official test set (IDX t10k files, ingested with ganaug's test_path).
The evaluation rule: ganaug within half a point of the reference in every cell.

    python bench/reference.py                                   # MNIST 100/class, 10/class, Fashion-MNIST 100/class
    python bench/reference.py --regimes mnist-100 --seeds 1     # one cell, quick
    python bench/reference.py --regimes mnist-imb,fashion-imb,fashion-10   # the other augmentation-benchmark regimes

MNIST comes from ../shared/datasets/mnist (beside the project); Fashion-MNIST from Debian's
`dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist). Results are appended to
--out (JSON lines) as each cell finishes, and a markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate.augment import classic_augment
from ganaug.evaluate.config import ClassicAugmentConfig
from ganaug.evaluate.data import load_protocol_data
from ganaug.evaluate.protocols import build_run_specs
from ganaug.evaluate.stage import run_all

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")
RARE = {"2": 10, "5": 10, "8": 10}  # imbalanced regimes (as in bench/augmentation.py): three classes keep 10 images
REGIMES = {  # name: (folder, training images per class, reference steps, imbalance); steps = ganaug's budget
    "mnist-100": (MNIST, 100, 2000, None),
    "mnist-10": (MNIST, 10, 1000, None),
    "mnist-imb": (MNIST, 100, 1460, RARE),
    "fashion-100": (FASHION, 100, 2000, None),
    "fashion-10": (FASHION, 10, 1000, None),
    "fashion-imb": (FASHION, 100, 1460, RARE),
}


def idx_files(folder: Path) -> dict[str, Path]:
    """The four IDX files of an MNIST-format folder (gzipped or not)."""
    def find(stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
        raise SystemExit(f"{folder}/{stem}[.gz] not found (see the module docstring for where the data comes from)")

    return {"path": find("train-images-idx3-ubyte"), "labels_path": find("train-labels-idx1-ubyte"),
            "test_path": find("t10k-images-idx3-ubyte"), "test_labels_path": find("t10k-labels-idx1-ubyte")}


class ReferenceCNN(nn.Module):
    def __init__(self, channels: int, side: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * (side // 4) ** 2, 128), nn.ReLU(), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


CLASSIC_AFFINE = classic_augment(ClassicAugmentConfig())  # +-10 degrees, +-10% zoom, +-10% shift


def random_affine(x: torch.Tensor) -> torch.Tensor:
    """The classic protocol's affine transform of a batch, drawn from torch's global random stream (seeded per run)."""
    return CLASSIC_AFFINE(x, torch.default_generator)


def reference_loop(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, steps: int,
                   order: Callable[[], torch.Tensor], augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   before_epoch: Callable[[int], None] | None = None) -> nn.Module:
    """The plain loop: AdamW 2e-3 with OneCycleLR, batches of 64 in the order `order()` gives each epoch, `steps` steps.

    `augment` transforms each batch; `before_epoch(step)` may stop the loop by raising. Returns the model in eval mode.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    step = 0
    while step < steps:
        if before_epoch is not None:
            before_epoch(step)
        for batch in order().split(64):
            if step == steps or len(batch) < 2:
                break
            x = train_x[batch]
            loss = F.cross_entropy(model(augment(x) if augment is not None else x), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
    return model.eval()


def reference_accuracy(train_x, train_y, test_x, test_y, steps: int, seed: int, augment: bool) -> float:
    """Train the reference CNN for `steps` (inputs in [0, 1]) and return its test accuracy."""
    torch.manual_seed(seed)
    model = ReferenceCNN(train_x.shape[1], train_x.shape[2], int(test_y.max()) + 1)
    reference_loop(model, train_x, train_y, steps, lambda: torch.randperm(len(train_x)),
                   random_affine if augment else None)
    with torch.no_grad():
        predicted = torch.cat([model(test_x[i:i + 1000]).argmax(1) for i in range(0, len(test_x), 1000)])
    return float((predicted == test_y).float().mean())


def run_cell(name: str, seeds: int, root: Path) -> dict:
    folder, per_class, reference_steps, imbalance = REGIMES[name]
    dataset = ingest(IngestConfig(source="idx", train_per_class=per_class, imbalance=imbalance, **idx_files(folder)),
                     root / name)
    data = load_protocol_data(dataset, None)
    to_unit = lambda images: torch.from_numpy(images).float() / 255.0  # noqa: E731
    train_x, train_y = to_unit(data.train_images), torch.from_numpy(data.train_labels)
    test_x, test_y = to_unit(data.test_images), torch.from_numpy(data.test_labels)
    result: dict = {"regime": name, "train_images": len(train_y), "test_images": len(test_y),
                    "reference_steps": reference_steps}
    for augment in (False, True):
        started = time.perf_counter()
        key = "reference_affine" if augment else "reference"
        accs = []
        for seed in range(seeds):
            accs.append(reference_accuracy(train_x, train_y, test_x, test_y, reference_steps, seed, augment))
            print(f"{name} {key} seed {seed}: {accs[-1]:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
        result[key], result[f"{key}_seconds"] = accs, time.perf_counter() - started
        print(f"{name} {key}: {[round(a, 4) for a in accs]}", flush=True)
    cfg = EvaluateConfig(protocols=["real", "classic"], seeds=seeds, generative_metrics=False)
    started = time.perf_counter()
    rows = run_all(build_run_specs(cfg), data, cfg)
    result["ganaug_seconds"] = time.perf_counter() - started
    for protocol in ("real", "classic"):
        mine = [r for r in rows if r["protocol"] == protocol]
        result[f"ganaug_{protocol}"] = [r["accuracy"] for r in mine]
        result[f"ganaug_{protocol}_steps"] = [(r["best_step"], r["steps_run"]) for r in mine]
        print(f"{name} ganaug {protocol}: {[round(r['accuracy'], 4) for r in mine]}", flush=True)
    return result


def _steps(pairs: list) -> str:
    """'1800, 2000, 2000 of 2000' from [(best step, steps run), ...]."""
    return f"{', '.join(str(best) for best, _ in pairs)} of {pairs[0][1]}" if pairs else ""


def table(results: list[dict]) -> str:
    mean = statistics.fmean
    lines = ["| regime | train images | reference | ganaug real | diff | reference + affine | ganaug classic | diff "
             "| ganaug best val step (real; classic) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d1 = mean(r["ganaug_real"]) - mean(r["reference"])
        d2 = mean(r["ganaug_classic"]) - mean(r["reference_affine"])
        lines.append(f"| {r['regime']} | {r['train_images']} | {mean(r['reference']):.4f} | {mean(r['ganaug_real']):.4f} | "
                     f"{d1:+.4f} | {mean(r['reference_affine']):.4f} | {mean(r['ganaug_classic']):.4f} | {d2:+.4f} "
                     f"| {_steps(r['ganaug_real_steps'])}; {_steps(r['ganaug_classic_steps'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", default="mnist-100,mnist-10,fashion-100")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/reference.jsonl"))
    parser.add_argument("--table-only", action="store_true", help="Print the table of the cells already in --out, train nothing.")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the reference loop (1: ganaug's runs also use one thread each)")
    args = parser.parse_args()
    if args.table_only:
        print(table([json.loads(line) for line in args.out.read_text(encoding="utf-8").splitlines() if line.strip()]))
        return
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.regimes.split(","):
            results.append(run_cell(name, args.seeds, Path(tmp)))
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(results[-1]) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
