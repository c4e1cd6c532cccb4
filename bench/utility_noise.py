"""How noisy is the tuning utility? The same config's trial in several studies (different seeds), split into
the spread of the utility measurement itself and the spread between GAN trainings.

For each study folder (a `ganaug tune` output: <study>/tune/), trial N's generator at `max_steps` is scored
again with `--repeats` classifier/sample seeds, the study's own seed first (which must reproduce the recorded
utility: a check that the scores are the study's). Then:

- within: the spread of those repeats around their mean, pooled over the studies (the measurement: which
  samples are drawn and how the 150-step classifier happens to train);
- total: the spread of the recorded utilities across the studies (another GAN seed and another classifier seed);
- between GAN trainings: sqrt(total² − within²), what is left.

Every study's trial N must be the same config (e.g. trial 0 of warm-started studies, the learned schedule).

    PYTHONPATH=. python bench/utility_noise.py --dataset data/bench/meta_fashion3/fashion100/dataset.parquet \\
        data/bench/meta_fashion4_s3/fashion100/warm3 data/bench/meta_fashion4_s4/fashion100/warm4 ...
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from ganaug.data.tensors import load_tensors
from ganaug.gan import load_generator
from ganaug.store import atomic_write_json, read_dataset
from ganaug.tune.config import TuneConfig, to_gan_config
from ganaug.tune.study import measure_utility


def study_trial(folder: Path, number: int) -> tuple[TuneConfig, dict[str, Any], Path]:
    """The study's config, trial `number`'s row (complete) and its generator checkpoint at max_steps."""
    tune = folder / "tune"
    if not (tune / "tune.json").is_file():
        raise SystemExit(f"{folder}: no tune/tune.json (not a finished `ganaug tune` output)")
    cfg = TuneConfig.model_validate(json.loads((tune / "tune.json").read_text())["config"])
    rows = [r for r in pq.read_table(tune / "trials.parquet").to_pylist() if r["number"] == number]
    if not rows or rows[0]["state"] != "complete":
        raise SystemExit(f"{folder}: trial {number} did not complete (it has no utility at max_steps)")
    checkpoint = tune / "trials" / f"{number:04d}" / "gan" / "checkpoints" / f"step_{cfg.max_steps:07d}.pt"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint}: missing")
    return cfg, rows[0], checkpoint


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("studies", nargs="+", type=Path, help="Study folders (each holding tune/).")
    parser.add_argument("--dataset", required=True, type=Path, help="The dataset the studies tuned on (its val split).")
    parser.add_argument("--trial", type=int, default=0, help="Which trial of each study (the same config in all).")
    parser.add_argument("--repeats", type=int, default=5, help="Classifier/sample seeds per generator (the study's own first).")
    parser.add_argument("--out", type=Path, default=None, help="Write the rows and summary here as JSON.")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error(f"--repeats {args.repeats}: must be at least 2 (a spread needs two readings)")
    if len(args.studies) < 2:
        parser.error("give at least 2 study folders (the spread between GAN trainings needs two)")
    torch.set_num_threads(1)
    val = load_tensors(read_dataset(args.dataset), "val", source="real")
    rows, params = [], None
    for folder in args.studies:
        cfg, trial, checkpoint = study_trial(folder, args.trial)
        if params is not None and trial["params"] != params:
            raise SystemExit(f"{folder}: trial {args.trial} is another config than in {args.studies[0]}")
        params = trial["params"]
        use_ema = to_gan_config(json.loads(trial["params"]), cfg.base, cfg.max_steps).ema_decay is not None
        generator, _ = load_generator(checkpoint, use_ema=use_ema, device="cpu")
        values = []
        for seed in [cfg.seed + k for k in range(args.repeats)]:
            utility = measure_utility(generator, val, cfg.synthetic_per_class, cfg.classifier_steps, seed,
                                      cfg.base.collapse_spread)
            values.append(utility.value if cfg.collapse_penalty else utility.cas)
        row = {"study": str(folder), "seed": cfg.seed, "recorded": trial["utility"], "repeats": values,
               "reproduced": math.isclose(values[0], trial["utility"], abs_tol=1e-9),
               "mean": statistics.mean(values), "sd": statistics.stdev(values)}
        rows.append(row)
        print(f"{folder}: recorded {row['recorded']:.4f}; seeds {cfg.seed}.. -> "
              f"{' '.join(f'{v:.3f}' for v in values)}; sd {row['sd']:.4f}"
              f"{'' if row['reproduced'] else '  (the first repeat did NOT reproduce the recorded utility)'}", flush=True)
    within = math.sqrt(statistics.mean(r["sd"] ** 2 for r in rows))
    total = statistics.stdev(r["recorded"] for r in rows)
    between = math.sqrt(max(total**2 - within**2, 0.0))
    summary = {"studies": len(rows), "trial": args.trial, "repeats": args.repeats, "params": json.loads(params or "{}"),
               "sd_within": within, "sd_total": total, "sd_between_gan_trainings": between,
               "reproduced_all": all(r["reproduced"] for r in rows)}
    print(f"\nsd of the utility of one config over {len(rows)} studies: total {total:.4f}; of the measurement "
          f"(same generator, {args.repeats} classifier/sample seeds, pooled) {within:.4f}; "
          f"between GAN trainings {between:.4f}; the recorded utilities reproduced: {summary['reproduced_all']}")
    if args.out is not None:
        atomic_write_json(args.out, {"rows": rows, "summary": summary})
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main(sys.argv[1:])
