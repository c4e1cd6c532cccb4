"""One runner per stage, shared by the CLI and the Prefect tasks.

A runner takes a `RunFolder`, holds its lock (through `RunFolder.stage`), resolves and verifies the
stage's inputs, calls the pure stage function and records `run.json` in one shape whatever the
entry point: `inputs` (path and content hash), `outputs` (artifact references) and `notes.result`
(the stage's typed result as JSON). It returns that typed result.

A run folder's artifacts are made from one another (dataset -> gan/ -> synthetic -> evaluation, nas/).
An input made from an older upstream artifact is stale: a stage refuses it and says what to rerun.
Re-ingesting a different dataset into a run marks every later stage in run.json as stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ganaug.data.config import IngestConfig
from ganaug.errors import ConfigError, DataError
from ganaug.runs import RunFolder, StageRecord
from ganaug.store import (ArtifactRef, DatasetRef, SyntheticRef, dataset_ref, file_hash, pool_size, read_dataset_meta,
                          read_origin)

if TYPE_CHECKING:
    from ganaug.evaluate import EvaluateConfig, EvaluationResult
    from ganaug.gan.pool import PseudoLabelled
    from ganaug.gan import GanConfig, GanResult
    from ganaug.generate import GenerateConfig
    from ganaug.nas.config import SearchConfig
    from ganaug.nas.results import SearchResult
    from ganaug.tune.config import TuneConfig
    from ganaug.tune.study import TuneResult

log = logging.getLogger(__name__)

DOWNSTREAM_OF_INGEST = ("train_gan", "generate", "evaluate", "search", "tune")


def outputs_of(result: Any) -> dict[str, ArtifactRef]:
    """The artifacts a stage result stands for, as run.json records them."""
    from ganaug.evaluate import EvaluationResult
    from ganaug.gan import GanResult
    from ganaug.nas.results import SearchResult
    from ganaug.tune.study import TuneResult

    if isinstance(result, ArtifactRef):
        return {result.kind: result}
    if isinstance(result, GanResult):
        outputs = {"checkpoint": ArtifactRef(path=result.checkpoint_path, content_hash=result.checkpoint_id,
                                             kind="gan-checkpoint")}
        if result.best_checkpoint_path and result.best_checkpoint_id:
            outputs["best_checkpoint"] = ArtifactRef(path=result.best_checkpoint_path,
                                                     content_hash=result.best_checkpoint_id, kind="gan-checkpoint")
        return outputs
    if isinstance(result, EvaluationResult):
        outputs = {"evaluation": ArtifactRef(path=result.evaluation_path, content_hash=file_hash(result.evaluation_path),
                                             rows=result.runs, kind="evaluation",
                                             results_hash=table_results_hash(result.evaluation_path))}
        if result.report_path is not None:
            outputs["report"] = ArtifactRef(path=result.report_path, content_hash=file_hash(result.report_path),
                                            kind="report", results_hash=report_results_hash(result.report_path))
        return outputs
    if isinstance(result, SearchResult):
        return {"trials": ArtifactRef(path=result.trials_path, content_hash=file_hash(result.trials_path),
                                      rows=result.n_trials, kind="nas_trials",
                                      results_hash=table_results_hash(result.trials_path)),
                "best": ArtifactRef(path=result.best_path, content_hash=file_hash(result.best_path), kind="nas_best")}
    if isinstance(result, TuneResult):
        return {"trials": ArtifactRef(path=result.trials_path, content_hash=file_hash(result.trials_path),
                                      rows=result.trials, kind="tune_trials",
                                      results_hash=table_results_hash(result.trials_path)),
                "best_gan": ArtifactRef(path=result.best_config_path, content_hash=file_hash(result.best_config_path),
                                        kind="tune_best_gan"),
                "best_pipeline": ArtifactRef(path=result.pipeline_config_path,
                                             content_hash=file_hash(result.pipeline_config_path), kind="tune_best_pipeline")}
    return {}


# measured durations: they differ between identical runs, so results hashes leave them out
TIMING_COLUMNS = frozenset({"seconds", "cost_seconds", "latency_ms", "finished_after"})


def table_results_hash(path: str | Path) -> str:
    """sha256 of a results table (evaluation.parquet, trials.parquet) without its timing columns.

    Equal between two runs with the same data, config and seed, wherever their run folders are, so run.json
    can show that a result was reproduced; the file's own hash (`content_hash`) also covers its timings.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    kept = table.select([name for name in table.column_names if name not in TIMING_COLUMNS])
    digest = hashlib.sha256(json.dumps(kept.schema.names).encode())
    digest.update(json.dumps(kept.to_pylist(), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def report_results_hash(path: str | Path) -> str:
    """sha256 of report.md without its title line, the one line that names the run folder."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return hashlib.sha256("\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).encode()).hexdigest()


def record_result(record: StageRecord, result: Any) -> None:
    """Record a finished stage's outputs and typed result (the one run.json shape of every entry point)."""
    record.outputs.update(outputs_of(result))
    record.notes["result"] = result.model_dump(mode="json") if isinstance(result, BaseModel) else result


def adopt_cached(run: RunFolder, result: Any) -> Any:
    """A cached stage result whose files lie in another run folder, with those files brought into `run`.

    Files are hard-linked (copied where the file system cannot link; every artifact is replaced by
    rename, never rewritten in place, so a link never sees the other run change) and the result names
    the local files, so every run folder stands alone: each stage command works on it by itself. The
    evaluation's report is written again for this run (its title names the run).
    """
    from ganaug.evaluate import EvaluationResult
    from ganaug.gan import GanResult

    if isinstance(result, DatasetRef | SyntheticRef):
        target = run.dataset if isinstance(result, DatasetRef) else run.synthetic
        _bring(Path(result.path), target)
        return result.model_copy(update={"path": str(target)})
    if isinstance(result, GanResult):
        source = Path(result.checkpoint_path).parent.parent  # <run>/gan/checkpoints/last.pt
        if source.resolve() == run.gan.resolve():
            return result
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):
                _bring(path, run.gan / path.relative_to(source))
        fields = ("checkpoint_path", "metrics_path", "grid_path", "best_checkpoint_path")
        return result.model_copy(update={name: str(run.gan / Path(value).relative_to(source))
                                         for name in fields if (value := getattr(result, name))})
    if isinstance(result, EvaluationResult):
        if Path(result.evaluation_path).resolve() == run.evaluation.resolve():
            return result
        from ganaug.report import write_report
        from ganaug.runs import EVALUATION_PLOT

        _bring(Path(result.evaluation_path), run.evaluation)
        write_report(run.root)  # from the local table and files, with this run's name
        plot = run.path(EVALUATION_PLOT)
        return result.model_copy(update={"evaluation_path": str(run.evaluation), "report_path": str(run.report),
                                         "plot_path": str(plot) if plot.is_file() else None})
    return result


def _bring(source: Path, target: Path) -> None:
    """Hard-link `source` to `target` (a copy where linking fails), replacing `target` by rename."""
    import os
    import shutil

    if target.exists() and target.resolve() == source.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.adopt.tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copy2(source, temporary)
    os.replace(temporary, target)


def record_cached(run: RunFolder, stage: str, config: Any, inputs: dict[str, ArtifactRef], result: Any) -> None:
    """Record in run.json a stage whose result was reused from the cache (its files may lie in another run folder)."""
    with run.stage(stage, config=config, inputs=inputs) as record:
        record_result(record, result)
        record.notes["cached"] = True
    log.info("%s: reused the cached result (same inputs and config)", stage)


def stage_outcome(run: RunFolder, stage: str) -> str:
    """'ran' or 'cached', with how many of its fanned-out tasks were cache hits, from run.json."""
    entry = run.read_manifest().get("stages", {}).get(stage, {})
    notes = entry.get("notes", {})
    outcome = "cached" if notes.get("cached") else entry.get("status", "not run")
    outcome = "ran" if outcome == "completed" else outcome
    tasks = notes.get("tasks")
    if not tasks:
        return outcome
    if outcome == "ran" and tasks["submitted"] and tasks["cached"] == tasks["submitted"]:
        outcome = "cached"  # every unit of work came from the cache; only the bookkeeping ran
    return f"{outcome} ({tasks['cached']}/{tasks['submitted']} tasks cached)"


def open_run(runs_root: Path, run_id: str | None, must_exist: bool = False) -> RunFolder:
    """The run folder `run_id` under `runs_root` (a new id when unset); `must_exist`: earlier stages ran there."""
    if not must_exist:
        return RunFolder.create(runs_root, run_id)
    if run_id is None:
        raise ConfigError("orchestration.run_id: name the run folder whose earlier stages this stage builds on")
    run = RunFolder.open(Path(runs_root) / run_id)
    if not run.manifest_path.is_file():
        raise DataError(f"run folder {run.root} has no run.json; run the earlier stages (or the pipeline) first")
    return run


def _recorded(run: RunFolder, stage: str) -> dict[str, Any]:
    entry = run.read_manifest().get("stages", {}).get(stage)
    if entry and entry.get("status") == "stale":
        raise DataError(f"run folder {run.root}: the output of stage '{stage}' is stale ({entry.get('stale_reason')})")
    if not entry or entry.get("status") != "completed":
        raise DataError(f"run folder {run.root}: stage '{stage}' has not completed there (see {run.manifest_path})")
    return entry


def recorded_dataset(run: RunFolder) -> DatasetRef:
    """The dataset the run's completed ingest stage recorded."""
    return DatasetRef.model_validate(_recorded(run, "ingest")["outputs"]["dataset"])


def recorded_gan(run: RunFolder) -> GanResult:
    """The GAN the run's completed train_gan stage recorded."""
    from ganaug.gan import GanResult

    return GanResult.model_validate(_recorded(run, "train_gan")["notes"]["result"])


def recorded_synthetic(run: RunFolder) -> SyntheticRef:
    """The synthetic table the run's completed generate stage recorded."""
    return SyntheticRef.model_validate(_recorded(run, "generate")["outputs"]["synthetic"])


def stage_inputs(dataset: DatasetRef, synthetic: SyntheticRef | None = None) -> dict[str, ArtifactRef]:
    """A stage's input artifacts as run.json records them."""
    return {"dataset": dataset, **({"synthetic": synthetic} if synthetic is not None else {})}


def run_ingest(run: RunFolder, cfg: IngestConfig) -> DatasetRef:
    """Ingest into the run folder; a dataset that differs from the one there makes the later stages stale."""
    from ganaug.data.ingest import ingest

    with run.stage("ingest", config=cfg) as record:
        previous = dataset_ref(run.dataset).content_hash if run.dataset.is_file() else None
        ref = ingest(cfg, run.root)
        record_result(record, ref)
        if previous is not None and previous != ref.content_hash:
            reason = (f"dataset.parquet was ingested again (content hash {previous[:12]} -> {ref.content_hash[:12]}); "
                      "rerun this stage")
            record.notes["invalidated"] = run.invalidate(DOWNSTREAM_OF_INGEST, reason)
    log.info("ingested %d images into %s (content hash %s)", ref.rows, ref.path, ref.content_hash[:12])
    return ref


def run_train(run: RunFolder, cfg: GanConfig, dataset: DatasetRef | None = None,
              callbacks: Iterable[Any] | Callable[..., Any] | None = None, origin: str = "train",
              cache_dir: Path | None = None, announce: Callable[[str], None] | None = None) -> GanResult:
    """Train the GAN on the run's dataset into gan/; `origin` labels its run-history record (train, flow).

    With `cfg.schedule` 'learned', the learning rates and schedule are learned from the run history
    when the training starts (a resumed training keeps its own); `announce` gets what was learned.

    With `cache_dir`, a training of the same inputs and config that was interrupted (in this or
    another run folder) is resumed from its last checkpoint (`ganaug.cache.resumable_training`).
    """
    from ganaug.cache import resumable_training, stage_key
    from ganaug.gan import train_gan
    from ganaug.gan.artifacts import Callbacks
    from ganaug.tune.history import HistoryRecorder, check_history, history_path
    from ganaug.tune.schedule import resolve_schedule

    dataset = dataset or run_dataset(run)
    history = history_path()
    check_history(history)  # a damaged history file stops the run before it trains, not after
    recorders = [HistoryRecorder(history, origin)] if history is not None else []
    resumable = (resumable_training(stage_key("train_gan", {"dataset": dataset, "cfg": cfg}), run.gan, cache_dir)
                 if cache_dir is not None else contextlib.nullcontext(False))
    with run.lock(), resumable as resume:
        cfg = cfg.model_copy(update={"resume": True}) if resume else cfg
        cfg = resolve_schedule(cfg, run.root, dataset, history, announce)
        with run.stage("train_gan", config=cfg, inputs=stage_inputs(dataset)) as record:
            pseudo = pool_pseudo_labels(dataset, cfg)
            result = train_gan(dataset, cfg, run.root, callbacks=[*Callbacks(callbacks).items, *recorders],
                               pseudo_labelled=pseudo)
            record_result(record, result)
            if pseudo is not None:
                record.notes["pseudo_labels"] = {"count": len(pseudo.labels), **pseudo.details}
    log.info("GAN trained to step %d in %.1f s on %s (%.0f images/s)", result.steps, result.seconds, result.device,
             result.images_per_second)
    return result


def pool_pseudo_labels(dataset: DatasetRef, cfg: GanConfig, teacher: EvaluateConfig | None = None) -> PseudoLabelled | None:
    """The pool images and labels the GAN trains on beside the labelled ones (GanConfig.pool), or None.

    The teacher is ganaug's self_training protocol with `teacher`'s settings (default EvaluateConfig()), seeded
    with the GAN's seed: its confidence threshold and number of rounds are chosen on val, and the
    pseudo-labels kept are those its best student trained on (none when the teacher alone was best).
    """
    import numpy as np
    import torch

    from ganaug.data.tensors import images_to_tensor
    from ganaug.evaluate import EvaluateConfig
    from ganaug.evaluate.data import load_protocol_data
    from ganaug.evaluate.self_training import fit_self_training
    from ganaug.gan.pool import PseudoLabelled

    if cfg.pool == "off":
        return None
    data = load_protocol_data(dataset, None) if pool_size(dataset.path) else None
    if data is None or data.pool_images is None:
        if cfg.pool == "pseudo_label":
            raise ConfigError(f"gan.pool is 'pseudo_label' but {dataset.path} has no unlabelled pool; ingest one "
                              "(--unlabelled PATH or --labels-per-class K) or set gan.pool to auto or off")
        return None
    teacher = teacher or EvaluateConfig(train={"device": cfg.device})
    labelled = (images_to_tensor(data.train_images), torch.from_numpy(data.train_labels))
    fit = fit_self_training(*labelled, data, teacher, int(cfg.seed % 2**31),
                            teacher.train.model_copy(update={"steps": teacher.train.steps_for(len(data.train_labels))}))
    chosen = fit.pool_labels if fit.pool_labels is not None else np.full(len(data.pool_images), -1)
    positions = np.flatnonzero(chosen >= 0)
    log.info("teacher (self_training) labelled %d of %d pool images for the GAN", len(positions), len(chosen))
    return PseudoLabelled(positions, chosen[positions], {"teacher": "self_training", "pool": len(chosen),
                                                         "teacher_val_accuracy": round(fit.trained.best_val_accuracy, 6),
                                                         **fit.details})


def run_generate(run: RunFolder, cfg: GenerateConfig, checkpoint: Path | None = None,
                 dataset: DatasetRef | None = None) -> SyntheticRef:
    """Sample synthetic.parquet from the run's GAN (or `checkpoint`); records the checkpoint actually sampled."""
    from ganaug.gan.artifacts import GanPaths
    from ganaug.generate import generate_from_checkpoint

    dataset = dataset or run_dataset(run)
    checkpoint = Path(checkpoint) if checkpoint is not None else GanPaths.under(run.root).last_checkpoint
    with run.stage("generate", config=cfg, inputs=stage_inputs(dataset)) as record:
        ref = generate_from_checkpoint(checkpoint, dataset, cfg, run.root)
        selection = read_dataset_meta(ref.path).extra.get("checkpoint_selection") or {}
        record.inputs["checkpoint"] = ArtifactRef(path=str(checkpoint.with_name(str(selection.get("file", checkpoint.name)))),
                                                  content_hash=str(selection.get("checkpoint_id", "")), kind="gan-checkpoint")
        for member in selection.get("checkpoints") or []:  # average/ensemble: every combined checkpoint, newest last
            key = "checkpoint" if member["file"] == selection.get("file") else f"checkpoint_{Path(member['file']).stem}"
            record.inputs[key] = ArtifactRef(path=str(checkpoint.with_name(member["file"])), content_hash=str(member["checkpoint_id"]),
                                             kind="gan-checkpoint")
        record_result(record, ref)
    log.info("generated %d synthetic images into %s", ref.rows, ref.path)
    return ref


def run_evaluate(run: RunFolder, cfg: EvaluateConfig, synthetic: Path | SyntheticRef | None = None,
                 executor: Any = None, dataset: DatasetRef | None = None,
                 rows: list[dict[str, Any]] | None = None) -> EvaluationResult:
    """Evaluate the run's (fresh) synthetic data; writes evaluation.parquet and report.md together.

    `rows`: the protocol runs, when the caller ran them already (the flows fan them out as cached tasks).
    """
    from ganaug.evaluate import evaluate, finish_evaluation, prepare_evaluation
    from ganaug.report import write_report

    dataset = dataset or run_dataset(run)
    synthetic_ref = synthetic_input(run, dataset, synthetic, needed=cfg.needs_synthetic())
    with run.stage("evaluate", config=cfg, inputs=stage_inputs(dataset, synthetic_ref)) as record:
        if rows is None:
            result = evaluate(dataset, synthetic_ref, cfg, run.root, executor=executor, report=write_report)
        else:
            data, _ = prepare_evaluation(dataset, synthetic_ref, cfg)
            seconds = sum(float(row.get("seconds", 0.0)) for row in rows)
            result = finish_evaluation(rows, data, dataset, synthetic_ref, cfg, run.root, seconds, report=write_report)
        record_result(record, result)
    return result


def run_search(run: RunFolder, cfg: SearchConfig, synthetic: Path | SyntheticRef | None = None, executor: Any = None,
               callbacks: Any = None, dataset: DatasetRef | None = None) -> SearchResult:
    """Search classifier architectures on the run's data into nas/."""
    from ganaug.nas.data import needs_synthetic
    from ganaug.nas.stage import search

    dataset = dataset or run_dataset(run)
    synthetic_ref = synthetic_input(run, dataset, synthetic, needed=needs_synthetic(cfg) is not None)
    with run.stage("search", config=cfg, inputs=stage_inputs(dataset, synthetic_ref)) as record:
        result = search(dataset, synthetic_ref, cfg, run.root, executor=executor, callbacks=callbacks)
        record_result(record, result)
    return result


def tune_config_hash(cfg: TuneConfig) -> str:
    """sha256 of what a tuning's result depends on: every option bar `resume`, with the run history's location resolved."""
    from ganaug.tune.history import history_path

    dumped = {key: value for key, value in cfg.model_dump(mode="json").items() if key != "resume"}
    dumped["history"] = str(history_path(cfg.history))
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()


def fresh_result(run: RunFolder, stage: str, config_hash: str, inputs: dict[str, ArtifactRef]) -> dict[str, Any] | None:
    """The result run.json records for `stage` when it is fresh: completed with this config hash and these inputs'
    content hashes, and every output it recorded still the file it wrote; else None."""
    if not run.manifest_path.is_file():
        return None
    entry = run.read_manifest().get("stages", {}).get(stage) or {}
    notes = entry.get("notes") or {}
    if entry.get("status") != "completed" or notes.get("config_hash") != config_hash or "result" not in notes:
        return None
    recorded = entry.get("inputs") or {}
    if any((recorded.get(key) or {}).get("content_hash") != ref.content_hash for key, ref in inputs.items()):
        return None
    for output in (entry.get("outputs") or {}).values():
        path = Path(output["path"])
        if not path.is_file() or file_hash(path) != output["content_hash"]:
            return None
    return dict(notes["result"])


def run_tune(run: RunFolder, cfg: TuneConfig, dataset: DatasetRef | None = None, executor: Any = None,
             on_trial: Callable[[dict[str, Any]], None] | None = None,
             announce: Callable[[str], None] | None = None) -> TuneResult:
    """Tune the GAN on the run's dataset into tune/; a finished tuning of the same dataset and config is reused.

    Fresh, and not run again, when run.json records a completed tune of this dataset (content hash) and config
    (`tune_config_hash`) whose outputs are still the files it wrote (`fresh_result`); `announce` is told so.
    `resume: false` always runs: it replaces the stored study. A run history that grew since does not make a
    finished tuning stale: only a new study is warm-started from it.
    """
    from ganaug.tune.study import TuneResult, tune_gan

    dataset = dataset or run_dataset(run)
    config_hash = tune_config_hash(cfg)
    with run.lock():
        recorded = fresh_result(run, "tune", config_hash, stage_inputs(dataset)) if cfg.resume else None
        if recorded is not None:
            result = TuneResult.model_validate(recorded)
            (announce or log.info)(f"tune: the study in {Path(result.trials_path).parent} is fresh (same dataset and "
                                   "config); reusing it (resume=false runs it again)")
            return result
        with run.stage("tune", config=cfg, inputs=stage_inputs(dataset)) as record:
            result = tune_gan(dataset, cfg, run.root, executor=executor, on_trial=on_trial)
            record_result(record, result)
            record.notes["config_hash"] = config_hash
    log.info("tuning finished: best trial %d, utility %.4f", result.best_trial, result.best_utility)
    return result


def run_dataset(run: RunFolder) -> DatasetRef:
    """The run's dataset.parquet (footer only; the content is verified when a stage reads it)."""
    if not run.dataset.is_file():
        raise DataError(f"run folder {run.root} has no {run.dataset.name}; run `ganaug ingest` first")
    return dataset_ref(run.dataset)


def synthetic_input(run: RunFolder, dataset: DatasetRef, given: Path | SyntheticRef | None = None,
                    needed: bool = True) -> SyntheticRef | None:
    """The synthetic table a stage reads: `given`, else the run's synthetic.parquet if present (else None).

    A `SyntheticRef` is taken as it is (its caller resolved it). The run's own synthetic.parquet must
    have been sampled for the run's current dataset and from the GAN checkpoint that gan/ holds now.
    A stale one is refused (`DataError` saying what to rerun) when the stage needs it, and left out
    with a warning when it is optional.
    """
    if isinstance(given, SyntheticRef):
        return given
    path = Path(given) if given is not None else run.synthetic
    if not path.is_file():
        if given is not None:
            raise DataError(f"--synthetic {given} does not exist")
        return None
    if path.resolve() == run.synthetic.resolve():
        try:
            check_synthetic_fresh(run, dataset, path)
        except DataError as err:
            if needed or given is not None:
                raise
            log.warning("%s; left out", err)
            return None
    else:
        check_given_synthetic(run, dataset, path)
    return SyntheticRef(**dataset_ref(path).model_dump(exclude={"kind"}))


def check_given_synthetic(run: RunFolder, dataset: DatasetRef, path: Path) -> None:
    """Refuse a synthetic table from elsewhere that was sampled for another dataset, or is a stale copy of this run's.

    A table sampled for another dataset may use label ids that mean other classes here. A copy of a table
    that this run sampled (its metadata names the run) must still match the GAN checkpoints the run holds.
    A table from another run over the same dataset is taken as it is (comparing GANs is a fair use).
    """
    if read_origin(path).get("run_id") == run.run_id:
        check_synthetic_fresh(run, dataset, path)
        return
    made_for = str(read_dataset_meta(path).extra.get("dataset_hash") or "")
    if made_for and made_for != dataset.content_hash:
        raise DataError(
            f"{path} was sampled for a dataset with content hash {made_for[:12]}, not for {run.dataset} "
            f"({dataset.content_hash[:12]}); its label ids may mean other classes. Generate synthetic data for this "
            f"dataset (`ganaug train` and `ganaug generate --run-dir {run.root}`)"
        )


def check_synthetic_fresh(run: RunFolder, dataset: DatasetRef, path: Path) -> None:
    """Raise `DataError` when `path` was made from another dataset or another GAN than the run holds now."""
    extra = read_dataset_meta(path).extra
    made_for = str(extra.get("dataset_hash") or "")
    if made_for and made_for != dataset.content_hash:
        raise DataError(
            f"{path} is stale: it was sampled for a dataset with content hash {made_for[:12]}, but {run.dataset} "
            f"now has {dataset.content_hash[:12]} (ingested again); rerun `ganaug train` and `ganaug generate`"
        )
    selection = extra.get("checkpoint_selection") or {}
    sampled_id = str(extra.get("checkpoint_id") or "")
    name = selection.get("file")
    if not (sampled_id and name and run.gan.is_dir()):
        return
    from ganaug.gan.artifacts import GanPaths

    # average/ensemble: every combined checkpoint must still be the one sampled
    sampled = [(m["file"], str(m["checkpoint_id"])) for m in selection.get("checkpoints") or []] or [(name, sampled_id)]
    for member, member_id in sampled:
        checkpoint = GanPaths.under(run.root).checkpoints / str(member)
        if not checkpoint.is_file():
            raise DataError(f"{path} is stale: the checkpoint it was sampled from ({checkpoint}) is gone (the GAN was "
                            "trained again); rerun `ganaug generate`")
        if checkpoint_id(checkpoint) != member_id:
            raise DataError(f"{path} is stale: it was sampled from checkpoint {member_id[:12]}, but {checkpoint} is now "
                            "another one (the GAN was trained again); rerun `ganaug generate`")


def checkpoint_id(path: Path) -> str:
    """The content id of a GAN checkpoint, as `checkpoint_id` columns and GAN results record it."""
    from ganaug.gan.checkpoint import content_hash, read_checkpoint

    return content_hash(read_checkpoint(path))
