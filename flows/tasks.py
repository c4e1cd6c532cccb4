"""Prefect tasks: thin wrappers that call the ganaug stage functions and record them in run.json.

Every stage task persists its (small, JSON) result under the configured cache folder with a key from
`flows.caching.stage_key`, so a rerun with the same inputs and config is a cache hit. Retries cover
transient I/O only: a `GanAugError` (bad input, divergence, corrupt checkpoint) fails at once.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from flows.artifacts import GanProgress
from flows.caching import StagePolicy, stage_key
from ganaug.data.config import IngestConfig
from ganaug.errors import GanAugError
from ganaug.evaluate import (
    EvaluateConfig,
    EvaluationResult,
    RunSpec,
    finish_evaluation,
    prepare_evaluation,
    run_protocol,
)
from ganaug.evaluate.data import ProtocolData
from ganaug.gan import GanConfig, GanResult
from ganaug.gan.artifacts import GanPaths
from ganaug.generate import GenerateConfig
from ganaug.runner import record_result, run_generate, run_train
from ganaug.runs import RunFolder
from ganaug.store import ArtifactRef, DatasetRef, SyntheticRef, atomic_write_json

TRANSIENT_ERRORS = (OSError, TimeoutError, ConnectionError)


def transient_only(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition: only I/O-type failures are retried; ganaug's own errors never are."""
    error = state.result(raise_on_failure=False)
    if isinstance(error, GanAugError):
        return False
    return isinstance(error, TRANSIENT_ERRORS)


STAGE_TASK_OPTIONS: dict[str, Any] = {
    "persist_result": True,
    "result_serializer": "json",
    "retries": 2,
    "retry_delay_seconds": 2,
    "retry_condition_fn": transient_only,
}


# ---------------------------------------------------------------- ingest, train, generate


@task(name="ingest", cache_policy=StagePolicy(), **STAGE_TASK_OPTIONS)
def ingest_task(cfg: IngestConfig, out: Path) -> DatasetRef:
    """Read and split the labelled input into out/dataset.parquet."""
    from ganaug.runner import run_ingest

    ref = run_ingest(RunFolder.open(out), cfg)
    get_run_logger().info("ingested %d images into %s (content hash %s)", ref.rows, ref.path, ref.content_hash[:12])
    return ref


@task(name="train_gan", cache_policy=StagePolicy(), **STAGE_TASK_OPTIONS)
def train_gan_task(dataset: DatasetRef, cfg: GanConfig, out: Path, cache_dir: Path) -> GanResult:
    """Train the GAN into out/gan/, resuming an interrupted training of the same inputs and config."""
    logger = get_run_logger()
    key = stage_key("train_gan", {"dataset": dataset, "cfg": cfg})
    resumed_from = adopt_interrupted_training(key, Path(out), Path(cache_dir))
    if resumed_from is not None:
        logger.info("resuming an interrupted GAN training of the same inputs and config from %s", resumed_from)
        cfg = cfg.model_copy(update={"resume": True})
    run = RunFolder.open(out)
    with run.lock():
        _mark_in_flight(key, Path(out), Path(cache_dir))
        result = run_train(run, cfg, dataset, callbacks=[GanProgress()], origin="flow")
    _in_flight_record(key, Path(cache_dir)).unlink(missing_ok=True)
    logger.info("GAN trained to step %d in %.1f s on %s (%.0f images/s)", result.steps, result.seconds,
                result.device, result.images_per_second)
    return result


def _in_flight_record(key: str, cache_dir: Path) -> Path:
    return cache_dir / "in-flight" / f"{key}.json"


def _mark_in_flight(key: str, out: Path, cache_dir: Path) -> None:
    atomic_write_json(_in_flight_record(key, cache_dir), {"gan_dir": str(GanPaths.under(out).root.resolve())})


def adopt_interrupted_training(key: str, out: Path, cache_dir: Path) -> Path | None:
    """If a training with this key was interrupted (here or in another run folder), make out/gan/ resume it.

    The in-flight record names the gan/ folder of the unfinished training. Its files are copied into
    this run's gan/ when they lie elsewhere; the GAN stage then resumes from checkpoints/last.pt.
    """
    record = _in_flight_record(key, cache_dir)
    if not record.is_file():
        return None
    try:
        previous = Path(json.loads(record.read_text(encoding="utf-8"))["gan_dir"])
    except (ValueError, KeyError, OSError):
        return None
    if not GanPaths(previous).last_checkpoint.is_file():
        return None
    target = GanPaths.under(out).root
    if target.resolve() != previous.resolve():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(previous, target)
    return previous


@task(name="generate", cache_policy=StagePolicy(), **STAGE_TASK_OPTIONS)
def generate_task(gan: GanResult, dataset: DatasetRef, cfg: GenerateConfig, out: Path) -> SyntheticRef:
    """Sample labelled synthetic images into out/synthetic.parquet."""
    ref = run_generate(RunFolder.open(out), cfg, Path(gan.checkpoint_path), dataset)
    get_run_logger().info("generated %d synthetic images into %s", ref.rows, ref.path)
    return ref


# ---------------------------------------------------------------- evaluation: one task per protocol run


@functools.lru_cache(maxsize=4)
def protocol_data(dataset: DatasetRef, synthetic: SyntheticRef | None, cfg_json: str) -> ProtocolData:
    """Inputs of the protocol runs, loaded once per process (threads and Dask workers share it)."""
    data, _ = prepare_evaluation(dataset, synthetic, EvaluateConfig.model_validate_json(cfg_json))
    return data


def _protocol_run_name() -> str:
    from prefect.runtime import task_run

    spec = task_run.parameters["spec"]
    ratio = f" x{spec.ratio:g}" if spec.ratio is not None else ""
    kept = f" {spec.train_fraction:.0%} real" if spec.train_fraction < 1.0 else ""
    return f"{spec.protocol}{ratio}{kept} seed {spec.seed}"


@task(name="protocol_run", cache_policy=StagePolicy(), persist_result=True, result_serializer="json",
      task_run_name=_protocol_run_name)
def protocol_run_task(spec: RunSpec, dataset: DatasetRef, synthetic: SyntheticRef | None, cfg: EvaluateConfig) -> dict[str, Any]:
    """Train and score one (regime, protocol, ratio, seed) classifier on the real test split."""
    return run_protocol(spec, protocol_data(dataset, synthetic, cfg.model_dump_json()), cfg)


@task(name="evaluation_report", cache_policy=StagePolicy(), **STAGE_TASK_OPTIONS)
def evaluation_report_task(
    rows: list[dict[str, Any]], dataset: DatasetRef, synthetic: SyntheticRef | None, cfg: EvaluateConfig, out: Path
) -> EvaluationResult:
    """Generative metrics, evaluation.parquet, the plot and report.md from the finished protocol runs."""
    data = protocol_data(dataset, synthetic, cfg.model_dump_json())
    run = RunFolder.open(out)
    inputs: dict[str, ArtifactRef] = {"dataset": dataset}
    if synthetic is not None:
        inputs["synthetic"] = synthetic
    with run.stage("evaluate", config=cfg, inputs=inputs) as record:
        seconds = sum(float(row.get("seconds", 0.0)) for row in rows)
        result = finish_evaluation(rows, data, dataset, synthetic, cfg, Path(out), seconds)
        record_result(record, result)
    return result


# ---------------------------------------------------------------- fan-out of library work (NAS trials)


def work_name(work: Callable[..., Any]) -> str:
    """A readable task name for a unit of library work: the function's or the callable class's name."""
    name = getattr(work, "__name__", None) or type(work).__name__
    return {"TrialRunner": "nas_trial", "score_on_test": "nas_final_test"}.get(name, name)


@functools.cache
def _fan_out_task(name: str) -> Task[..., Any]:
    def call(work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return work(*args, **kwargs)

    call.__name__ = call.__qualname__ = name  # names the task in the UI and its key on a Dask scheduler
    return task(call, name=name, task_run_name=functools.partial(_fan_out_run_name, name),
                cache_policy=StagePolicy(stage=name), persist_result=True, result_serializer="pickle")


def _fan_out_run_name(name: str) -> str:
    """`nas_trial 16k3max-32k5none | batch relu ...`: the task's name and the architecture it trains."""
    from prefect.runtime import task_run

    from ganaug.classifier import ArchSpec
    from ganaug.nas.report import arch_summary

    args = task_run.parameters.get("args") or ()
    return f"{name} {arch_summary(args[0])}" if args and isinstance(args[0], ArchSpec) else name


def fan_out_task(work: Callable[..., Any]) -> Task[..., Any]:
    """A cached task that runs `work(*args, **kwargs)`; its key is the fingerprint of work and arguments."""
    return _fan_out_task(work_name(work))
