"""Model averaging at the end of long trainings: last (EMA) vs the weight average / ensemble of the kept checkpoints.

For each finished 3,000-step GAN run (checkpoints kept at steps 2000, 2500, 3000, plus best.pt and
last.pt), four generators are scored on the run's real val split:

- last: the EMA generator of last.pt (what `checkpoint: last` samples);
- best: the EMA generator of best.pt (the default `checkpoint: best`, chosen by the collapse monitor);
- weights: one generator with the uniform mean of the 3 kept checkpoints' EMA weights, batch-norm
  statistics recomputed (`average: weights`);
- ensemble: the 3 EMA generators in turn (`average: ensemble`).

Score: CAS on val -- the accuracy on all real val images of the project's utility classifier
(`ganaug.tune.study.synthetic_utility`: default CNN, a fixed budget of optimizer steps) trained only
on `--per-class` generated images per class; one value per classifier seed, the seed also fixing the
noise, so seeds pair across generators. Plus the collapse monitor's recall and Fréchet distance
(random conv features, `--per-class` images per class against as many val images; seed 0 only).

Writes one JSON line per (run, generator, seed) to <out>/results.jsonl as it goes (a rerun skips
lines already there), then <out>/summary.json with paired differences vs last.

    PYTHONPATH=. python bench/averaging.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ganaug.data.tensors import load_tensors
from ganaug.gan import load_generator
from ganaug.gan.averaging import combined_generator
from ganaug.gan.monitor import CollapseMonitor
from ganaug.store import read_dataset
from ganaug.tune.study import synthetic_utility

ROOT = Path(__file__).resolve().parents[1]
RUNS = ["bench-aug-bal/mnist-imb", "bench-aug-bal/fashion-imb", "bench-aug-cpu-images/mnist-imb",
        "bench-aug-cpu-da/mnist-imb", "mnist100-issue9"]
GENERATORS = ["last", "best", "weights", "ensemble"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-root", type=Path, default=Path("data/runs"), help="Folder holding the runs (their gan/checkpoints and dataset.parquet).")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated run folders under --runs-root")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench" / "averaging")
    parser.add_argument("--seeds", type=int, default=3, help="classifier (and noise) seeds")
    parser.add_argument("--per-class", type=int, default=100, help="generated images per class the classifier trains on")
    parser.add_argument("--classifier-steps", type=int, default=300, help="fixed optimizer-step budget of the CAS classifier")
    parser.add_argument("--average-checkpoints", type=int, default=3)
    return parser.parse_args()


def build(run_dir: Path, name: str, count: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    checkpoints = run_dir / "gan" / "checkpoints"
    if name in ("last", "best"):
        generator, info = load_generator(checkpoints / f"{name}.pt", use_ema=True, device="cpu")
        return generator, {"steps": [info["step"]]}
    generator, info = combined_generator(checkpoints, name, count, use_ema=True, seed=0, device="cpu")
    return generator, {"steps": info["averaged_steps"]}


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    results_path = args.out / "results.jsonl"
    rows = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.is_file() else []
    done = {(row["run"], row["generator"], row["seed"]) for row in rows}
    for run in args.runs.split(","):
        run_dir = args.runs_root / run
        dataset = read_dataset(run_dir / "dataset.parquet")
        val = load_tensors(dataset, "val", "real")  # (N, C, H, W) in [-1, 1], (N,)
        monitor = CollapseMonitor(val[0], val[1], dataset.meta.num_classes, args.per_class, collapse_spread=0.0, seed=0)
        for name in GENERATORS:
            if all((run, name, seed) in done for seed in range(args.seeds)):
                continue
            generator, info = build(run_dir, name, args.average_checkpoints)
            for seed in range(args.seeds):
                if (run, name, seed) in done:
                    continue
                started = time.time()
                row: dict[str, Any] = {"run": run, "generator": name, "seed": seed, **info,
                                       "cas_val": synthetic_utility(generator, val, args.per_class, args.classifier_steps, seed)}
                if seed == 0:
                    reading = monitor.measure(generator).row()
                    row.update(recall=reading["recall"], frechet=reading["val_frechet"], nn_cas=reading["val_nn_cas"])
                row["seconds"] = round(time.time() - started, 1)
                rows.append(row)
                with results_path.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    return rows


def summarise(rows: list[dict[str, Any]], seeds: int) -> dict[str, Any]:
    """Per run: mean CAS of each generator; paired differences vs last (per seed), their mean, min and max."""
    summary: dict[str, Any] = {}
    for run in dict.fromkeys(row["run"] for row in rows):
        cas = {(row["generator"], row["seed"]): row["cas_val"] for row in rows if row["run"] == run}
        extra = {row["generator"]: row for row in rows if row["run"] == run and row["seed"] == 0}
        entry: dict[str, Any] = {}
        for name in GENERATORS:
            values = [cas[(name, s)] for s in range(seeds) if (name, s) in cas]
            if not values:
                continue
            entry[name] = {"cas_mean": statistics.mean(values), "cas": values,
                           "recall": extra.get(name, {}).get("recall"), "frechet": extra.get(name, {}).get("frechet")}
            paired = [cas[(name, s)] - cas[("last", s)] for s in range(seeds) if (name, s) in cas and ("last", s) in cas]
            if name != "last" and paired:
                entry[name].update(diff_mean=statistics.mean(paired), diff_min=min(paired), diff_max=max(paired),
                                   diff_sd=statistics.stdev(paired) if len(paired) > 1 else None)
        summary[run] = entry
    return summary


def main() -> None:
    torch.set_num_threads(1)
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = measure(args)
    summary = summarise(rows, args.seeds)
    (args.out / "summary.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": summary}, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
