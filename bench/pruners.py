"""Multi-fidelity pruning of `ganaug tune`: successive halving vs Hyperband vs no pruning, same trials budget.

For each seed, three cold studies of `--trials` trials on one dataset (digits by default, 8x8, cheap
enough for a 2-core CPU) that differ only in the pruner. Each study's cost is counted twice: GAN
steps trained over all trials (what pruning saves; independent of the machine's load) and wall
seconds (torch on 1 thread; noisy on a shared machine). Quality: the tuning objective on val
(`TuneConfig`'s utility: CAS on val times the share of classes not collapsed) of the best and of
every completed trial. The sampler is seeded per seed, so the three studies of a seed
ask the same first points; their paths part once pruning changes what the sampler has seen.

    PYTHONPATH=. GANAUG_HISTORY=off python bench/pruners.py --out data/bench/pruners

Writes `pruners.jsonl` (one line per study, as it finishes; a rerun skips the studies already in it)
and prints a markdown table of every study in it. Seeds can run in separate processes on copies
of one folder (`--first-seed`), their pruners.jsonl files concatenated into one folder afterwards;
a run there with `--first-seed 0 --seeds N` then only prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.gan import GanConfig
from ganaug.store import dataset_ref
from ganaug.tune.config import TuneConfig
from ganaug.tune.study import tune_gan

PRUNERS = ("successive_halving", "hyperband", "none")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/bench/pruners"))
    parser.add_argument("--trials", type=int, default=12, help="Trials per study.")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds run: --first-seed .. --first-seed + --seeds - 1.")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--min-steps", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--classifier-steps", type=int, default=150)
    parser.add_argument("--dataset", type=Path, help="dataset.parquet to tune on (default: digits, ingested into --out).")
    args = parser.parse_args(argv)
    for name in ("trials", "seeds", "min_steps", "max_steps", "batch_size", "classifier_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.first_seed < 0:
        parser.error("--first-seed must be at least 0")
    return args


def study(dataset: Path, pruner: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    cfg = TuneConfig(n_trials=args.trials, min_steps=args.min_steps, max_steps=args.max_steps, reduction_factor=2,
                     pruner=pruner, classifier_steps=args.classifier_steps, warm_start=False, seed=seed,
                     storage="memory", base=GanConfig(device="cpu", grid_every=None, batch_size=args.batch_size))
    out = args.out / f"{pruner}-seed{seed}"
    started = time.perf_counter()
    result = tune_gan(dataset, cfg, out)
    seconds = time.perf_counter() - started
    trials = pq.read_table(result.trials_path).to_pylist()
    steps = sum(max(t["rung_steps"], default=0) for t in trials)
    complete = [t["utility"] for t in trials if t["state"] == "complete"]
    best_at = next(i for i, t in enumerate(trials, start=1) if t["utility"] == result.best_utility)
    return {"pruner": pruner, "seed": seed, "seconds": round(seconds, 1), "gan_steps": steps,
            "gan_steps_unpruned": args.trials * args.max_steps, "best": result.best_utility, "best_at_trial": best_at,
            "complete": len(complete), "pruned": result.pruned, "failed": result.failed,
            "mean_complete": statistics.mean(complete) if complete else None,
            "utilities": [t["utility"] for t in trials], "states": [t["state"] for t in trials]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("ganaug.gan.stage").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = args.dataset or args.out / "digits" / "dataset.parquet"
    if not dataset.is_file():
        dataset = Path(ingest(IngestConfig(source="digits"), dataset.parent).path)
    dataset_ref(dataset)  # a damaged file fails here
    lines = args.out / "pruners.jsonl"
    done = {(r["pruner"], r["seed"]) for r in map(json.loads, lines.read_text().splitlines())} if lines.is_file() else set()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for pruner in PRUNERS:
            if (pruner, seed) in done:
                continue
            row = study(dataset, pruner, seed, args)
            with lines.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"seed {seed} {pruner}: best {row['best']:.4f} (trial {row['best_at_trial']}), {row['gan_steps']} GAN steps, "
                  f"{row['seconds']} s, {row['pruned']} pruned", flush=True)
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    print("\n| pruner | best utility on val per seed | mean best | GAN steps trained (share of no pruning) | seconds (share) | pruned trials |")
    print("|---|---|---|---|---|---|")
    base = {r["seed"]: r for r in rows if r["pruner"] == "none"}
    for pruner in PRUNERS:
        mine = sorted((r for r in rows if r["pruner"] == pruner), key=lambda r: r["seed"])
        if not mine:
            continue
        share_steps = statistics.mean(r["gan_steps"] / base[r["seed"]]["gan_steps"] for r in mine if r["seed"] in base) if base else float("nan")
        share_secs = statistics.mean(r["seconds"] / base[r["seed"]]["seconds"] for r in mine if r["seed"] in base) if base else float("nan")
        bests = ", ".join(f"{r['best']:.3f}" for r in mine)
        print(f"| {pruner} | {bests} | {statistics.mean(r['best'] for r in mine):.3f} | "
              f"{statistics.mean(r['gan_steps'] for r in mine):.0f} ({share_steps:.2f}) | "
              f"{statistics.mean(r['seconds'] for r in mine):.0f} ({share_secs:.2f}) | "
              f"{statistics.mean(r['pruned'] for r in mine):.1f} |")


if __name__ == "__main__":
    main()
