"""Learning across runs: cold vs warm-started GAN tuning, the learned schedule vs the fixed default, averaging.

Two suites, each in phases whose results are kept in <out>/meta.json as they finish (a rerun
with the same --out skips what is there, so an interrupted run goes on):

digits (8x8 only, the built-in data):
  history   one cold `ganaug.tune` study on digits at 10%, 30% and 100% of the train split
  heldout   digits 50% (another split seed), per seed a cold study and a study warm-started from
            a frozen copy of the history; trials and seconds each needs to reach the cold best;
            model averaging of each study's best trial; the default GanConfig for reference
  schedule  leave-one-dataset-out over the history: for each history dataset, the learned
            schedule fitted on the other datasets' records against the fixed default (GanConfig
            defaults), GAN seeds x CAS on val; and the held-out dataset with the whole history

fashion (the issue's benchmark, 28x28; reads IDX files, see --mnist/--fashion):
  history   cold studies on digits 10/30/100% and MNIST 10 and 100 per class
  heldout   Fashion-MNIST 100 per class, cold vs warm per seed (no averaging: measured on digits)
  schedule  as above, over the five history datasets and Fashion-MNIST
  spared    with --warm-unpruned-rungs: which warm trials the pruner would have stopped at their
            first rung had they been judged like any trial (also recorded by heldout itself)

    python bench/meta.py                                    # digits, what docs/benchmarks/meta.md reports
    python bench/meta.py --suite fashion --out data/bench/meta_fashion
    python bench/meta.py --suite fashion --phases schedule  # one phase (needs the history phase's output)
    python bench/meta.py --suite fashion --phases heldout --only-seeds 3 --modes cold &   # a seed's two studies
    python bench/meta.py --suite fashion --phases heldout --only-seeds 3 --modes warm     # in two processes
    python bench/meta.py --report docs/benchmarks/meta_fashion_round{3,4,5,6,7}.json   # saved rows: the goal, pooled

MNIST: ../shared/datasets/mnist beside the project when present, else .benchdata/mnist of the
main checkout; Fashion-MNIST: /usr/share/datasets/fashion-mnist when present, else
.benchdata/fashion. Sized for a shared 2-core CPU (torch on 1 thread); prints markdown tables.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from optuna.trial import FrozenTrial, TrialState
from reference import idx_files  # bench/reference.py, beside this script

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.data.tensors import load_tensors
from ganaug.evaluate.stats import paired_interval
from ganaug.gan import GanConfig, load_generator, train_gan
from ganaug.gan.averaging import average_generators, kept_checkpoints
from ganaug.store import DatasetRef, atomic_write_json, dataset_ref, write_table
from ganaug.tune.config import TuneConfig
from ganaug.tune.history import HISTORY_SCHEMA, read_history
from ganaug.tune.study import synthetic_utility, tune_gan

ROOT = Path(__file__).resolve().parents[1]


def first_folder(*candidates: Path) -> Path:
    return next((folder for folder in candidates if folder.is_dir()), candidates[-1])


MNIST = first_folder(ROOT.parent / "shared" / "datasets" / "mnist", ROOT / ".benchdata" / "mnist")
FASHION = first_folder(Path("/usr/share/datasets/fashion-mnist"), ROOT / ".benchdata" / "fashion")
DIGITS_HISTORY = {"digits10": 0.1, "digits30": 0.3, "digits100": 1.0}
SUITES = {  # suite -> (history regimes, held-out regime, default min/max GAN steps)
    "digits": (list(DIGITS_HISTORY), "digits50", (50, 200)),
    "fashion": ([*DIGITS_HISTORY, "mnist10", "mnist100"], "fashion100", (100, 400)),
}


def regime(name: str, args: argparse.Namespace) -> IngestConfig:
    """Ingest config of a regime name: digits<percent>, mnist<per class>, fashion<per class>."""
    if name.startswith("digits"):
        percent = int(name.removeprefix("digits"))
        return IngestConfig(source="digits", train_fraction=percent / 100, seed=1 if name == "digits50" else 0)
    data = "mnist" if name.startswith("mnist") else "fashion"
    folder = args.mnist if data == "mnist" else args.fashion
    # val: 2% of each class of the 60,000 train images (~1,200), enough for CAS on val at this budget
    return IngestConfig(source="idx", train_per_class=int(name.removeprefix(data)), val_fraction=0.02,
                        **idx_files(folder))


def unpruned_rungs(value: str) -> int | str:
    """--warm-unpruned-rungs: a count of rungs (0 or more) or all."""
    if value == "all":
        return value
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value}: a count of rungs (0 or more) or all")
    return int(value)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="digits")
    parser.add_argument("--phases", default="history,heldout,schedule",
                        help="comma-separated: history, heldout, schedule; spared (after heldout with --warm-unpruned-rungs: "
                             "which warm trials the pruner would have stopped at their first rung); ingest (only the held-out "
                             "dataset, e.g. before starting its studies in parallel processes)")
    parser.add_argument("--out", type=Path, default=None, help="Working folder (default data/bench/meta_<suite>).")
    parser.add_argument("--trials", type=int, default=6, help="Trials per study (history and held-out).")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds of the held-out studies and of the schedule comparison.")
    parser.add_argument("--min-steps", type=int, default=None, help="GAN steps of the first rung (digits 50, fashion 100).")
    parser.add_argument("--max-steps", type=int, default=None, help="GAN steps of an unpruned trial (digits 200, fashion 400).")
    parser.add_argument("--only-seeds", default=None,
                        help="comma-separated held-out seeds to run here (default: 0..seeds-1); run several processes on copies "
                             "of --out (history.parquet, the held-out dataset) to run seeds in parallel")
    parser.add_argument("--modes", default="cold,warm",
                        help="comma-separated held-out studies to run here: cold, warm (e.g. one per process on the same --out; "
                             "the seed's row is written by whichever finishes last, or by a rerun); none: only collect the rows "
                             "of studies other processes finished")
    parser.add_argument("--classifier-steps", type=int, default=150, help="Steps of the utility classifier.")
    parser.add_argument("--only-regimes", default=None,
                        help="comma-separated history regimes to run (e.g. in parallel processes on the same --out); "
                             "the merged history is written once every regime's study has finished")
    parser.add_argument("--schedule-datasets", default=None,
                        help="comma-separated datasets of the schedule phase (default: every history dataset and the held-out one)")
    parser.add_argument("--arms", default="default,learned,mean",
                        help="schedule phase: which of default, learned, mean to train (e.g. one per process)")
    parser.add_argument("--cas-only", action="store_true",
                        help="Judge trials by CAS on val alone (TuneConfig collapse_penalty false; rounds 1 and 2).")
    parser.add_argument("--warm-unpruned-rungs", type=unpruned_rungs, default=0,
                        help="TuneConfig warm_unpruned_rungs of the warm studies: enqueued configs are not pruned at their first N "
                             "rungs (0, TuneConfig's default: judged from the first); all = never.")
    parser.add_argument("--batch-size", type=int, default=64, help="GAN batch size (GanConfig's default 64).")
    parser.add_argument("--parallel", type=int, default=1,
                        help="Trials a study trains at once (TuneConfig parallel): for a GPU, where one 28x28 GAN leaves it mostly idle.")
    parser.add_argument("--workers", choices=["threads", "processes"], default="threads",
                        help="Where a study's parallel trials train: threads of its process (tune_gan's default), or spawned "
                             "processes, one interpreter lock each (bench/tune_workers.py times the two).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                        help="Where the GANs train (tuning trials, the schedule comparison); the utility classifier stays on the CPU.")
    parser.add_argument("--report", type=Path, nargs="+", default=None, metavar="JSON",
                        help="Run nothing: print the held-out table of each saved meta.json (or docs/benchmarks round file) "
                             "and the issue's goal over all their seeds together.")
    parser.add_argument("--mnist", type=Path, default=MNIST, help="Folder of the MNIST IDX files.")
    parser.add_argument("--fashion", type=Path, default=FASHION, help="Folder of the Fashion-MNIST IDX files.")
    args = parser.parse_args()
    history_names, held_out, _ = SUITES[args.suite]

    def names(option: str, value: str | None, allowed: list[str]) -> list[str]:
        """A comma-separated option as a list, every name checked before anything runs (default: all allowed)."""
        chosen = value.split(",") if value else allowed
        unknown = sorted(set(chosen) - set(allowed))
        if unknown:
            parser.error(f"{option} {value}: {', '.join(unknown)} not among {', '.join(allowed)}")
        return chosen

    args.only_regimes = names("--only-regimes", args.only_regimes, history_names)
    args.schedule_datasets = names("--schedule-datasets", args.schedule_datasets, [*history_names, held_out])
    args.arms = names("--arms", args.arms, ["default", "learned", "mean"])
    names("--phases", args.phases, ["ingest", "history", "heldout", "spared", "schedule"])
    args.modes = [] if args.modes == "none" else names("--modes", args.modes, ["cold", "warm"])
    if args.parallel < 1:
        parser.error(f"--parallel {args.parallel}: must be at least 1")
    low, high = SUITES[args.suite][2]
    args.min_steps = args.min_steps or low
    args.max_steps = args.max_steps or high
    args.out = args.out or Path(f"data/bench/meta_{args.suite}")
    return args


def tune_config(args: argparse.Namespace, history: Path, seed: int, warm: bool) -> TuneConfig:
    return TuneConfig(n_trials=args.trials, min_steps=args.min_steps, max_steps=args.max_steps, reduction_factor=2,
                      classifier_steps=args.classifier_steps, warm_start=warm, history=history, seed=seed,
                      collapse_penalty=not args.cas_only, warm_unpruned_rungs=args.warm_unpruned_rungs if warm else 0,
                      parallel=args.parallel,
                      base=GanConfig(device=args.device, grid_every=None, batch_size=args.batch_size))


def quiet_process() -> None:
    """This process (a study's, or a trial worker's) set up alike: torch on one CPU thread, poor trials' collapse warnings off."""
    torch.set_num_threads(1)
    logging.getLogger("ganaug.gan.stage").setLevel(logging.ERROR)


@contextlib.contextmanager
def trial_workers(args: argparse.Namespace) -> Iterator[concurrent.futures.Executor | None]:
    """The executor of a study's trials: None (tune_gan's `parallel` threads) or a pool of `parallel` spawned processes."""
    if args.workers == "threads" or args.parallel == 1:
        yield None
        return
    with concurrent.futures.ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=quiet_process) as pool:
        yield pool


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """What a study or training was given (recorded with each result: a rerun may change it)."""
    return {"trials": args.trials, "min_steps": args.min_steps, "max_steps": args.max_steps,
            "batch_size": args.batch_size, "classifier_steps": args.classifier_steps, "cas_only": args.cas_only,
            "warm_unpruned_rungs": args.warm_unpruned_rungs, "device": args.device,
            "parallel": args.parallel}


def dataset_of(name: str, args: argparse.Namespace) -> DatasetRef:
    """The regime's dataset.parquet (ingested once; a rerun reuses it)."""
    folder = args.out / name
    if (folder / "dataset.parquet").is_file():
        return dataset_ref(folder / "dataset.parquet")
    return ingest(regime(name, args), folder)


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
    last, info = load_generator(gan_dir / "checkpoints" / "last.pt", use_ema=use_ema, device="cpu")
    averaged, avg_info = average_generators(kept_checkpoints(gan_dir), use_ema=use_ema)
    last_cas = [synthetic_utility(last, val, 50, args.classifier_steps, s) for s in range(3)]
    avg_cas = [synthetic_utility(averaged, val, 50, args.classifier_steps, s) for s in range(3)]
    return {"last": statistics.mean(last_cas), "averaged": statistics.mean(avg_cas),
            "averaged_steps": avg_info["averaged_steps"], "last_step": info["step"], "ema": use_ema}


def save(report: dict[str, Any], args: argparse.Namespace) -> None:
    atomic_write_json(args.out / "meta.json", report)  # several processes may share one --out


def history_phase(report: dict[str, Any], args: argparse.Namespace) -> None:
    """One cold study per history regime, each into its own history file; then the merged history."""
    names = SUITES[args.suite][0]
    for name in names:  # studies finished by another process on this --out
        marker = args.out / name / "study" / "result.json"
        if name not in report["history"] and marker.is_file():
            report["history"][name] = json.loads(marker.read_text())
    for seed, name in enumerate(names):
        if name in report["history"] or name not in args.only_regimes:
            continue
        study_dir = args.out / name / "study"
        shutil.rmtree(study_dir, ignore_errors=True)  # a study interrupted earlier starts over
        study_dir.mkdir(parents=True)
        with trial_workers(args) as workers:
            result = tune_gan(dataset_of(name, args), tune_config(args, study_dir / "history.parquet", 100 + seed, warm=False),
                              study_dir, executor=workers)
        report["history"][name] = {"best_utility": result.best_utility, "seconds": result.seconds, "pruned": result.pruned,
                                   "budget": budget(args)}
        (study_dir / "result.json").write_text(json.dumps(report["history"][name]))
        save(report, args)
        print(f"history {name}: best utility {result.best_utility:.4f} ({result.seconds:.0f} s)", flush=True)
    waiting = [name for name in names if name not in report["history"]]
    if waiting:
        print(f"history not merged yet: waiting for {', '.join(waiting)}", flush=True)
        return
    tables = [read_history(args.out / name / "study" / "history.parquet") for name in names]
    write_table(pa.concat_tables(tables).replace_schema_metadata(HISTORY_SCHEMA.metadata), args.out / "history.parquet")


def would_prune(cfg: TuneConfig, name: str, number: int, finished: tuple[FrozenTrial, ...], step: int, value: float) -> bool:
    """The counterfactual: a probe numbered `number` in a copy of the study holding only `finished` (failed trials
    fill the gaps, so Hyperband's brackets stay put), judged at `step` on `value`."""
    probe_study = optuna.create_study(direction="maximize", pruner=cfg.make_pruner(), study_name=name,
                                      sampler=optuna.samplers.RandomSampler(0))
    by_number = {t.number: t for t in finished}
    probe_study.add_trials([by_number.get(n, optuna.trial.create_trial(state=TrialState.FAIL)) for n in range(number)])
    probe = probe_study.ask()
    probe.report(value, step)
    return probe.should_prune()


def spared_verdicts(study_dir: Path) -> list[dict[str, Any]]:
    """For each warm-start trial of a finished study: its first-rung reading, and whether the pruner would have
    stopped it there had it been judged like any trial (same study, same trials finished before it)."""
    tune = study_dir / "tune"
    cfg = TuneConfig.model_validate(json.loads((tune / "tune.json").read_text())["config"])
    storage = f"sqlite:///{tune / 'study.db'}"
    [name] = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    judged = cfg.model_copy(update={"warm_unpruned_rungs": 0})
    verdicts = []
    for trial in trials:
        attrs = trial.user_attrs
        if not attrs.get("warm_from") or not attrs.get("rung_steps"):
            continue
        finished = tuple(t for t in trials if t.number < trial.number and t.intermediate_values
                         and t.state in (TrialState.COMPLETE, TrialState.PRUNED))
        stopped = would_prune(judged, name, trial.number, finished, attrs["rung_steps"][0], attrs["rung_utility"][0])
        verdicts.append({"number": trial.number, "warm_from": attrs["warm_from"], "first_rung": attrs["rung_utility"][0],
                         "pruned_there_if_judged": stopped, "state": trial.state.name.lower(),
                         "utility": trial.value if trial.state == TrialState.COMPLETE else None})
    return verdicts


def spared_phase(report: dict[str, Any], args: argparse.Namespace) -> None:
    """Counterfactual of --warm-unpruned-rungs for the held-out rows already run: which warm trials it kept alive."""
    name = SUITES[args.suite][1]
    for row in report["held_out"]:
        if row["budget"].get("warm_unpruned_rungs"):
            row["warm"]["spared"] = spared_verdicts(args.out / name / f"warm{row['seed']}")
    save(report, args)


def finished_study(marker: Path, mode: str, expected: dict[str, Any]) -> dict[str, Any] | None:
    """A held-out study's row from its result.json, if it finished (here or in another process); refused when it ran
    with another budget."""
    if not marker.is_file():
        return None
    found = json.loads(marker.read_text())
    ignored = {"warm_unpruned_rungs"} if mode == "cold" else set()  # a cold study has no warm trials
    if {k: v for k, v in (found.get("budget") or {}).items() if k not in ignored} != \
            {k: v for k, v in expected.items() if k not in ignored}:
        raise SystemExit(f"{marker}: that {mode} study ran with {found.get('budget')}, not this run's {expected}; "
                         f"remove its folder or use another --out")
    return found


def heldout_study(dataset: DatasetRef, val: Any, seed: int, mode: str, args: argparse.Namespace,
                  given: dict[str, Any]) -> dict[str, Any]:
    """Run one held-out study (cold or warm) from a frozen copy of the history; its row."""
    study_dir = args.out / SUITES[args.suite][1] / f"{mode}{seed}"
    shutil.rmtree(study_dir, ignore_errors=True)  # a study interrupted earlier starts over
    study_dir.mkdir(parents=True)
    frozen = study_dir / "history.parquet"  # a copy: held-out studies never learn from each other
    shutil.copyfile(args.out / "history.parquet", frozen)
    with trial_workers(args) as workers:
        result = tune_gan(dataset, tune_config(args, frozen, seed, warm=mode == "warm"), study_dir, executor=workers)
    trials = pq.read_table(result.trials_path).to_pylist()
    row = {"best_utility": result.best_utility, "seconds": result.seconds, "warm_trials": result.warm_trials,
           "warm_from": result.warm_from, "utilities": [t["utility"] for t in trials],
           "cas": [t["rung_cas"][-1] if t["rung_cas"] else None for t in trials],
           "collapsed": [t["rung_collapsed"][-1] if t["rung_collapsed"] else None for t in trials],
           "finished_after": [round(t["finished_after"], 1) for t in trials], "pruned": result.pruned, "budget": given}
    if args.suite == "digits":
        row["averaging"] = averaging_effect(study_dir, trials[result.best_trial], val, args)
    if mode == "warm" and args.warm_unpruned_rungs:
        row["spared"] = spared_verdicts(study_dir)
    return row


def heldout_phase(report: dict[str, Any], args: argparse.Namespace) -> None:
    name = SUITES[args.suite][1]
    dataset = dataset_of(name, args)
    val = load_tensors(dataset, "val", source="real")
    digits = args.suite == "digits"
    if digits and "default_cas" not in report:
        cfg = GanConfig(device=args.device, steps=args.max_steps, grid_every=None, batch_size=args.batch_size)
        default = train_gan(dataset, cfg, args.out / name / "default")
        generator, _ = load_generator(default.checkpoint_path, device="cpu")
        report["default_cas"] = statistics.mean(synthetic_utility(generator, val, 50, args.classifier_steps, s) for s in range(3))
    done = {row["seed"] for row in report["held_out"]}
    seeds = [int(s) for s in args.only_seeds.split(",")] if args.only_seeds else list(range(args.seeds))
    for seed in (s for s in seeds if s not in done):
        row: dict[str, Any] = {"seed": seed, "budget": budget(args)}
        for mode in args.modes:  # this process's studies, unless another process on this --out finished them
            marker = args.out / name / f"{mode}{seed}" / "result.json"
            if not marker.is_file():
                atomic_write_json(marker, heldout_study(dataset, val, seed, mode, args, row["budget"]))
        for mode in ("cold", "warm"):  # read after running: a study another process finished meanwhile counts too
            found = finished_study(args.out / name / f"{mode}{seed}" / "result.json", mode, row["budget"])
            if found is not None:
                row[mode] = found
        waiting = [mode for mode in ("cold", "warm") if mode not in row]
        if waiting:
            print(f"seed {seed}: waiting for the {' and '.join(waiting)} {'study' if len(waiting) == 1 else 'studies'} (rerun "
                  f"with --modes, or after the process running it on this --out has finished)", flush=True)
            continue
        target = row["cold"]["best_utility"]
        for mode in ("cold", "warm"):
            row[mode]["reached"] = reached([{"utility": u, "finished_after": f} for u, f in
                                            zip(row[mode]["utilities"], row[mode]["finished_after"])], target)
        report["held_out"].append(row)
        save(report, args)
        print(f"seed {seed}: cold best {target:.4f} at trial {row['cold']['reached']['trials']} "
              f"({row['cold']['reached']['seconds']} s); warm best {row['warm']['best_utility']:.4f}, reached cold best "
              f"at trial {row['warm']['reached']['trials']} ({row['warm']['reached']['seconds']} s)", flush=True)


def goal_summary(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's goal over held-out rows: warm start reaches the cold study's best within a third of cold's trials."""
    reached = [r for r in rows if r["warm"]["reached"]["trials"] is not None]
    met = [r for r in reached if 3 * r["warm"]["reached"]["trials"] <= r["cold"]["reached"]["trials"]]
    misses = len(rows) - len(reached)

    def trials_to(row: dict[str, Any], mode: str) -> int:  # a miss counts as one trial more than the study had
        return row[mode]["reached"]["trials"] or row["budget"]["trials"] + 1

    ratios = [r["warm"]["reached"]["seconds"] / r["cold"]["reached"]["seconds"] for r in reached]
    to_best = (f"mean {statistics.mean(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}, seeds reached)"
               if ratios else "never reached")
    first = sum((r["warm"]["utilities"][0] or 0.0) > (r["cold"]["utilities"][0] or 0.0) for r in rows)
    best = paired_interval([r["warm"]["best_utility"] - r["cold"]["best_utility"] for r in rows])
    interval = "" if best.low is None else f", 95% CI [{best.low:+.4f}, {best.high:+.4f}]"
    return [f"goal (warm reaches the cold best within a third of cold's trials): met in {len(met)} of {len(rows)} seeds",
            (f"trials to the cold best, mean: warm {statistics.mean(trials_to(r, 'warm') for r in rows):.1f} vs cold "
             f"{statistics.mean(trials_to(r, 'cold') for r in rows):.1f} (a miss counted as trials + 1; {misses} misses)"),
            f"study seconds to the cold best, warm / cold: {to_best}",
            f"warm's first trial above cold's first: {first} of {len(rows)}",
            f"best utility, warm - cold (paired over seeds): mean {best.mean:+.4f}{interval}"]


def report_files(paths: list[Path]) -> None:
    """Print the held-out rows of saved reports, one table each, and the goal over all of them."""
    rows = []
    for path in paths:
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"--report {path}: not a readable JSON report ({err})") from None
        if not isinstance(report, dict) or not report.get("held_out"):
            raise SystemExit(f"--report {path}: no held_out rows (a bench/meta.py meta.json or a docs/benchmarks round file)")
        given = report["held_out"][0]["budget"]
        print(f"\n{path}: {given['trials']} trials per study, rungs {given['min_steps']}..{given['max_steps']} GAN steps, "
              f"device {given.get('device', 'cpu')}")
        print_held_out(report["held_out"])
        rows += report["held_out"]
    print(f"\nover {len(rows)} seeds of {len(paths)} file(s):")
    for line in goal_summary(rows):
        print(f"- {line}")


def main() -> None:
    args = parse_args()
    if args.report:
        report_files(args.report)
        return
    quiet_process()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    path = args.out / "meta.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {
        "suite": args.suite, "args": {k: str(v) for k, v in vars(args).items()}, "history": {}, "held_out": [],
        "schedule": {}}
    report.setdefault("invocations", []).append({k: str(v) for k, v in vars(args).items()})
    from meta_schedule import schedule_phase  # bench/meta_schedule.py, beside this script

    phases = {"ingest": lambda report, args: dataset_of(SUITES[args.suite][1], args),  # before parallel studies
              "history": history_phase, "heldout": heldout_phase, "spared": spared_phase,
              "schedule": lambda report, args: schedule_phase(report, args, dataset_of, save)}
    for phase in args.phases.split(","):  # in the order given
        phases[phase](report, args)
    report["seconds"] = round(report.get("seconds", 0.0) + time.perf_counter() - started, 1)
    save(report, args)
    print_tables(report, args)


def print_tables(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{args.suite}: {args.trials} trials per study, rungs {args.min_steps}..{args.max_steps} GAN steps")
    if "default_cas" in report:
        print(f"default GanConfig at {args.max_steps} steps on the held-out regime: CAS on val {report['default_cas']:.4f}")
    if report["held_out"]:
        print_held_out(report["held_out"])
        if args.suite == "fashion":
            print()
            for line in goal_summary(report["held_out"]):
                print(f"- {line}")
    if report.get("schedule"):
        from meta_schedule import print_schedule

        print_schedule(report["schedule"])
    print(f"\ntotal {report['seconds']:.0f} s")


def print_held_out(rows: list[dict[str, Any]]) -> None:
    print("\n| seed | cold best utility | cold: trials / s to it | warm best utility | warm: trials / s to cold best |")
    print("|---|---|---|---|---|")

    def fmt(reached: dict[str, Any]) -> str:
        return "not reached" if reached["trials"] is None else f"{reached['trials']} / {reached['seconds']}"

    for row in sorted(rows, key=lambda row: row["seed"]):
        cold, warm = row["cold"], row["warm"]
        print(f"| {row['seed']} | {cold['best_utility']:.4f} | {fmt(cold['reached'])} | {warm['best_utility']:.4f} | "
              f"{fmt(warm['reached'])} |")


if __name__ == "__main__":
    main()
