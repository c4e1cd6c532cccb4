"""What the CLI and the Prefect tasks share around the stage functions: resolve and verify a run's inputs.

A run folder's artifacts are made from one another (dataset -> gan/ -> synthetic -> evaluation, nas/).
An input made from an older upstream artifact is stale: a stage refuses it and says what to rerun.
Re-ingesting a different dataset into a run marks every later stage in run.json as stale.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ganaug.data.config import IngestConfig
from ganaug.errors import DataError
from ganaug.runs import RunFolder
from ganaug.store import DatasetRef, SyntheticRef, dataset_ref, read_dataset_meta

log = logging.getLogger(__name__)

DOWNSTREAM_OF_INGEST = ("train_gan", "generate", "evaluate", "search")


def run_ingest(run: RunFolder, cfg: IngestConfig) -> DatasetRef:
    """Ingest into the run folder; a dataset that differs from the one there makes the later stages stale."""
    from ganaug.data.ingest import ingest

    with run.stage("ingest", config=cfg) as record:
        previous = dataset_ref(run.dataset).content_hash if run.dataset.is_file() else None
        ref = ingest(cfg, run.root)
        record.outputs["dataset"] = ref
        if previous is not None and previous != ref.content_hash:
            reason = (f"dataset.parquet was ingested again (content hash {previous[:12]} -> {ref.content_hash[:12]}); "
                      "rerun this stage")
            record.notes["invalidated"] = run.invalidate(DOWNSTREAM_OF_INGEST, reason)
    return ref


def run_dataset(run: RunFolder) -> DatasetRef:
    """The run's dataset.parquet (footer only; the content is verified when a stage reads it)."""
    if not run.dataset.is_file():
        raise DataError(f"run folder {run.root} has no {run.dataset.name}; run `ganaug ingest` first")
    return dataset_ref(run.dataset)


def synthetic_input(run: RunFolder, dataset: DatasetRef, given: Path | None = None,
                    needed: bool = True) -> SyntheticRef | None:
    """The synthetic table a stage reads: `given`, else the run's synthetic.parquet if present (else None).

    The run's own synthetic.parquet must have been sampled for the run's current dataset and from
    the GAN checkpoint that gan/ holds now. A stale one is refused (`DataError` saying what to rerun)
    when the stage needs it, and left out with a warning when it is optional.
    """
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
    return SyntheticRef(**dataset_ref(path).model_dump(exclude={"kind"}))


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

    checkpoint = GanPaths.under(run.root).checkpoints / str(name)
    if not checkpoint.is_file():
        raise DataError(f"{path} is stale: the checkpoint it was sampled from ({checkpoint}) is gone (the GAN was "
                        "trained again); rerun `ganaug generate`")
    if checkpoint_id(checkpoint) != sampled_id:
        raise DataError(f"{path} is stale: it was sampled from checkpoint {sampled_id[:12]}, but {checkpoint} is now "
                        "another one (the GAN was trained again); rerun `ganaug generate`")


def checkpoint_id(path: Path) -> str:
    """The content id of a GAN checkpoint, as `checkpoint_id` columns and GAN results record it."""
    from ganaug.gan.checkpoint import content_hash, read_checkpoint

    return content_hash(read_checkpoint(path))
