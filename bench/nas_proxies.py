"""Which proxy ranks architectures like converged training, and does search beat random at equal budget?

One run, all trainings in parallel worker processes (one GPU shared by all, or CPU):
1. Proxies on the same candidates: `--archs` architectures sampled from the search space (with their
   augmentation strength) are trained at full fidelity (the converged step budget: two steps per
   training image, 1,000-20,000) and scored by every proxy: zero-cost (synflow, NASWOT, grad_norm),
   size (params, FLOPs), reduced training on real data and, given `--synthetic`, short training on
   GAN samples. Spearman and Kendall against full-fidelity val accuracy; cost ratio = full seconds /
   proxy seconds (both measured under the same sharing of the device).
2. Search quality at equal budget: aging evolution, random, TPE, NSGA-II (accuracy vs parameters) and the GAN sampler
   with `--trials` full-fidelity trials each, `--seeds` seeds; the best-val architecture's test
   accuracy (its own best-val checkpoint, trained with the seed) against the default ArchSpec and
   the plain reference CNN of bench/reference.py (plain and with affine augmentation) trained with
   the same seed: paired differences with 95% t intervals.
   With `--search-fidelity SOURCE:PER_CLASS:STEPS` (as the product's proxy-then-verify search does) each
   trial is scored by that proxy on val instead, and each search's `--verify-top` best trials by proxy
   score are retrained at full fidelity: the best full-fidelity val of those is the search's found
   architecture, tested on the test split. Budget per strategy: `--trials` proxy trials plus
   `--verify-top` full retrainings; the worker seconds each search used are reported.
   `--archs 0` skips part 1. `--space wide` searches the product's 'wide' preset instead of the
   benchmark's space (`--channels`, `--max-blocks`).

    python bench/nas_proxies.py --mnist-dir .benchdata/mnist --workers 16 --device cuda --deadline 200
    python bench/nas_proxies.py --dataset data/runs/x/dataset.parquet --synthetic data/runs/x/synthetic.parquet
    python bench/nas_proxies.py --mnist-dir ../shared/datasets/mnist --archs 4 --steps 20 --seeds 1 \\
        --trials 3 --workers 2 --device cpu      # a quick check that it runs
    python bench/nas_proxies.py --dataset d.parquet --synthetic s.parquet --archs 0 --search-fidelity synthetic:50:250 \\
        --verify-top 2 --trials 12 --population 4 --parallel 1 --concurrent-seeds 1 --workers 1   # search quality only
    python bench/nas_proxies.py --mnist-dir ../shared/datasets/mnist --archs 0 --space wide --strategies gan evolution random \
        --trials 24 --population 6 --seeds 5    # the gan strategy on the wide space

Results go to `--out`: nas_proxies.jsonl (one line per finished job, written as they finish) and
nas_proxies.md (tables), written at the end or at `--deadline` seconds, whichever comes first
(the exit status is 0 either way; unfinished jobs are listed). Needs the project's dependencies
(prefect is imported by none of the code it runs).
"""

from __future__ import annotations

import argparse
import ast
import json
import multiprocessing
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from reference import (  # bench/reference.py, beside this script
    ReferenceCNN,
    reference_loop,
)

from ganaug.classifier import ArchSpec, TrainConfig, parameter_count, train_classifier
from ganaug.classifier.train import accuracy_of, auto_steps
from ganaug.errors import ConfigError
from ganaug.evaluate.stats import paired_interval
from ganaug.executor import settle
from ganaug.nas.augment import affine_augment
from ganaug.nas.config import SPACE_PRESETS, SearchConfig, SpaceConfig
from ganaug.nas.data import SearchData, load_search_data
from ganaug.nas.evaluator import TrialResult
from ganaug.nas.proxies import (
    ZERO_COST,
    balanced_batch,
    summarize_proxies,
    zero_cost_score,
)
from ganaug.nas.space import SearchSpace
from ganaug.nas.study import open_study, run_search_trials
from ganaug.store import SyntheticRef, dataset_ref

STRATEGIES = ("evolution", "random", "tpe", "nsga2", "gan")


class DeadlineReached(Exception):
    """The benchmark's deadline passed before this job finished."""


# ------------------------------------------------------------------ worker side (one process per worker)

_WORKER: dict[str, Any] = {}


def init_worker(dataset: str, synthetic: str | None, device: str, threads: int) -> None:
    torch.set_num_threads(threads)
    synthetic_ref = SyntheticRef(**dataset_ref(synthetic).model_dump(exclude={"kind"})) if synthetic else None
    _WORKER["data"] = load_search_data(dataset_ref(dataset), synthetic_ref, SearchConfig(train_data="real"))
    _WORKER["device"] = device


def _deadline_check(deadline: float) -> Callable[[int, float], None]:
    def check(step: int, val_accuracy: float) -> None:
        if time.time() > deadline:
            raise DeadlineReached(f"deadline passed at step {step}")
    return check


def train_job(arch_json: str, augment: float, seed: int, steps: int, source: str, per_class: int | None,
              batch_size: int, deadline: float, score_test: bool) -> dict[str, Any]:
    """Train one candidate; its best val accuracy, and (score_test) the test accuracy of that checkpoint."""
    data: SearchData = _WORKER["data"]
    train = data.real_train
    if per_class is not None or source != "real":
        cfg = SearchConfig(train_data="real", proxy_source="real" if source == "real" else "synthetic",
                           proxy_selection="confident" if source == "confident" else "random", proxy_per_class=per_class or 1, seed=0)
        subset = data.proxy(cfg)
        train = (subset.train_x, subset.train_y)
    arch = ArchSpec.from_json(arch_json)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, device=_WORKER["device"])
    trained = train_classifier(arch, train, data.val, data.num_classes, cfg, seed=seed, augment=affine_augment(augment),
                               on_eval=_deadline_check(deadline))
    return {"val": trained.best_val_accuracy, "test": accuracy_of(trained.model, data.test) if score_test else None,
            "seconds": trained.seconds, "steps_run": trained.steps_run, "params": parameter_count(trained.model),
            "curve": [h["val_accuracy"] for h in trained.history]}


def zero_cost_job(arch_json: str, seed: int, batch_size: int) -> dict[str, Any]:
    data: SearchData = _WORKER["data"]
    batch = balanced_batch(*data.real_train, batch_size, seed)
    arch = ArchSpec.from_json(arch_json)
    return {name: zero_cost_score(name, arch, batch, data.num_classes, seed) for name in ZERO_COST}


def reference_job(seed: int, steps: int, affine: bool, deadline: float) -> dict[str, Any]:
    """bench/reference.py's plain loop (AdamW + OneCycleLR, batch 64, fixed steps, no model selection) on the device."""
    data: SearchData = _WORKER["data"]
    device = torch.device(_WORKER["device"])
    started = time.perf_counter()
    torch.manual_seed(seed)
    x, y = ((data.real_train[0] + 1) / 2).to(device), data.real_train[1].to(device)  # [-1, 1] -> [0, 1]
    model = ReferenceCNN(x.shape[1], x.shape[2], data.num_classes).to(device)
    augment, generator = affine_augment(1.0), torch.Generator().manual_seed(seed)

    def check_deadline(step: int) -> None:
        if time.time() > deadline:
            raise DeadlineReached(f"deadline passed at step {step}")

    reference_loop(model, x, y, steps, lambda: torch.randperm(len(x), generator=generator),
                   (lambda images: augment(images, generator)) if affine and augment is not None else None, check_deadline)
    return {"test": accuracy_of(model, ((data.test[0] + 1) / 2, data.test[1])), "seconds": time.perf_counter() - started}


# ------------------------------------------------------------------ main side


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", type=Path, help="dataset.parquet with train/val/test splits.")
    p.add_argument("--mnist-dir", type=Path, help="Folder with the four MNIST IDX files: build a 100/class dataset.parquet in --out.")
    p.add_argument("--train-per-class", type=int, default=100, help="With --mnist-dir: training images per class.")
    p.add_argument("--synthetic", type=Path, help="synthetic.parquet (GAN samples): adds the GAN-data proxies.")
    p.add_argument("--out", type=Path, default=Path("data/bench/nas_proxies"), help="Folder for the results.")
    p.add_argument("--archs", type=int, default=30, help="Architectures scored at full fidelity and by every proxy (0: skip this part).")
    p.add_argument("--steps", type=int, help="Full-fidelity optimizer steps; default the converged budget (2 per training image, 1,000-20,000).")
    p.add_argument("--proxies", nargs="*", default=["real:all:100", "real:all:250", "real:20:100", "synthetic:20:100", "synthetic:50:250",
                                                     "confident:20:100", "confident:50:250"],
                   help="Training proxies SOURCE:PER_CLASS:STEPS: source real, synthetic (a random draw) or confident (the synthetic "
                        "images with the highest quality_score); per class a number or 'all' (real only).")
    p.add_argument("--seeds", type=int, default=5, help="Search seeds per strategy (and baseline seeds).")
    p.add_argument("--first-seed", type=int, default=0,
                   help="Seeds run are first-seed .. first-seed + seeds - 1 (a later run adds seeds; see --combine).")
    p.add_argument("--combine", nargs="+", type=Path, default=None, metavar="JSONL",
                   help="Write the search tables of several runs' nas_proxies.jsonl (same settings, different seeds) to --out; runs nothing. Searches a run's deadline cut short are left out (named), so a later run may redo their seeds.")
    p.add_argument("--trials", type=int, default=8, help="Trials per search (equal for every strategy), at --search-fidelity.")
    p.add_argument("--search-fidelity", default="full",
                   help="What scores a search trial: 'full' (converged training) or a training proxy SOURCE:PER_CLASS:STEPS "
                        "as in --proxies, e.g. synthetic:50:250; then the --verify-top best are retrained at full fidelity.")
    p.add_argument("--verify-top", type=int, default=2,
                   help="With a proxy --search-fidelity: best proxy trials per search retrained at full fidelity (the best val of those is the found architecture).")
    p.add_argument("--concurrent-seeds", type=int, default=0,
                   help="Seeds whose searches (and baselines) run at once; 0 = all. 1 finishes seed after seed, so a deadline leaves whole seeds.")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES, help="Strategies compared.")
    p.add_argument("--first-strategies", nargs="*", default=[], choices=STRATEGIES,
                   help="Run these strategies' searches for every seed before the other strategies' (so a deadline cuts the others).")
    p.add_argument("--channels", nargs="+", type=int, default=[16, 32, 64, 96], help="Search space: channel widths a block may have.")
    p.add_argument("--max-blocks", type=int, default=4, help="Search space: most convolution blocks.")
    p.add_argument("--space", default="bench", choices=["bench", *SPACE_PRESETS],
                   help="Search space: bench (this script's, from --channels and --max-blocks) or a named preset of the product.")
    p.add_argument("--population", type=int, default=3, help="Evolution / NSGA-II population (and TPE's random start).")
    p.add_argument("--parallel", type=int, default=2, help="Trials a search evaluates at once.")
    p.add_argument("--workers", type=int, default=2, help="Worker processes (all share the one device).")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="Where workers train.")
    p.add_argument("--deadline", type=float, default=3600.0, help="Seconds after which results so far are written and the script exits 0.")
    p.add_argument("--seconds-per-step", type=float, default=0.0075,
                   help="For the printed estimate: seconds per full-fidelity step with all workers sharing the device (H200, 16 workers: ~0.005-0.01).")
    p.add_argument("--batch-size", type=int, default=64, help="Mini-batch size.")
    p.add_argument("--zero-cost-batch", type=int, default=64, help="Images a zero-cost score looks at.")
    args = p.parse_args(argv)
    if args.combine:
        return args
    if (args.dataset is None) == (args.mnist_dir is None):
        p.error("give exactly one of --dataset and --mnist-dir")
    for name in ("seeds", "trials", "workers", "population", "parallel", "verify_top", "max_blocks"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("archs", "concurrent_seeds", "first_seed"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be at least 0")
    if min(args.channels) < 1:
        p.error(f"--channels {' '.join(map(str, args.channels))}: widths must be at least 1")
    if set(args.first_strategies) - set(args.strategies):
        p.error(f"--first-strategies {' '.join(args.first_strategies)}: each must be one of --strategies {' '.join(args.strategies)}")
    args.proxies = [parse_proxy(p, spec) for spec in args.proxies]
    args.search_fidelity = None if args.search_fidelity == "full" else parse_proxy(p, args.search_fidelity, "--search-fidelity")
    if args.search_fidelity is not None and args.search_fidelity[0] != "real" and args.synthetic is None:
        p.error(f"--search-fidelity {':'.join(str(v or 'all') for v in args.search_fidelity)} trains on GAN samples: give --synthetic")
    if args.synthetic is None:
        args.proxies = [spec for spec in args.proxies if spec[0] == "real"]  # the GAN proxies need --synthetic
    return args


def parse_proxy(parser: argparse.ArgumentParser, spec: str, option: str = "--proxies") -> tuple[str, int | None, int]:
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] not in ("real", "synthetic", "confident") or not parts[2].isdigit() or not (parts[1] == "all" or parts[1].isdigit()):
        parser.error(f"{option} {spec}: expected SOURCE:PER_CLASS:STEPS, e.g. real:20:100 or real:all:250")
    per_class = None if parts[1] == "all" else int(parts[1])
    if parts[0] != "real" and per_class is None:
        parser.error(f"{option} {spec}: synthetic proxies need a number of images per class")
    if int(parts[2]) < 1 or per_class == 0:
        parser.error(f"{option} {spec}: PER_CLASS and STEPS must be at least 1")
    return parts[0], per_class, int(parts[2])


def proxy_name(spec: tuple[str, int | None, int]) -> str:
    source, per_class, steps = spec
    label = {"real": "real", "synthetic": "gan", "confident": "gan-confident"}[source]
    return f"{label} {per_class or 'all'}/class x {steps} steps"


def prepare_dataset(args: argparse.Namespace) -> Path:
    if args.dataset is not None:
        return args.dataset
    from ganaug.config import IngestConfig
    from ganaug.data.ingest import ingest

    def find(stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (args.mnist_dir / name).is_file():
                return args.mnist_dir / name
        raise SystemExit(f"{args.mnist_dir}/{stem}[.gz] not found")

    cfg = IngestConfig(source="idx", train_per_class=args.train_per_class, path=find("train-images-idx3-ubyte"),
                       labels_path=find("train-labels-idx1-ubyte"), test_path=find("t10k-images-idx3-ubyte"),
                       test_labels_path=find("t10k-labels-idx1-ubyte"))
    return Path(ingest(cfg, args.out).path)


def check_proxies(args: argparse.Namespace, data: SearchData) -> None:
    """Exit 2 with the option named when a training proxy asks for more images per class than there are."""
    synthetic = data.synthetic[1] if data.synthetic is not None else None
    pools = {"real": data.real_train[1], "synthetic": synthetic, "confident": synthetic}
    specs = [("--proxies", spec) for spec in args.proxies] if args.archs else []  # --archs 0 trains no --proxies
    specs += [("--search-fidelity", args.search_fidelity)] if args.search_fidelity is not None else []
    for option, (source, per_class, steps) in specs:
        labels = pools[source]
        if per_class is None or labels is None:
            continue
        if source == "confident" and (data.synthetic_quality is None or bool(torch.isnan(data.synthetic_quality).all())):
            print(f"{option} {source}:{per_class}:{steps}: {args.synthetic} holds no quality_score; generate with "
                  "rank_by or min_confidence, or leave the confident proxies out", file=sys.stderr)
            raise SystemExit(2)
        counts = torch.bincount(labels, minlength=data.num_classes)
        if int(counts.min()) < per_class:
            print(f"{option} {source}:{per_class}:{steps}: the {source} training data has only {int(counts.min())} "
                  f"images of class {int(counts.argmin())}; lower PER_CLASS", file=sys.stderr)
            raise SystemExit(2)


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """Mean and half-width of the 95% Student t interval (None for fewer than 2 values)."""
    if len(values) < 2:
        return None
    interval = paired_interval(values)  # the evaluate stage's interval: scipy's t quantile
    return interval.mean, interval.high - interval.mean


def fmt_ci(values: list[float]) -> str:
    ci = t_interval(values)
    if ci is None:
        return f"{values[0]:+.4f} (1 seed)" if values else "n/a"
    return f"{ci[0]:+.4f} ± {ci[1]:.4f}"


class Bench:
    """The pool, the JSONL log, the shared cache of full-fidelity trainings, and the deadline."""

    def __init__(self, args: argparse.Namespace, dataset: Path, steps: int) -> None:
        self.args, self.steps = args, steps
        self.deadline = time.time() + args.deadline
        threads = 1 if args.device == "cuda" or args.workers > 1 else max(1, torch.get_num_threads())
        self.pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                                        initargs=(str(dataset), str(args.synthetic) if args.synthetic else None, args.device, threads))
        self.lock = threading.RLock()
        self.cache: dict[tuple[str, float, int], Future] = {}
        self.log = (args.out / "nas_proxies.jsonl").open("w")
        self.pending: list[tuple[str, Future]] = []

    def record(self, line: dict[str, Any]) -> None:
        with self.lock:
            self.log.write(json.dumps(line) + "\n")
            self.log.flush()

    def submit(self, kind: str, fn: Callable[..., Any], *args: Any, info: dict[str, Any] | None = None) -> Future:
        if time.time() > self.deadline:
            future: Future = Future()
            future.set_exception(DeadlineReached("deadline passed before the job started"))
            return future
        future = self.pool.submit(fn, *args)
        line = {"kind": kind, **(info or {})}

        def done(f: Future) -> None:
            error = f.exception()
            self.record({**line, **({"error": f"{type(error).__name__}: {error}"} if error else f.result())})

        future.add_done_callback(done)
        self.pending.append((kind, future))
        return future

    def full(self, arch: ArchSpec, augment: float, seed: int) -> Future:
        """A full-fidelity training, shared by every caller that asks for the same (arch, augment, seed)."""
        key = (arch.to_json(), float(augment), seed)
        with self.lock:
            if key not in self.cache:
                self.cache[key] = self.submit("full", train_job, key[0], key[1], seed, self.steps, "real", None,
                                              self.args.batch_size, self.deadline, True,
                                              info={"arch": key[0], "augment": key[1], "seed": seed})
            return self.cache[key]

    def proxy_trial(self, arch: ArchSpec, augment: float, seed: int, spec: tuple[str, int | None, int]) -> Future:
        """A training at the search's proxy fidelity `spec`, shared like `full` (no test score: the search sees val only)."""
        key = (arch.to_json(), float(augment), seed, spec)
        with self.lock:
            if key not in self.cache:
                source, per_class, steps = spec
                self.cache[key] = self.submit("search_proxy", train_job, key[0], key[1], seed, steps, source, per_class,
                                              self.args.batch_size, self.deadline, False,
                                              info={"arch": key[0], "augment": key[1], "seed": seed, "proxy": proxy_name(spec)})
            return self.cache[key]


class SearchExecutor:
    """The study loop's executor (`ganaug.executor` protocol): trainings at the search fidelity (full, or the proxy
    `spec`) through the bench's shared cache."""

    def __init__(self, bench: Bench, seed: int, spec: tuple[str, int | None, int] | None = None) -> None:
        self.bench, self.seed, self.spec = bench, seed, spec

    def map(self, fn: Any, items: Any, *, name: str = "work", labels: Any = None, return_exceptions: bool = False) -> list[Any]:
        """Each item is a trial's (arch, prune, augment); the study loop's task `fn` is not used."""
        fidelity = "full" if self.spec is None else "proxy"
        futures = [(self.bench.full(arch, augment, self.seed) if self.spec is None
                    else self.bench.proxy_trial(arch, augment, self.seed, self.spec), arch) for arch, _, augment in items]
        return [settle(lambda f=future, a=arch: _as_trial_result(f.result(), a, fidelity), name, return_exceptions)
                for future, arch in futures]


def _as_trial_result(r: dict[str, Any], arch: ArchSpec, fidelity: str = "full") -> TrialResult:
    return TrialResult(arch_json=arch.to_json(), accuracy=r["val"], parameter_count=r["params"], state="complete",
                       fidelity=fidelity, steps_run=r["steps_run"], seconds=r["seconds"], val_curve=tuple(r["curve"]))


def run_proxies(bench: Bench, space: SearchSpace) -> dict[str, Any]:
    args = bench.args
    rng = np.random.default_rng([0, 7919])
    genomes = [space.sample(rng) for _ in range(args.archs)]
    jobs = []
    for index, genome in enumerate(genomes):
        arch, augment = space.decode(genome), space.augment_strength(genome)
        info = {"arch": arch.to_json(), "augment": augment, "index": index}
        training = {proxy_name(p): bench.submit("proxy", train_job, arch.to_json(), augment, 0, p[2], p[0], p[1], args.batch_size,
                                                bench.deadline, False, info={**info, "proxy": proxy_name(p)}) for p in args.proxies}
        zero = bench.submit("zero_cost", zero_cost_job, arch.to_json(), 0, args.zero_cost_batch, info=info)
        jobs.append((bench.full(arch, augment, 0), training, zero))
    rows = []
    for full, training, zero in jobs:
        try:
            f = full.result()
        except Exception:
            continue
        scores, seconds = {}, {}
        for name, future in training.items():
            if future.exception() is None:
                scores[name], seconds[name] = future.result()["val"], future.result()["seconds"]
        if zero.exception() is None:
            for name, (score, took) in zero.result().items():
                scores[name], seconds[name] = score, took
        rows.append({"full": f, "scores": scores, "seconds": seconds})
    measured = []
    for name in [proxy_name(p) for p in args.proxies] + list(ZERO_COST):
        done = [r for r in rows if name in r["scores"]]  # each proxy over the candidates it finished
        if len(done) >= 3:
            measured += summarize_proxies([r["full"]["val"] for r in done], sum(r["full"]["seconds"] for r in done),
                                          {name: [r["scores"][name] for r in done]}, {name: sum(r["seconds"][name] for r in done)})
    if not measured:
        return {"archs": len(rows), "proxies": []}
    accuracies = [r["full"]["val"] for r in rows]
    return {"archs": len(rows), "proxies": [m.model_dump() for m in measured],
            "proxy_archs": {name: sum(name in r["scores"] for r in rows) for name in [m.name for m in measured]},
            "full_val": {"min": min(accuracies), "median": statistics.median(accuracies), "max": max(accuracies)},
            "full_seconds_mean": statistics.fmean(r["full"]["seconds"] for r in rows)}


def run_search(bench: Bench, space_cfg: SpaceConfig, height: int, width: int, strategy: str, seed: int) -> dict[str, Any]:
    args = bench.args
    cfg = SearchConfig(strategy=strategy, n_trials=args.trials, seed=seed, population_size=args.population,
                       tournament_size=min(2, args.population), pruner="none", storage="memory",
                       objectives=["params"] if strategy == "nsga2" else [], space=space_cfg)
    space = SearchSpace(space_cfg, height, width)
    study = open_study(cfg, space, None, "bench")
    # the executor trains through the bench's cache, so the study loop's task argument is not used
    spec = args.search_fidelity
    run_search_trials(study, space, None, cfg.n_trials, args.parallel, SearchExecutor(bench, seed, spec), cfg.objectives,
                      "full" if spec is None else "proxy")
    done = [t for t in study.trials if t.values is not None]
    if not done:
        return {"strategy": strategy, "seed": seed, "trials_done": 0}
    best_so_far = np.maximum.accumulate([t.values[0] if t.values is not None else 0.0 for t in study.trials]).tolist()
    ranked = sorted(done, key=lambda t: (-t.values[0], t.user_attrs["parameter_count"], t.number))
    result = {"strategy": strategy, "seed": seed, "trials_done": len(done), "best_so_far": best_so_far,
              "search_seconds": sum(t.user_attrs["seconds"] for t in done), "retrained": 0, "retrain_seconds": 0.0}
    if spec is None:
        best = ranked[0]
        found = bench.cache[(best.user_attrs["arch"], float(best.user_attrs["augment"]), seed)].result()
        return {**result, "best_val": best.values[0], "best_test": found["test"], "best_arch": best.user_attrs["arch"],
                "best_augment": float(best.user_attrs["augment"]), "best_params": best.user_attrs["parameter_count"]}
    return {**result, "best_proxy_val": ranked[0].values[0], **verify(bench, ranked, seed)}


def verify(bench: Bench, ranked: list[Any], seed: int) -> dict[str, Any]:
    """Retrain the `--verify-top` best distinct (arch, augment) of a proxy search at full fidelity; the found
    architecture is the best full-fidelity val of those (ties: fewer parameters, better proxy rank)."""
    top: list[tuple[str, float]] = []
    for trial in ranked:
        key = (trial.user_attrs["arch"], float(trial.user_attrs["augment"]))
        if key not in top:
            top.append(key)
        if len(top) == bench.args.verify_top:
            break
    futures = [bench.full(ArchSpec.from_json(arch), augment, seed) for arch, augment in top]
    retrained = []
    for rank, ((arch, augment), future) in enumerate(zip(top, futures)):
        try:
            retrained.append((future.result(), rank, arch, augment))
        except Exception:  # the deadline cut this retraining short: the search is judged on the others
            continue
    out: dict[str, Any] = {"retrained": len(retrained), "retrain_seconds": sum(r[0]["seconds"] for r in retrained),
                           "retrained_val": [r[0]["val"] for r in retrained]}
    if not retrained:
        return out
    found, rank, arch, augment = max(retrained, key=lambda r: (r[0]["val"], -r[0]["params"], -r[1]))
    return {**out, "best_val": found["val"], "best_test": found["test"], "best_arch": arch, "best_augment": augment,
            "best_params": found["params"], "found_proxy_rank": rank + 1}


def run_baselines(bench: Bench, seed: int) -> dict[str, Future]:
    steps = bench.steps
    return {"default": bench.full(ArchSpec(), 0.0, seed),
            "default_affine": bench.full(ArchSpec(), 1.0, seed),
            "reference": bench.submit("reference", reference_job, seed, steps, False, bench.deadline, info={"seed": seed, "affine": False}),
            "reference_affine": bench.submit("reference", reference_job, seed, steps, True, bench.deadline, info={"seed": seed, "affine": True})}


def estimate(args: argparse.Namespace, steps: int) -> str:
    """Optimizer steps and seconds the run should take (an upper bound: trainings shared through the cache count
    once, but the strategies share only their first seeded random draws, `population` trials). Proxy-fidelity searches add `verify_top` full retrainings each."""
    proxy_steps = sum(p[2] for p in args.proxies)
    start = min(args.population, args.trials)
    groups = int("evolution" in args.strategies) + int(bool(set(args.strategies) - {"evolution"}))
    search_trainings = args.seeds * (groups * start + len(args.strategies) * (args.trials - start))
    trial_steps = steps if args.search_fidelity is None else args.search_fidelity[2]
    retrainings = 0 if args.search_fidelity is None else args.seeds * len(args.strategies) * args.verify_top
    step_total = args.archs * (steps + proxy_steps) + (args.seeds * 4 + retrainings) * steps + search_trainings * trial_steps
    seconds = step_total * args.seconds_per_step / args.workers
    return (f"estimate: {step_total:,} optimizer steps ({args.archs} archs x ({steps} + {proxy_steps} proxy), "
            f"{args.seeds * 4} baselines, {search_trainings} search trainings of {trial_steps} steps for {len(args.strategies)} "
            f"strategies x {args.seeds} seeds x {args.trials} trials, {retrainings} full retrainings) ~ {seconds:.0f} s at "
            f"{args.seconds_per_step} s/step shared by {args.workers} workers, plus start-up; deadline {args.deadline:.0f} s")


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# NAS proxies and search quality ({summary['device']}, {summary['workers']} workers)", "",
             f"Data: {summary['dataset']} ({summary['train_images'] or 'unlogged number of'} training images); full fidelity "
             f"{summary['steps']} steps; " + ("wall-clock time not logged (a run stopped before its summary)." if summary.get("rebuilt") else
                                           f"finished in {summary['seconds']:.0f} s{' (deadline reached)' if summary['deadline_reached'] else ''}."),
             ""]
    proxies = summary["proxies"]
    if proxies.get("proxies"):
        fv = proxies["full_val"]
        lines += [f"## Proxies against full-fidelity val accuracy ({proxies['archs']} architectures, fewer where a proxy did not finish; val accuracy "
                  f"{fv['min']:.4f} - {fv['max']:.4f}, median {fv['median']:.4f})", "",
                  "| proxy | archs | Spearman | Kendall | cost ratio full/proxy | seconds (all archs) |", "|---|---|---|---|---|---|"]
        for p in sorted(proxies["proxies"], key=lambda p: -(p["spearman"] if p["spearman"] is not None else -2)):
            rho, tau = (("n/a" if v is None else f"{v:.3f}") for v in (p["spearman"], p["kendall"]))
            ratio = "n/a" if p["cost_ratio"] is None else f"{p['cost_ratio']:.1f}"
            lines.append(f"| {p['name']} | {proxies['proxy_archs'][p['name']]} | {rho} | {tau} | {ratio} | {p['seconds']:.1f} |")
        lines.append("")
    else:
        lines += ["## Proxies: not run (--archs 0)" if summary["archs"] == 0 else
                  f"## Proxies: fewer than 3 architectures finished ({proxies.get('archs', 0)})", ""]
    lines += _search_lines(summary)
    return "\n".join(lines) + "\n"


def _search_lines(summary: dict[str, Any]) -> list[str]:
    baselines, searches = summary["baselines"], summary["searches"]
    lines = ["## Baselines (test accuracy, mean ± 95% t half-width over seeds)", "", "| model | seeds | test accuracy |", "|---|---|---|"]
    for name, values in baselines.items():
        ci = t_interval(values)
        lines.append(f"| {name} | {len(values)} | {'n/a' if not values else (f'{values[0]:.4f}' if ci is None else f'{ci[0]:.4f} ± {ci[1]:.4f}')} |")
    proxy = summary.get("search_fidelity")
    budget = (f"each search: its trials scored by the proxy **{proxy}** on val, the {summary['verify_top']} best by proxy score "
              "retrained at full fidelity, the best full-fidelity val of those is the found architecture" if proxy
              else "each search: its trials trained at full fidelity, the best val is the found architecture")
    lines += ["", "## Search at equal budget (found architecture's test accuracy; differences paired by seed)", "",
              (f"{budget}; test of its own best-val checkpoint. Seconds: worker seconds of the search's trainings "
               "(trials + retrainings, each counted for every search that used it)."), "",
              ("| strategy | seeds | trials | retrained | mean best proxy val | found: full val | found: test | test - default | "
               "test - default+affine | test - reference | test - reference+affine | full val - random | test - random | seconds / search |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for strategy in summary["strategies"]:
        lines.append(_strategy_row(summary, strategy))
    lines += _curve_lines(summary)
    lines += ["", "Found architecture per search:", "", "| strategy | seed | best proxy val | full val | test | params | augment | architecture |",
              "|---|---|---|---|---|---|---|---|"]
    for r in searches:
        if r.get("best_test") is not None:
            lines.append(f"| {r['strategy']} | {r['seed']} | {_fmt(r.get('best_proxy_val'))} | {r['best_val']:.4f} | {r['best_test']:.4f} | "
                         f"{r['best_params']:,} | {r['best_augment']:g} | `{r['best_arch']}` |")
    return lines


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _strategy_row(summary: dict[str, Any], strategy: str) -> str:
    """One strategy's line of the search table: means over the searches whose found architecture was tested."""
    searches, by_seed = summary["searches"], summary["baselines_by_seed"]
    runs = [r for r in searches if r["strategy"] == strategy and r.get("best_test") is not None]
    if not runs:
        return f"| {strategy} | 0 | | | | | | | | | | | | |"
    random_runs = {r["seed"]: r for r in searches if r["strategy"] == "random" and r.get("best_test") is not None}

    def paired(name: str) -> str:
        base = by_seed.get(name, {})
        return fmt_ci([r["best_test"] - base[r["seed"]] for r in runs if r["seed"] in base])

    def vs_random(key: str) -> str:
        return "" if strategy == "random" else fmt_ci([r[key] - random_runs[r["seed"]][key] for r in runs if r["seed"] in random_runs])

    proxy_vals = [r["best_proxy_val"] for r in runs if r.get("best_proxy_val") is not None]
    seconds = statistics.fmean(r["search_seconds"] + r["retrain_seconds"] for r in runs)
    return (f"| {strategy} | {len(runs)} | {min(r['trials_done'] for r in runs)} | {min(r['retrained'] for r in runs)} | "
            f"{_fmt(statistics.fmean(proxy_vals)) if proxy_vals else ''} | {statistics.fmean(r['best_val'] for r in runs):.4f} | "
            f"{statistics.fmean(r['best_test'] for r in runs):.4f} | {paired('default')} | {paired('default_affine')} | "
            f"{paired('reference')} | {paired('reference_affine')} | {vs_random('best_val')} | {vs_random('best_test')} | {seconds:.0f} |")


def _curve_lines(summary: dict[str, Any]) -> list[str]:
    """Mean best val accuracy after k trials, per strategy (equal budget at every k)."""
    runs = {s: [r["best_so_far"] for r in summary["searches"] if r["strategy"] == s and r.get("best_test") is not None]
            for s in summary["strategies"]}  # the searches of the main table (a deadline can cut others short)
    length = min((len(c) for curves in runs.values() for c in curves), default=0)
    if not length:
        return []
    fidelity = "proxy" if summary.get("search_fidelity") else "full-fidelity"
    lines = ["", f"Mean best {fidelity} val accuracy after k trials:", "", "| strategy | " + " | ".join(f"k={k}" for k in range(1, length + 1)) + " |",
             "|---" * (length + 1) + "|"]
    for strategy, curves in runs.items():
        if curves:
            lines.append(f"| {strategy} | " + " | ".join(f"{statistics.fmean(c[k] for c in curves):.4f}" for k in range(length)) + " |")
    return lines


def collect_baselines(futures: dict[int, dict[str, Future]]) -> dict[str, dict[int, float]]:
    by_seed: dict[str, dict[int, float]] = {}
    for seed, jobs in futures.items():
        for name, future in jobs.items():
            try:
                by_seed.setdefault(name, {})[seed] = future.result()["test"]
            except Exception:
                by_seed.setdefault(name, {})
    return by_seed


SAME_SETTINGS = ("train_images", "steps", "search_fidelity", "verify_top", "strategies", "space")


def whole_searches(run: dict[str, Any], trials: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A run's searches that ran their whole budget (every trial, every retraining), and the ones its deadline cut short."""
    kept, cut = [], []
    for r in run["searches"]:
        retrained_all = not run.get("search_fidelity") or r.get("retrained", 0) >= run["verify_top"]
        whole = r.get("trials_done", 0) >= trials and retrained_all and r.get("best_test") is not None
        (kept if whole else cut).append(r)
    return kept, cut


def summary_from_log(lines: list[dict[str, Any]], path: Path) -> dict[str, Any]:
    """The search part of a summary, rebuilt from the rows of a run that stopped before writing one (killed, out of
    memory): its finished searches and the baselines whose trainings finished."""
    config = next((r for r in lines if r.get("kind") == "config"), None)
    if config is None:
        raise SystemExit(f"--combine {path}: no config line (not a nas_proxies.jsonl)")
    args = config["args"]
    try:
        fidelity = ast.literal_eval(args["search_fidelity"])
        strategies = ast.literal_eval(args["strategies"])
        verify_top, workers = int(args["verify_top"]), int(args["workers"])
    except (KeyError, ValueError, SyntaxError) as exc:
        raise SystemExit(f"--combine {path}: its config line is not this script's ({exc})") from None
    default = ArchSpec().to_json()
    by_seed: dict[str, dict[int, float]] = {name: {} for name in ("default", "default_affine", "reference", "reference_affine")}
    for r in lines:
        if "error" in r:
            continue
        if r.get("kind") == "full" and r["arch"] == default and r["augment"] in (0.0, 1.0):
            by_seed["default_affine" if r["augment"] == 1.0 else "default"][r["seed"]] = r["test"]
        elif r.get("kind") == "reference":
            by_seed["reference_affine" if r["affine"] else "reference"][r["seed"]] = r["test"]
    searches = [{k: v for k, v in r.items() if k != "kind"} for r in lines if r.get("kind") == "search"]
    return {"device": args.get("device"), "workers": workers, "dataset": args.get("dataset"),
            "train_images": config.get("train_images"), "steps": config["steps"], "archs": 0,
            "search_fidelity": proxy_name(fidelity) if fidelity else None, "verify_top": verify_top,
            "space": args.get("space"), "seconds": 0.0, "deadline_reached": False,  # its wall-clock time is not in the rows
            "proxies": {}, "strategies": strategies, "searches": searches,
            "baselines_by_seed": {name: {str(k): v for k, v in values.items()} for name, values in by_seed.items()}}


def combine(files: list[Path]) -> dict[str, Any]:
    """One summary of the search part from several runs' logs: same settings, disjoint seeds. Searches a run's
    deadline cut short are left out (listed in `left_out`), so a later run may redo their seeds."""
    merged: dict[str, Any] | None = None
    left_out: list[str] = []
    rebuilt: list[str] = []
    for path in files:
        try:
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--combine {path}: not a readable nas_proxies.jsonl ({exc})") from None
        run = next((r for r in lines if r.get("kind") == "summary"), None)
        config = next((r for r in lines if r.get("kind") == "config"), {})
        if run is None:  # the run was stopped before its summary: its finished searches still count
            run = summary_from_log(lines, path)
            rebuilt.append(str(path))
        first = int(config.get("args", {}).get("first_seed", 0))
        trials = int(config.get("args", {}).get("trials", 0))
        kept, cut = whole_searches(run, trials)
        cut_seeds = {r["seed"] for r in cut}
        partners = [r for r in kept if r["seed"] in cut_seeds]  # a seed's searches are compared in pairs: all or none
        run = {**run, "searches": [r for r in kept if r["seed"] not in cut_seeds]}
        left_out += [f"{r['strategy']} seed {r['seed']} of {path} ({r.get('trials_done', 0)} of {trials} trials, "
                     f"{r.get('retrained', 0)} retrained)" for r in cut]
        left_out += [f"{r['strategy']} seed {r['seed']} of {path} (another search of that seed was cut)" for r in partners]
        by_seed = ({name: {int(seed): v for seed, v in values.items()} for name, values in run["baselines_by_seed"].items()}
                   if "baselines_by_seed" in run else
                   {name: dict(enumerate(values, start=first)) for name, values in run["baselines"].items()})
        if merged is None:
            merged = {**run, "archs": 0, "searches": list(run["searches"]), "baselines_by_seed": by_seed, "runs": [str(path)]}
            continue
        for key in SAME_SETTINGS:
            if run.get(key) != merged.get(key) and None not in (run.get(key), merged.get(key)):  # None: not logged
                raise SystemExit(f"--combine {path}: {key} {run.get(key)!r} differs from {merged['runs'][0]}'s {merged.get(key)!r}")
        seen = {(r["strategy"], r["seed"]) for r in merged["searches"]}
        clash = sorted({seed for strategy, seed in ((r["strategy"], r["seed"]) for r in run["searches"]) if (strategy, seed) in seen})
        if clash:
            raise SystemExit(f"--combine {path}: seeds {clash} are already in {', '.join(merged['runs'])}")
        merged["searches"] += run["searches"]
        merged["runs"].append(str(path))
        merged["seconds"] += run["seconds"]
        merged["train_images"] = merged.get("train_images") or run.get("train_images")
        for name, values in by_seed.items():
            merged["baselines_by_seed"].setdefault(name, {}).update(values)
    assert merged is not None
    seeds = {r["seed"] for r in merged["searches"]}  # baselines over the seeds of the table (not of searches left out)
    merged["baselines_by_seed"] = {name: {seed: v for seed, v in values.items() if seed in seeds}
                                   for name, values in merged["baselines_by_seed"].items()}
    merged["left_out"] = left_out
    merged["rebuilt"] = rebuilt
    merged["searches"].sort(key=lambda r: (r["strategy"], r["seed"]))
    merged["baselines"] = {name: [values[s] for s in sorted(values)] for name, values in merged["baselines_by_seed"].items()}
    return merged


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.combine:
        summary = combine(args.combine)
        args.out.mkdir(parents=True, exist_ok=True)
        text = f"Combined from {', '.join(summary['runs'])}.\n\n"
        if summary["rebuilt"]:
            text += ("Stopped before writing a summary (their finished searches and baselines are read from the rows): "
                     + ", ".join(summary["rebuilt"]) + ".\n\n")
        if summary["left_out"]:
            text += "Left out, cut short by their run's deadline: " + "; ".join(summary["left_out"]) + ".\n\n"
        text += markdown(summary)
        (args.out / "nas_proxies.md").write_text(text)
        print(text, flush=True)
        return
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = prepare_dataset(args)
    synthetic = SyntheticRef(**dataset_ref(args.synthetic).model_dump(exclude={"kind"})) if args.synthetic else None
    probe = load_search_data(dataset_ref(dataset), synthetic, SearchConfig(train_data="real"))
    steps = args.steps or auto_steps(len(probe.real_train[1]))
    check_proxies(args, probe)
    if args.space == "bench":
        space_cfg = SpaceConfig(max_blocks=args.max_blocks, channels=sorted(set(args.channels)), kernels=[3, 5], pools=["max", "avg", "none"],
                                norms=["batch", "none"], activations=["relu", "silu"], residual=[False, True],
                                dropouts=[0.0, 0.25, 0.5], head_widths=[0, 128], augment_strengths=[0.0, 0.5, 1.0])
    else:
        space_cfg = SpaceConfig(preset=args.space)
    space = SearchSpace(space_cfg, probe.height, probe.width)
    try:
        space.encode(ArchSpec(), 1.0)  # the default architecture lies in the benchmark's space
    except ConfigError as err:
        print(f"--channels / --max-blocks: the default architecture must lie in the search space ({err})", file=sys.stderr)
        raise SystemExit(2) from None
    print(estimate(args, steps), flush=True)
    bench = Bench(args, dataset, steps)
    bench.record({"kind": "config", "args": {k: str(v) for k, v in vars(args).items()}, "steps": steps,
                  "train_images": len(probe.real_train[1])})
    proxy_thread_result: dict[str, Any] = {}
    proxy_thread = threading.Thread(target=lambda: proxy_thread_result.update(run_proxies(bench, space)), daemon=True)
    proxy_thread.start()
    time.sleep(0.05)  # submission order = queue order: proxies first, then each seed group's baselines and searches
    searches: list[dict[str, Any]] = []

    def one_search(strategy: str, seed: int) -> None:
        result = run_search(bench, space_cfg, probe.height, probe.width, strategy, seed)
        bench.record({"kind": "search", **result})
        searches.append(result)

    group = args.concurrent_seeds or args.seeds
    phases = [args.first_strategies, [s for s in args.strategies if s not in args.first_strategies]]
    baseline_futures: dict[int, dict[str, Future]] = {}
    last = args.first_seed + args.seeds
    for strategies in [phase for phase in phases if phase]:
        for first in range(args.first_seed, last, group):
            seeds = range(first, min(last, first + group))
            baseline_futures.update({seed: run_baselines(bench, seed) for seed in seeds if seed not in baseline_futures})
            threads = [threading.Thread(target=one_search, args=(s, seed), daemon=True) for seed in seeds for s in strategies]
            for thread in threads:
                thread.start()
                time.sleep(0.05)
            for thread in threads:
                thread.join(timeout=max(0.0, bench.deadline - time.time()) + 60)
    proxy_thread.join(timeout=max(0.0, bench.deadline - time.time()) + 60)
    deadline_reached = time.time() > bench.deadline
    by_seed = collect_baselines(baseline_futures)
    summary = {"device": args.device, "workers": args.workers, "dataset": str(dataset), "train_images": len(probe.real_train[1]),
               "steps": steps, "archs": args.archs, "search_fidelity": proxy_name(args.search_fidelity) if args.search_fidelity else None,
               "verify_top": args.verify_top, "space": args.space, "seconds": time.perf_counter() - started, "deadline_reached": deadline_reached,
               "proxies": proxy_thread_result, "strategies": args.strategies, "searches": sorted(searches, key=lambda r: (r["strategy"], r["seed"])),
               "baselines": {k: [v[s] for s in sorted(v)] for k, v in by_seed.items()}, "baselines_by_seed": by_seed,
               "unfinished": sum(not f.done() for _, f in bench.pending)}
    bench.record({"kind": "summary", **{k: v for k, v in summary.items() if k != "baselines_by_seed"},
                  "baselines_by_seed": {name: {str(seed): v for seed, v in values.items()} for name, values in by_seed.items()}})
    (args.out / "nas_proxies.md").write_text(markdown(summary))
    print(markdown(summary), flush=True)
    bench.log.close()
    bench.pool.shutdown(wait=False, cancel_futures=True)
    print(f"wrote {args.out / 'nas_proxies.jsonl'} and {args.out / 'nas_proxies.md'}", flush=True)


if __name__ == "__main__":
    main()
