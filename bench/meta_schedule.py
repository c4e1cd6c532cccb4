"""bench/meta.py's schedule phase: the learned default schedule against the fixed default, leaving one dataset out.

For every dataset of the suite's history (and its held-out dataset), the schedule is learned from
the history's records of the *other* datasets (`ganaug.tune.schedule`, strength chosen leaving
datasets out among those), then the default GanConfig is trained with the fixed default schedule
and with the learned one (same steps, same GAN seed), and each is scored by CAS on val (the
tuning's utility: a classifier trained on 50 samples per class of the EMA generator). Paired over
GAN seeds. A third arm holds every slope at 0 (the history's utility-weighted mean schedule, the
default counted once): whether the meta-features add anything to it. The GAN trainings are not
recorded in any history.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganaug.data.tensors import load_tensors
from ganaug.gan import GanConfig, load_generator, train_gan
from ganaug.store import read_dataset
from ganaug.tune.history import dataset_features, history_rows
from ganaug.tune.schedule import observations, schedule_for
from ganaug.tune.study import Utility, measure_utility

NO_SLOPES = 1e9  # a slope strength that holds every slope at 0


def cas_of(dataset: Any, cfg: GanConfig, folder: Path, val: Any, args: argparse.Namespace, seed: int) -> Utility:
    result = train_gan(dataset, cfg, folder)
    generator, _ = load_generator(result.checkpoint_path, device="cpu")
    return measure_utility(generator, val, 50, args.classifier_steps, seed, cfg.collapse_spread)


def schedule_phase(report: dict[str, Any], args: argparse.Namespace, dataset_of: Callable[..., Any],
                   save: Callable[..., None]) -> None:
    rows = history_rows(args.out / "history.parquet")
    base = GanConfig(device=args.device, steps=args.max_steps, grid_every=None, monitor_every=None, checkpoint_every=None,
                     batch_size=args.batch_size)
    for name in args.schedule_datasets:  # checked by bench/meta.py's parse_args, like args.arms
        dataset = dataset_of(name, args)
        loaded = read_dataset(dataset)
        features = dataset_features(loaded)
        found = observations(rows, exclude=frozenset({loaded.content_hash}))
        learned = schedule_for(features, args.max_steps, found, str(args.out / "history.parquet"))
        # the same fit with the slopes held at 0: what the history's runs agree on, whatever the dataset
        mean = schedule_for(features, args.max_steps, found, str(args.out / "history.parquet"), strength=NO_SLOPES)
        entry = report["schedule"].setdefault(name, {
            "learned": {**learned.settings(), "multiplier": learned.multiplier, "predicted": list(learned.predicted),
                        "strength": learned.strength, "runs": len(found),
                        "datasets": sorted({o.dataset_path for o in found})},
            "default_cas": [], "learned_cas": [], "steps": args.max_steps, "batch_size": args.batch_size})
        entry.setdefault("mean", {**mean.settings(), "multiplier": mean.multiplier})
        arms = {"default": base, "learned": GanConfig.model_validate({**base.model_dump(), **learned.settings()}),
                "mean": GanConfig.model_validate({**base.model_dump(), **mean.settings()})}
        val = load_tensors(loaded, "val", source="real")
        for arm, cfg in ((arm, cfg) for arm, cfg in arms.items() if arm in args.arms):
            done = entry.setdefault(f"{arm}_cas", [])
            for seed in range(len(done), args.seeds):
                folder = args.out / name / "schedule" / f"seed{seed}" / arm
                utility = cas_of(dataset, cfg.model_copy(update={"seed": seed}), folder, val, args, seed)
                done.append(utility.cas)
                entry.setdefault(f"{arm}_collapsed", []).append(utility.collapsed)
                save(report, args)
                print(f"schedule {name} seed {seed}: {arm} {done[-1]:.4f}, {utility.collapsed} classes collapsed (η0 x {cfg.g_lr / base.g_lr:.2f}, "
                      f"η1 {cfg.lr_decay_rate if cfg.lr_schedule == 'exponential' else 0.0:.2f})", flush=True)


def print_schedule(schedule: dict[str, Any]) -> None:
    print("\n| dataset (held out) | learned from | η0 x default, η1 (λ) | default CAS | learned CAS | "
          "learned − default (per seed) | no-slopes η0 x, η1 | no-slopes CAS |")
    print("|---|---|---|---|---|---|---|---|")
    for name, entry in schedule.items():
        learned, default, ours = entry["learned"], entry["default_cas"], entry["learned_cas"]
        if not ours:
            continue
        diffs = [b - a for a, b in zip(default, ours)]
        mean = entry.get("mean")
        no_slopes = "- | -" if not entry.get("mean_cas") else (
            f"{mean['multiplier']:.2f}, {mean['lr_decay_rate']:.2f} | {statistics.mean(entry['mean_cas']):.4f}")
        print(f"| {name} | {learned['runs']} runs, {len(learned['datasets'])} datasets | "
              f"{learned['multiplier']:.2f}, {learned['lr_decay_rate']:.2f} ({learned['strength']:g}) | "
              f"{statistics.mean(default):.4f} | {statistics.mean(ours):.4f} | "
              f"{statistics.mean(diffs):+.4f} ({', '.join(f'{d:+.3f}' for d in diffs)}) | {no_slopes} |")
