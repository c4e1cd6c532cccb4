"""Learning across runs on 8x8 digits: cold vs warm-started GAN tuning, model averaging, default config.

1. History: cold `ganaug.tune` studies on digits at 10%, 30% and 100% of the train split (one study
   each, every trial appended to a run history).
2. Held-out regime: digits at 50% with another split seed. For each seed, a cold study and a study
   warm-started from (a frozen copy of) that history, same trial budget. Reported per seed: the
   cold study's best val utility (CAS on val), and the trials and seconds each study needed to reach it.
3. Model averaging: for each held-out study's best trial, CAS on val of the last EMA generator vs
   the weight average of the EMA generators of its kept periodic checkpoints (3 classifier seeds).
4. Reference: the default GanConfig trained for the same steps on the held-out regime.

    python bench/meta.py                        # what docs/benchmarks/meta.md reports
    python bench/meta.py --trials 6 --seeds 2   # quicker look

Sized for a shared 2-core CPU. Prints a markdown table and writes meta.json under --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.data.tensors import load_tensors
from ganaug.gan import GanConfig, load_generator, train_gan
from ganaug.gan.averaging import average_generators, kept_checkpoints
from ganaug.tune.config import TuneConfig
from ganaug.tune.study import synthetic_utility, tune_gan

HISTORY_REGIMES = {"digits10": 0.1, "digits30": 0.3, "digits100": 1.0}
HELD_OUT = ("digits50", 0.5)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/bench/meta"), help="Working folder (data, studies, JSON).")
    parser.add_argument("--trials", type=int, default=6, help="Trials per study (history and held-out).")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds of the held-out cold and warm studies.")
    parser.add_argument("--min-steps", type=int, default=50, help="GAN steps of the first rung.")
    parser.add_argument("--max-steps", type=int, default=200, help="GAN steps of an unpruned trial.")
    parser.add_argument("--classifier-steps", type=int, default=150, help="Steps of the utility classifier.")
    return parser.parse_args()


def tune_config(args: argparse.Namespace, history: Path, seed: int, warm: bool) -> TuneConfig:
    return TuneConfig(n_trials=args.trials, min_steps=args.min_steps, max_steps=args.max_steps, reduction_factor=2,
                      classifier_steps=args.classifier_steps, warm_start=warm, history=history, seed=seed,
                      base=GanConfig(device="cpu", grid_every=None))


def reached(trials: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """First trial (1-based, in asked order) whose utility reaches `target`, and the study's seconds then."""
    for index, trial in enumerate(trials, start=1):
        if trial["utility"] is not None and trial["utility"] >= target:
            return {"trials": index, "seconds": round(trial["finished_after"], 1)}
    return {"trials": None, "seconds": None}


def averaging_effect(study_dir: Path, best: dict[str, Any], val: tuple[torch.Tensor, torch.Tensor],
                     args: argparse.Namespace) -> dict[str, Any]:
    gan_dir = study_dir / "tune" / "trials" / f"{best['number']:04d}" / "gan"
    use_ema = float(json.loads(best["params"])["ema_decay"]) != 0.0  # without an EMA, the raw generators
    checkpoints = kept_checkpoints(gan_dir)
    last, info = load_generator(gan_dir / "checkpoints" / "last.pt", use_ema=use_ema, device="cpu")
    averaged, avg_info = average_generators(checkpoints, use_ema=use_ema)
    seeds = range(3)
    last_cas = [synthetic_utility(last, val, 50, args.classifier_steps, s) for s in seeds]
    avg_cas = [synthetic_utility(averaged, val, 50, args.classifier_steps, s) for s in seeds]
    return {"last": statistics.mean(last_cas), "averaged": statistics.mean(avg_cas),
            "averaged_steps": avg_info["averaged_steps"], "last_step": info["step"], "ema": use_ema}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    logging.getLogger("ganaug.gan.stage").setLevel(logging.ERROR)  # collapse warnings of poor trials are expected
    started = time.perf_counter()
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    history = out / "history.parquet"
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "history": {}, "held_out": []}
    for seed, (name, fraction) in enumerate(HISTORY_REGIMES.items()):
        dataset = ingest(IngestConfig(source="digits", train_fraction=fraction), out / name)
        result = tune_gan(dataset, tune_config(args, history, 100 + seed, warm=False), out / name)
        report["history"][name] = {"best_utility": result.best_utility, "seconds": result.seconds, "pruned": result.pruned}
        print(f"history {name}: best CAS on val {result.best_utility:.4f} ({result.seconds:.0f} s)", flush=True)
    name, fraction = HELD_OUT
    dataset = ingest(IngestConfig(source="digits", train_fraction=fraction, seed=1), out / name)
    val = load_tensors(dataset, "val", source="real")
    default_dir = out / name / "default"
    default = train_gan(dataset, GanConfig(device="cpu", steps=args.max_steps, grid_every=None), default_dir,
                        record_history=False)
    generator, _ = load_generator(default.checkpoint_path, device="cpu")
    report["default_cas"] = statistics.mean(synthetic_utility(generator, val, 50, args.classifier_steps, s) for s in range(3))
    for seed in range(args.seeds):
        row: dict[str, Any] = {"seed": seed}
        for mode in ("cold", "warm"):
            study_dir = out / name / f"{mode}{seed}"
            study_dir.mkdir(parents=True)
            frozen = study_dir / "history.parquet"  # a copy: held-out studies never learn from each other
            shutil.copyfile(history, frozen)
            result = tune_gan(dataset, tune_config(args, frozen, seed, warm=mode == "warm"), study_dir)
            trials = pq.read_table(result.trials_path).to_pylist()
            row[mode] = {"best_utility": result.best_utility, "seconds": result.seconds, "warm_trials": result.warm_trials,
                         "utilities": [t["utility"] for t in trials], "pruned": result.pruned,
                         "averaging": averaging_effect(study_dir, trials[result.best_trial], val, args)}
            row[mode]["trials_list"] = trials
        target = row["cold"]["best_utility"]
        for mode in ("cold", "warm"):
            row[mode]["reached"] = reached(row[mode].pop("trials_list"), target)
        report["held_out"].append(row)
        (out / "meta.json").write_text(json.dumps(report, indent=2))  # so far
        print(f"seed {seed}: cold best {target:.4f} at trial {row['cold']['reached']['trials']} "
              f"({row['cold']['reached']['seconds']} s); warm best {row['warm']['best_utility']:.4f}, reached cold best "
              f"at trial {row['warm']['reached']['trials']} ({row['warm']['reached']['seconds']} s)", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    (out / "meta.json").write_text(json.dumps(report, indent=2))
    print_table(report, args)


def print_table(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{args.trials} trials per study, rungs {args.min_steps}..{args.max_steps} GAN steps; "
          f"default GanConfig at {args.max_steps} steps: CAS on val {report['default_cas']:.4f}\n")
    print("| seed | cold best CAS | cold: trials / s to it | warm best CAS | warm: trials / s to cold best | "
          "averaging (cold best trial): last -> averaged | averaging (warm best trial) |")
    print("|---|---|---|---|---|---|---|")
    for row in report["held_out"]:
        cold, warm = row["cold"], row["warm"]

        def fmt(reached: dict[str, Any]) -> str:
            return "not reached" if reached["trials"] is None else f"{reached['trials']} / {reached['seconds']}"

        print(f"| {row['seed']} | {cold['best_utility']:.4f} | {fmt(cold['reached'])} | {warm['best_utility']:.4f} | "
              f"{fmt(warm['reached'])} | {cold['averaging']['last']:.4f} -> {cold['averaging']['averaged']:.4f} | "
              f"{warm['averaging']['last']:.4f} -> {warm['averaging']['averaged']:.4f} |")
    print(f"\ntotal {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
