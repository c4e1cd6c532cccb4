"""Parallel tuning trials on threads against worker processes: the same study, timed a/b in one run.

`tune_gan` trains a batch of `parallel` trials at once, by default on threads of its process
(`--workers threads`); `bench/meta.py --workers processes` hands it a pool of spawned processes
instead, one interpreter lock per trial, at the cost of starting them. This times one cold study
(`--trials` trials, all in one batch, `--steps` GAN steps each, no pruning) both ways, alternating
which goes first, with the pool's start-up (spawning, importing torch) counted, and prints the
seconds and their ratio per round (docs/benchmarks/meta.md, "Threads or worker processes"):

    python bench/meta.py --suite fashion --phases ingest --out data/bench/meta_fashion   # the 28x28 dataset
    python bench/tune_workers.py --dataset data/bench/meta_fashion/fashion100/dataset.parquet --device cuda

Writes <out>/tune_workers.json as rounds finish.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from meta import quiet_process, trial_workers  # bench/meta.py, beside this script

from ganaug.gan import GanConfig
from ganaug.store import atomic_write_json, dataset_ref
from ganaug.tune.config import TuneConfig
from ganaug.tune.study import tune_gan


def one_study(args: argparse.Namespace, workers: str, folder: Path) -> dict[str, Any]:
    """Time one cold study of `args.trials` trials trained at once on `workers`; its seconds and best utility."""
    shutil.rmtree(folder, ignore_errors=True)
    cfg = TuneConfig(n_trials=args.trials, parallel=args.trials, min_steps=args.steps, max_steps=args.steps,
                     classifier_steps=args.classifier_steps, warm_start=False, history=folder / "history.parquet",
                     seed=args.seed, base=GanConfig(device=args.device, grid_every=None, batch_size=args.batch_size))
    started = time.perf_counter()
    with trial_workers(argparse.Namespace(workers=workers, parallel=args.trials)) as executor:  # None: tune_gan's threads
        result = tune_gan(dataset_ref(args.dataset), cfg, folder, executor=executor)
    seconds = time.perf_counter() - started
    return {"workers": workers, "seconds": round(seconds, 2), "best_utility": result.best_utility}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="A dataset.parquet (ganaug ingest) with a val split.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="Where the GANs train.")
    parser.add_argument("--trials", type=int, default=3, help="Trials of the study, all trained at once.")
    parser.add_argument("--steps", type=int, default=375, help="GAN steps of every trial (one rung, no pruning).")
    parser.add_argument("--batch-size", type=int, default=64, help="GAN batch size.")
    parser.add_argument("--classifier-steps", type=int, default=150, help="Steps of the utility classifier.")
    parser.add_argument("--rounds", type=int, default=2, help="a/b rounds (each runs both, in alternating order).")
    parser.add_argument("--seed", type=int, default=0, help="The study's seed (the same in every run).")
    parser.add_argument("--out", type=Path, default=Path("data/bench/tune_workers"), help="Working folder.")
    args = parser.parse_args()
    for option in ("trials", "steps", "batch_size", "classifier_steps", "rounds"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} {getattr(args, option)}: must be at least 1")
    if not args.dataset.is_file():
        parser.error(f"--dataset {args.dataset}: no such file")
    quiet_process()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "rounds": []}
    print("| round | threads s | processes s | threads / processes |\n|---|---:|---:|---:|", flush=True)
    for index in range(args.rounds):
        order = ["threads", "processes"] if index % 2 == 0 else ["processes", "threads"]
        runs = {workers: one_study(args, workers, args.out / workers) for workers in order}
        ratio = runs["threads"]["seconds"] / runs["processes"]["seconds"]
        report["rounds"].append({"order": order, **runs, "ratio": round(ratio, 3)})
        atomic_write_json(args.out / "tune_workers.json", report)
        print(f"| {index + 1} | {runs['threads']['seconds']:.1f} | {runs['processes']['seconds']:.1f} | {ratio:.2f} |", flush=True)
    ratios = [r["ratio"] for r in report["rounds"]]
    report["median_ratio"] = statistics.median(ratios)
    atomic_write_json(args.out / "tune_workers.json", report)
    print(f"\nmedian threads / processes: {report['median_ratio']:.2f} ({args.trials} trials of {args.steps} steps at once, "
          f"{args.device})")


if __name__ == "__main__":
    main()
