"""Run folders `data/runs/<run-id>/` and their `run.json` manifest."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ganaug import faults, runlock
from ganaug.errors import ConfigError, DataError, disk_error
from ganaug.store import ArtifactRef, atomic_write_json

# The catalog of a run folder's named paths: every other module asks `RunFolder` (or these names).
MANIFEST = "run.json"
DATASET_FILE = "dataset.parquet"
SYNTHETIC_FILE = "synthetic.parquet"
EVALUATION_FILE = "evaluation.parquet"
REPORT_FILE = "report.md"
GAN_DIR = "gan"
NAS_DIR = "nas"
TUNE_DIR = "tune"
CHECKPOINTS_DIR = "checkpoints"  # under gan/
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
GAN_METRICS_FILE = "metrics.parquet"
TRIALS_FILE = "trials.parquet"  # nas/ and tune/
NAS_BEST_FILE = "best.json"
NAS_STORAGE_FILES = {"journal": "study.journal", "sqlite": "study.db"}
PROXY_CORRELATION_FILE = "proxy_correlation.parquet"
FITNESS_PLOT = "fitness.png"
PARETO_PLOT = "pareto.png"
TUNE_STUDY_FILE = "study.db"
TUNE_SUMMARY_FILE = "tune.json"
TUNE_BEST_GAN = "best_gan.yaml"
TUNE_BEST_PIPELINE = "best_pipeline.yaml"
TUNE_TRIALS_DIR = "trials"
EVALUATION_PLOT = "evaluation_accuracy.png"
SAMPLES_GRID = "samples_real_vs_synthetic.png"
DEFAULT_CACHE_DIR = Path("data") / "cache"
DEFAULT_HISTORY = Path("data") / "history" / "gan_runs.parquet"  # one row per GAN training, across runs
_BOOKKEEPING = (MANIFEST, runlock.LOCK_FILE, runlock.HOLDER_FILE)
DEFAULT_RUNS_ROOT = Path("data") / "runs"
log = logging.getLogger(__name__)
_TRACKED_PACKAGES = ("ganaug", "torch", "numpy", "pandas", "pyarrow", "prefect", "scikit-learn", "pydantic", "optuna")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def new_run_id() -> str:
    """A sortable id: UTC time to the second plus a few random hex digits."""
    import secrets

    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StageRecord:
    """What a stage reports back to the manifest while it runs."""

    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, ArtifactRef] = field(default_factory=dict)  # found while the stage ran (e.g. the checkpoint sampled)


class RunFolder:
    """A run's folder and its manifest; every manifest update is an atomic rewrite."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def create(cls, runs_root: str | Path = DEFAULT_RUNS_ROOT, run_id: str | None = None) -> RunFolder:
        run_id = run_id or new_run_id()
        if not _RUN_ID.match(run_id):
            raise ConfigError(f"run id '{run_id}' must be letters, digits, '.', '_' or '-' (at most 128)")
        return cls.open(Path(runs_root) / run_id)

    @classmethod
    def open(cls, root: str | Path) -> RunFolder:
        """A run folder; nothing is written until the first stage starts."""
        return cls(root)

    def _ensure_manifest(self) -> bool:
        """Create the folder and `run.json` if missing; True when this call created them."""
        if self.manifest_path.exists():
            return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"cannot create run folder {self.root}: {err.strerror or err}") from None
        self.write_manifest(
            {
                "run_id": self.root.name,
                "created": _now(),
                "package_versions": package_versions(),
                "config": {},
                "stages": {},
            }
        )
        return True

    def _remove_if_only_manifest(self) -> None:
        """Remove the folder when it holds nothing but bookkeeping (manifest, lock files)."""
        if not self.root.is_dir():
            return
        if all(p.name in _BOOKKEEPING for p in self.root.iterdir()):
            for name in _BOOKKEEPING:
                (self.root / name).unlink(missing_ok=True)
            self.root.rmdir()

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def dataset(self) -> Path:
        """`dataset.parquet`: the ingested, split dataset."""
        return self.root / DATASET_FILE

    @property
    def gan(self) -> Path:
        """`gan/`: checkpoints, training metrics and sample grids."""
        return self.root / GAN_DIR

    @property
    def synthetic(self) -> Path:
        """`synthetic.parquet`: the labelled synthetic samples."""
        return self.root / SYNTHETIC_FILE

    @property
    def evaluation(self) -> Path:
        """`evaluation.parquet`: one row per protocol run."""
        return self.root / EVALUATION_FILE

    @property
    def report(self) -> Path:
        """`report.md`: the run's report."""
        return self.root / REPORT_FILE

    @property
    def nas(self) -> Path:
        """`nas/`: the architecture search's trials, best architecture and report."""
        return self.root / NAS_DIR

    @property
    def tune(self) -> Path:
        """`tune/`: the GAN tuning study, its trials and the best configs."""
        return self.root / TUNE_DIR

    @contextlib.contextmanager
    def lock(self, command: str | None = None) -> Iterator[None]:
        """Be the one writer of this folder for the block (re-entrant within a process).

        Raises `RunLockedError` naming the holder when another process writes here, and `DiskError` naming
        this folder when the disk is full or read-only (in taking the lock or in the block). Taking the lock
        removes temporary files that an interrupted writer left behind; a folder the lock had to
        create and nothing else was written to is removed again at the end.
        """
        existed = self.root.is_dir()
        try:
            with runlock.hold(self.root, command) as taken:
                if taken:
                    self.remove_orphaned_temporaries()
                try:
                    yield
                finally:
                    if taken and not existed:
                        self._remove_if_only_manifest_and_no_stage()
        except OSError as err:  # a full or read-only disk: one `DiskError` naming this folder, for every entry point
            translated = disk_error(err, self.root)
            if translated is None:
                raise
            raise translated from err

    def _remove_if_only_manifest_and_no_stage(self) -> None:
        if self.root.is_dir() and not self.manifest_path.exists():
            self._remove_if_only_manifest()

    def remove_orphaned_temporaries(self) -> list[Path]:
        """Delete `.<name>.*.tmp` files of atomic writes that never finished (call with the lock held)."""
        removed = [p for p in self.root.rglob(".*.tmp") if p.is_file()] if self.root.is_dir() else []
        for path in removed:
            path.unlink(missing_ok=True)
            log.warning("removed %s, left by an interrupted write", path)
        return removed

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"run manifest {self.manifest_path} does not exist") from None
        except json.JSONDecodeError as err:
            raise DataError(f"run manifest {self.manifest_path} is not valid JSON: {err}") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.manifest_path, manifest)

    def _update(self, stage: str, **fields: Any) -> None:
        manifest = self.read_manifest()
        manifest.setdefault("stages", {}).setdefault(stage, {}).update(fields)
        self.write_manifest(manifest)

    def add_notes(self, stage: str, notes: dict[str, Any]) -> None:
        """Add to a recorded stage's notes in run.json (e.g. how many of its tasks were cache hits)."""
        manifest = self.read_manifest()
        manifest["stages"][stage].setdefault("notes", {}).update(notes)
        self.write_manifest(manifest)

    def invalidate(self, stages: tuple[str, ...], reason: str) -> list[str]:
        """Mark finished `stages` in run.json as stale (their artifacts were made from an older input)."""
        manifest = self.read_manifest()
        marked = []
        for name in stages:
            entry = manifest.get("stages", {}).get(name)
            if entry and entry.get("status") == "completed":
                entry.update(status="stale", stale_reason=reason)
                marked.append(name)
        if marked:
            self.write_manifest(manifest)
            log.warning("run %s: %s are stale: %s", self.run_id, ", ".join(marked), reason)
        return marked

    @contextlib.contextmanager
    def stage(
        self, name: str, config: Any = None, inputs: dict[str, ArtifactRef] | None = None
    ) -> Iterator[StageRecord]:
        """Hold the folder's lock and record a stage's config, input hashes, status and timing in `run.json`.

        A stage that fails in a run folder it created leaves no folder behind; one stopped by Ctrl-C
        (or SIGTERM turned into KeyboardInterrupt) is recorded as "interrupted".
        """
        with self.lock():
            created = self._ensure_manifest()
            manifest = self.read_manifest()
            if config is not None:
                dumped = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
                manifest.setdefault("config", {})[name] = dumped
            manifest.setdefault("stages", {})[name] = {
                "status": "running",
                "started": _now(),
                "inputs": {key: {"path": ref.path, "content_hash": ref.content_hash}
                           for key, ref in (inputs or {}).items()},
            }
            self.write_manifest(manifest)
            faults.reached(f"{name}:started")
            record = StageRecord()
            started = time.perf_counter()
            try:
                yield record
                faults.reached(f"{name}:finished")  # outputs written, run.json not yet told
            except BaseException as err:
                if created:
                    self._remove_if_only_manifest()
                if self.manifest_path.exists():
                    interrupted = isinstance(err, KeyboardInterrupt)
                    self._update(name, status="interrupted" if interrupted else "failed", finished=_now(),
                                 seconds=round(time.perf_counter() - started, 3),
                                 error="interrupted" if interrupted else f"{type(err).__name__}: {err}")
                raise
            entry = self.read_manifest().get("stages", {}).get(name, {})
            inputs = {**entry.get("inputs", {}),
                      **{key: {"path": ref.path, "content_hash": ref.content_hash} for key, ref in record.inputs.items()}}
            self._update(
                name,
                status="completed",
                inputs=inputs,
                finished=_now(),
                seconds=round(time.perf_counter() - started, 3),
                outputs={key: ref.model_dump(mode="json", exclude_none=True) for key, ref in record.outputs.items()},
                notes=record.notes,
            )


_Paths = TypeVar("_Paths", bound="_StagePaths")


@dataclass(frozen=True)
class _StagePaths:
    """The files of one stage under `<out>/<folder>/`."""

    root: Path
    folder: ClassVar[str]

    @classmethod
    def under(cls: type[_Paths], out: str | Path) -> _Paths:
        return cls(Path(out) / cls.folder)


@dataclass(frozen=True)
class GanPaths(_StagePaths):
    """The files of one GAN training under `<out>/gan/`."""

    folder: ClassVar[str] = GAN_DIR

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT

    @property
    def metrics(self) -> Path:
        return self.root / GAN_METRICS_FILE

    @property
    def final_grid(self) -> Path:
        return self.root / "samples_final.png"

    def grid(self, step: int) -> Path:
        return self.root / f"samples_{step:07d}.png"


@dataclass(frozen=True)
class NasPaths(_StagePaths):
    """The files of one architecture search under `<out>/nas/`."""

    folder: ClassVar[str] = NAS_DIR

    @property
    def trials(self) -> Path:
        return self.root / TRIALS_FILE

    @property
    def best(self) -> Path:
        return self.root / NAS_BEST_FILE

    @property
    def proxy_correlation(self) -> Path:
        return self.root / PROXY_CORRELATION_FILE

    @property
    def fitness_plot(self) -> Path:
        return self.root / FITNESS_PLOT

    @property
    def pareto_plot(self) -> Path:
        return self.root / PARETO_PLOT

    def storage(self, kind: str) -> Path:
        return self.root / NAS_STORAGE_FILES[kind]


@dataclass(frozen=True)
class TunePaths(_StagePaths):
    """The files of one GAN tuning study under `<out>/tune/` (its trials train under `trials/<n>/`)."""

    folder: ClassVar[str] = TUNE_DIR

    @property
    def study(self) -> Path:
        return self.root / TUNE_STUDY_FILE

    @property
    def trials(self) -> Path:
        return self.root / TRIALS_FILE

    @property
    def summary(self) -> Path:
        return self.root / TUNE_SUMMARY_FILE

    @property
    def best_gan(self) -> Path:
        return self.root / TUNE_BEST_GAN

    @property
    def best_pipeline(self) -> Path:
        return self.root / TUNE_BEST_PIPELINE

    @property
    def trial_folders(self) -> Path:
        return self.root / TUNE_TRIALS_DIR

    def trial(self, number: int) -> Path:
        """The folder trial `number`'s GAN trains in (its gan/ files)."""
        return self.trial_folders / f"{number:04d}"
