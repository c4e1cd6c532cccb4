"""NAS efficiency on digits: aging evolution vs random search at equal trial budgets, and the proxy's worth.

Pipeline: ingest digits -> train a small GAN -> generate synthetic -> for each strategy and search seed,
`ganaug.nas.search` (fitness = val accuracy after a step budget on real + synthetic) -> best val accuracy
after each trial and the best architecture's test accuracy; then the proxy fidelity (small class-balanced
synthetic set, fewer steps) scored against full fidelity on random architectures (Spearman, Kendall, cost).

    python bench/nas_efficiency.py                       # defaults used in docs/benchmarks/nas.md
    python bench/nas_efficiency.py --trials 8 --seeds 2 --gan-steps 100   # quicker look
    python bench/nas_efficiency.py --reuse-data          # same data as the last run (skips ingest + GAN)

Sized for a shared 2-core CPU: small step budgets. Prints a markdown table and writes JSON + a figure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.gan import GanConfig, train_gan
from ganaug.generate import GenerateConfig, generate
from ganaug.nas.config import SearchConfig
from ganaug.nas.data import load_search_data
from ganaug.nas.space import SearchSpace
from ganaug.nas.stage import measure_proxy, search
from ganaug.store import SyntheticRef, dataset_ref


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/bench/nas"), help="Working folder (data, runs, JSON).")
    parser.add_argument("--trials", type=int, default=16, help="Trials per search (equal for every strategy).")
    parser.add_argument("--seeds", type=int, default=3, help="Search seeds per strategy.")
    parser.add_argument("--steps", type=int, default=400, help="Full-fidelity optimizer steps per trial.")
    parser.add_argument("--gan-steps", type=int, default=200, help="GAN training steps for the synthetic data.")
    parser.add_argument("--correlation-sample", type=int, default=10, help="Architectures scored at both fidelities.")
    parser.add_argument("--proxy", nargs="+", default=["20x50", "50x200"],
                        help="Proxy settings PER_CLASSxSTEPS (synthetic images per class x optimizer steps) to measure.")
    parser.add_argument("--reuse-data", action="store_true",
                        help="Reuse dataset.parquet and synthetic.parquet already in --out (skip ingest and GAN training).")
    parser.add_argument("--figure", type=Path, default=Path("docs/benchmarks/nas_efficiency.png"), help="Figure path.")
    return parser.parse_args()


def prepare_data(out: Path, gan_steps: int, reuse: bool) -> tuple:
    started = time.perf_counter()
    if reuse and (out / "synthetic.parquet").is_file():
        dataset = dataset_ref(out / "dataset.parquet")
        synthetic = SyntheticRef(**dataset_ref(out / "synthetic.parquet").model_dump(exclude={"kind"}))
        print(f"data: reused {dataset.path} ({dataset.rows} rows) and {synthetic.path} ({synthetic.rows} rows)")
        return dataset, synthetic
    dataset = ingest(IngestConfig(), out)
    gan = train_gan(dataset, GanConfig(steps=gan_steps, device="cpu", grid_every=None, checkpoint_every=None), out)
    synthetic = generate(gan, dataset, GenerateConfig(), out)
    print(f"data: digits {dataset.rows} rows, synthetic {synthetic.rows} rows (GAN {gan_steps} steps) "
          f"in {time.perf_counter() - started:.0f} s")
    return dataset, synthetic


def run_searches(args: argparse.Namespace, dataset, synthetic) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for strategy in ("evolution", "random"):
        for seed in range(args.seeds):
            cfg = SearchConfig(strategy=strategy, n_trials=args.trials, steps=args.steps, seed=seed,
                               population_size=6, tournament_size=3, pruner="none", storage="memory")
            started = time.perf_counter()
            result = search(dataset, synthetic, cfg, args.out / "runs" / f"{strategy}-{seed}")
            rows = sorted(pq.read_table(result.trials_path).to_pylist(), key=lambda r: r["number"])
            fitness = [r["fitness"] if r["state"] == "complete" else 0.0 for r in rows]
            runs.setdefault(strategy, []).append({
                "seed": seed, "best_so_far": np.maximum.accumulate(fitness).tolist(),
                "best_val": result.best_fitness, "test_real": result.test_accuracy_real,
                "test_augmented": result.test_accuracy_augmented, "best_params": result.best_parameter_count,
                "seconds": time.perf_counter() - started, "arch": result.best_arch.to_json(),
            })
            print(f"{strategy:9s} seed {seed}: best val {result.best_fitness:.4f}, test augmented "
                  f"{result.test_accuracy_augmented:.4f}, {time.perf_counter() - started:.0f} s")
    return runs


def proxy_stats(args: argparse.Namespace, dataset, synthetic) -> dict[str, dict]:
    """Rank correlation and cost ratio of each proxy setting on the same random architectures."""
    stats = {}
    for setting in args.proxy:
        per_class, steps = (int(v) for v in setting.split("x"))
        cfg = SearchConfig(steps=args.steps, correlation_sample=args.correlation_sample, storage="memory",
                           proxy_per_class=per_class, proxy_steps=steps)
        data = load_search_data(dataset, synthetic, cfg)
        space = SearchSpace(cfg.space, data.height, data.width)
        folder = args.out / f"proxy-{setting}"
        folder.mkdir(parents=True, exist_ok=True)
        stats[setting] = measure_proxy(space, cfg, data, None, folder).model_dump()
        print(f"proxy {setting}: {stats[setting]}")
    return stats


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for strategy, seeds in runs.items():
        curves = np.array([s["best_so_far"] for s in seeds])
        x = np.arange(1, curves.shape[1] + 1)
        ax.plot(x, curves.mean(0), label=f"{strategy} (mean of {len(seeds)} seeds)")
        ax.fill_between(x, curves.min(0), curves.max(0), alpha=0.2)
    ax.set_xlabel("trials used")
    ax.set_ylabel("best val accuracy so far")
    ax.set_title("Digits: aging evolution vs random search")
    ax.legend(loc="lower right", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def summarize(runs: dict[str, list[dict]], proxy: dict[str, dict], trials: int) -> str:
    checkpoints = sorted({max(1, trials // 4), trials // 2, trials})
    lines = ["| strategy | " + " | ".join(f"best val @{c}" for c in checkpoints) + " | test real | test augmented | seconds |",
             "|---" * (len(checkpoints) + 4) + "|"]
    for strategy, seeds in runs.items():
        at = [np.mean([s["best_so_far"][c - 1] for s in seeds]) for c in checkpoints]
        lines.append(f"| {strategy} | " + " | ".join(f"{v:.4f}" for v in at)
                     + f" | {np.mean([s['test_real'] for s in seeds]):.4f} | "
                     f"{np.mean([s['test_augmented'] for s in seeds]):.4f} | {np.mean([s['seconds'] for s in seeds]):.0f} |")
    lines += ["", "| proxy (synthetic per class x steps) | architectures | Spearman | Kendall | cost ratio full/proxy |",
              "|---|---|---|---|---|"]
    for setting, p in proxy.items():
        spearman, kendall = (("n/a" if v is None else f"{v:.3f}") for v in (p["spearman"], p["kendall"]))
        lines.append(f"| {setting} | {p['sample_size']} | {spearman} | {kendall} | {p['cost_ratio']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset, synthetic = prepare_data(args.out, args.gan_steps, args.reuse_data)
    runs = run_searches(args, dataset, synthetic)
    proxy = proxy_stats(args, dataset, synthetic)
    plot(runs, args.figure)
    (args.out / "nas_efficiency.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                              "runs": runs, "proxy": proxy}, indent=2))
    print(summarize(runs, proxy, args.trials))
    print(f"wrote {args.out / 'nas_efficiency.json'} and {args.figure}")


if __name__ == "__main__":
    main()
