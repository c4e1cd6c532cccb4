"""The evaluation stage's runs trained as one stacked ensemble (`EvaluateConfig.stack`) against one by one.

Protocols x seeds train the default CNN; `stack=off` is the stage as it runs on a CPU (one torch thread per
run, `workers` runs side by side), `stack=on` trains the runs that share a stack as one torch.func
ensemble. Both are timed in this one run on the same data, step budget and device, alternating
off/on/off/on when --rounds is above 1; the ratio is printed per round, and how far the rows
of the two modes are apart (they should differ by float rounding only).

    python bench/evaluate_stacked.py                                   # MNIST 100/class (else digits), CPU
    python bench/evaluate_stacked.py --device cuda --protocols real,classic,augmented,synthetic --seeds 3 --steps 2000
    python bench/evaluate_stacked.py --quick                           # 2 protocols x 2 seeds x 60 steps

The synthetic table is a timing stand-in (real training images shifted by up to 2 pixels), as in
bench/evaluate_speed.py: no accuracy printed here is a claim about GAN data.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate.protocols import build_run_specs
from ganaug.evaluate.stage import run_all

from evaluate_speed import load_data  # noqa: E402 - the bench folder's shared loader


def timed(specs, data, cfg: EvaluateConfig) -> tuple[float, list[dict]]:
    if cfg.train.device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    rows = run_all(specs, data, cfg)
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default="real,classic", help="Comma-separated protocols.")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300, help="Optimizer steps per run.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=1, help="off/on pairs, alternating.")
    parser.add_argument("--quick", action="store_true", help="2 protocols x 2 seeds x 60 steps on digits (a check that it runs).")
    parser.add_argument("--json", type=Path, default=None, help="Append the figures as one JSON line to this file.")
    args = parser.parse_args()
    if args.quick:
        args.protocols, args.seeds, args.steps = "real,classic", 2, 60
    with tempfile.TemporaryDirectory() as tmp:
        name, data = load_data(Path(tmp), digits=args.quick)
        cfg = EvaluateConfig(protocols=args.protocols.split(","), seeds=args.seeds, generative_metrics=False,
                             train={"steps": args.steps, "batch_size": args.batch_size, "device": args.device})
        specs = build_run_specs(cfg)
        print(f"{name}: {len(specs)} runs ({args.protocols} x {args.seeds} seeds), {args.steps} steps at batch "
              f"{args.batch_size}, device {args.device}, {os.cpu_count()} CPU cores, torch {torch.__version__}", flush=True)
        figures: dict[str, list[float]] = {"off": [], "on": []}
        rows: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                seconds, rows[mode] = timed(specs, data, cfg.model_copy(update={"stack": mode}))
                figures[mode].append(seconds)
                print(f"  stack={mode}: {seconds:.1f} s", flush=True)
        ratios = [off / on for off, on in zip(figures["off"], figures["on"], strict=True)]
        gap = max(abs(a["accuracy"] - b["accuracy"]) for a, b in zip(rows["off"], rows["on"], strict=True))
        print(f"one by one (stack=off, {cfg.resolved_workers()} side by side): {np.median(figures['off']):.1f} s; "
              f"stacked (stack=on): {np.median(figures['on']):.1f} s; stacked is {np.median(ratios):.2f}x as fast "
              f"(per round: {', '.join(f'{r:.2f}' for r in ratios)}); largest test-accuracy gap between the modes {gap:.4f}")
        if args.json is not None:
            with args.json.open("a") as out:
                out.write(json.dumps({"bench": "evaluate_stacked", "device": args.device, "runs": len(specs), "steps": args.steps,
                                      "seconds_off": figures["off"], "seconds_on": figures["on"], "ratios": ratios,
                                      "accuracy_gap": gap}) + "\n")


if __name__ == "__main__":
    main()
