"""A tuning study's trials trained several at a time against one at a time, timed a/b in one run.

The same cold study (`--trials` trials of `--steps` GAN steps each, no pruning) runs with `parallel`
= `--trials` (all at once on threads of this process; on a CUDA machine at most
`ganaug.executor.DEFAULT_TRIALS_PER_GPU` per GPU) and with `parallel` = 1, and prints both seconds and
their ratio. The trials of the two studies are not the same trials (a study proposes in batches of
`parallel`): this times the work, not the answer.

    python bench/tune_concurrent.py --dataset data/bench/mnist100/dataset.parquet --device cuda --trials 8
    python bench/tune_concurrent.py --quick        # digits, 2 trials of 20 steps (a check that it runs)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from meta import quiet_process  # bench/meta.py, beside this script

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.gan import GanConfig
from ganaug.store import dataset_ref
from ganaug.tune.config import TuneConfig
from ganaug.tune.study import tune_gan


def one_study(dataset: Path, args: argparse.Namespace, parallel: int, folder: Path) -> float:
    cfg = TuneConfig(n_trials=args.trials, parallel=parallel, min_steps=args.steps, max_steps=args.steps,
                     classifier_steps=args.classifier_steps, warm_start=False, history=folder / "history.parquet",
                     seed=0, base=GanConfig(device=args.device, grid_every=None, batch_size=args.batch_size))
    started = time.perf_counter()
    tune_gan(dataset_ref(dataset), cfg, folder)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="A dataset.parquet (default: the built-in digits, ingested).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=375, help="GAN steps of every trial.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--classifier-steps", type=int, default=150)
    parser.add_argument("--quick", action="store_true", help="Digits, 2 trials of 20 steps, 20 classifier steps.")
    parser.add_argument("--json", type=Path, default=None, help="Append the figures as one JSON line to this file.")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.steps, args.classifier_steps = 2, 20, 20
    quiet_process()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset or Path(ingest(IngestConfig(), Path(tmp) / "digits").path)
        concurrent = one_study(dataset, args, args.trials, Path(tmp) / "concurrent")
        serial = one_study(dataset, args, 1, Path(tmp) / "serial")
    print(f"tuning study, {args.trials} trials x {args.steps} steps on {args.device}: all at once {concurrent:.1f} s, "
          f"one at a time {serial:.1f} s, concurrent is {serial / concurrent:.2f}x as fast")
    if args.json is not None:
        with args.json.open("a") as out:
            out.write(json.dumps({"bench": "tune_concurrent", "device": args.device, "trials": args.trials, "steps": args.steps,
                                  "seconds_concurrent": concurrent, "seconds_serial": serial}) + "\n")


if __name__ == "__main__":
    main()
