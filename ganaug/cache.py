"""Cache keys built from what a stage's result depends on, and checks that a cached result is still usable.

A stage's key hashes its name, the ganaug version, the content hashes of its input artifacts
(not their paths) and its config. Output folders, callbacks, executors and display labels never
enter the key, so a new run folder with the same inputs and config reuses the finished stage.
The flows turn a key into a Prefect cache policy; nothing here needs Prefect.

An interrupted GAN training leaves an in-flight record under the cache folder, keyed like the
finished stage: the next training of the same inputs and config, in any run folder, resumes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

import ganaug
from ganaug.configbase import StrictModel
from ganaug.store import ArtifactRef, atomic_write_json, file_hash

log = logging.getLogger(__name__)
# Parameter names that say where to write, how to run or what to show, never what is computed.
NOT_IN_KEY = frozenset({"out", "run_dir", "callbacks", "executor", "cache_dir", "label"})
# Config options that change how a stage gets to its result, not the result itself.
CONFIG_FIELDS_NOT_IN_KEY = frozenset({"resume"})


def fingerprint(value: Any) -> Any:
    """A JSON-able stand-in for `value` that changes exactly when the computed result may change."""
    if isinstance(value, ArtifactRef):
        return {"kind": value.kind, "content_hash": value.content_hash, "schema_version": value.schema_version}
    if isinstance(value, StrictModel):
        dumped = value.model_dump(mode="json")
        return {k: v for k, v in sorted(dumped.items()) if k not in CONFIG_FIELDS_NOT_IN_KEY}
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        if "checkpoint_id" in fields:  # a trained GAN is identified by its weights, not where they lie
            return {"checkpoint_id": value.checkpoint_id}
        return {name: fingerprint(getattr(value, name)) for name in fields if not _is_location(name)}
    if isinstance(value, np.ndarray):
        return _array_print(value)
    if isinstance(value, functools.partial):
        return {"partial": fingerprint(value.func), "args": fingerprint(value.args), "keywords": fingerprint(value.keywords)}
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return _array_print(value.detach().cpu().contiguous().numpy())
    if type(value).__name__ == "FrozenTrial":  # optuna: what a pruner judges by, not timestamps
        return {"number": value.number, "state": value.state.name, "values": value.values,
                "params": fingerprint(value.params), "intermediate": fingerprint(value.intermediate_values)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: fingerprint(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): fingerprint(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date)):
        return None  # timestamps say when, not what
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "__dict__"):  # e.g. an optuna pruner: its type and settings
        return {"type": f"{type(value).__module__}.{type(value).__qualname__}", **fingerprint(vars(value))}
    return repr(value)


def _array_print(array: np.ndarray) -> dict[str, Any]:
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    return {"array": digest, "dtype": str(array.dtype), "shape": list(array.shape)}


def _is_location(name: str) -> bool:
    return name in {"path", "out", "seconds", "device"} or name.endswith(("_path", "_dir", "_seconds"))


def input_files_fingerprint(paths: Iterable[Path | None]) -> list[Any]:
    """Content of input files or folders (relative names + sha256), so edited data misses the cache."""
    prints: list[Any] = []
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        if path.is_file():
            prints.append([path.name, file_hash(path)])
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            digest = hashlib.sha256()
            for file in files:
                digest.update(f"{file.relative_to(path).as_posix()}\0{file_hash(file)}\n".encode())
            prints.append([path.name, digest.hexdigest(), len(files)])
        else:
            prints.append([str(path), "missing"])
    return prints


def stage_key(stage: str, inputs: dict[str, Any]) -> str:
    """The cache key of `stage` run on `inputs` (parameter name -> value)."""
    payload = {
        "stage": stage,
        "ganaug": ganaug.__version__,
        "inputs": {name: fingerprint(value) for name, value in sorted(inputs.items()) if name not in NOT_IN_KEY},
    }
    ingest_cfg = inputs.get("cfg")
    if stage == "ingest" and ingest_cfg is not None:
        payload["input_files"] = input_files_fingerprint([ingest_cfg.path, ingest_cfg.labels_path])
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return f"{stage}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


# ---------------------------------------------------------------- is a cached result still usable?


def referenced_files(result: Any) -> list[Path]:
    """Files a stage result points to: artifact refs and path-valued fields, recursively."""
    found: list[Path] = []
    if isinstance(result, ArtifactRef):
        found.append(result.file)
    elif isinstance(result, BaseModel):
        for name in type(result).model_fields:
            value = getattr(result, name)
            if isinstance(value, (str, Path)) and _is_path_field(name):
                if str(value):
                    found.append(Path(value))
            else:
                found.extend(referenced_files(value))
    elif isinstance(result, dict):
        for value in result.values():
            found.extend(referenced_files(value))
    elif isinstance(result, (list, tuple)):
        for value in result:
            found.extend(referenced_files(value))
    return found


def _is_path_field(name: str) -> bool:
    return name == "path" or name.endswith(("_path", "_dir", "_file"))


def result_intact(result: Any) -> tuple[bool, str]:
    """Whether every file `result` refers to exists and every Parquet ref still has its content hash."""
    for path in referenced_files(result):
        if not path.exists():
            return False, f"{path} no longer exists"
    for ref in _refs(result):
        if ref.file.suffix == ".parquet":
            stored = _stored_content_hash(ref.file)
            if stored is not None and stored != ref.content_hash:
                return False, f"{ref.path} changed since it was cached"
    return True, ""


def _refs(result: Any) -> list[ArtifactRef]:
    if isinstance(result, ArtifactRef):
        return [result]
    if isinstance(result, BaseModel):
        return [ref for name in type(result).model_fields for ref in _refs(getattr(result, name))]
    if isinstance(result, (list, tuple)):
        return [ref for value in result for ref in _refs(value)]
    if isinstance(result, dict):
        return [ref for value in result.values() for ref in _refs(value)]
    return []


def _stored_content_hash(path: Path) -> str | None:
    import pyarrow.parquet as pq

    from ganaug.store import META_KEY

    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    except (OSError, ValueError):
        return "unreadable"
    if raw is None:
        return None
    return json.loads(raw).get("content_hash")


def result_storage_path(cache_dir: Path) -> Path:
    """Absolute folder of persisted results (absolute so Dask workers and later runs agree)."""
    return Path(os.path.abspath(cache_dir))


# ---------------------------------------------------------------- interrupted GAN trainings


def in_flight_record(key: str, cache_dir: Path) -> Path:
    return result_storage_path(cache_dir) / "in-flight" / f"{key}.json"


def adopt_interrupted_training(key: str, gan_dir: Path, cache_dir: Path) -> Path | None:
    """If a training with this key was interrupted (here or in another run folder), make `gan_dir` resume it.

    The in-flight record names the gan/ folder of the unfinished training. Its files are copied into
    `gan_dir` when they lie elsewhere; the GAN stage then resumes from checkpoints/last.pt.
    """
    from ganaug.gan.artifacts import GanPaths

    record = in_flight_record(key, cache_dir)
    if not record.is_file():
        return None
    try:
        previous = Path(json.loads(record.read_text(encoding="utf-8"))["gan_dir"])
    except (ValueError, KeyError, OSError):
        return None
    if not GanPaths(previous).last_checkpoint.is_file():
        return None
    if gan_dir.resolve() != previous.resolve():
        if gan_dir.exists():
            shutil.rmtree(gan_dir)
        shutil.copytree(previous, gan_dir)
    return previous


@contextlib.contextmanager
def resumable_training(key: str, gan_dir: Path, cache_dir: Path) -> Iterator[bool]:
    """Record `gan_dir` as the in-flight training of `key` for the block, after adopting an interrupted one.

    Yields whether the training should resume; the record is removed only when the block succeeds.
    """
    previous = adopt_interrupted_training(key, gan_dir, cache_dir)
    if previous is not None:
        log.info("resuming an interrupted GAN training of the same inputs and config from %s", previous)
    record = in_flight_record(key, cache_dir)
    atomic_write_json(record, {"gan_dir": str(gan_dir.resolve())})
    yield previous is not None
    record.unlink(missing_ok=True)
