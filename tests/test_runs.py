"""Run folders and the run.json manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganaug.config import IngestConfig
from ganaug.errors import ConfigError, DataError
from ganaug.runs import RunFolder
from ganaug.store import ArtifactRef


def test_manifest_records_config_versions_inputs_outputs_and_timing(tmp_path: Path) -> None:
    run = RunFolder.create(tmp_path, "r1")
    source = ArtifactRef(path="in.parquet", content_hash="abc")
    with run.stage("ingest", config=IngestConfig(seed=3), inputs={"source": source}) as record:
        record.outputs["dataset"] = ArtifactRef(path="out.parquet", content_hash="def", rows=2)
    manifest = run.read_manifest()
    assert manifest["config"]["ingest"]["seed"] == 3
    assert {"python", "torch", "numpy", "pyarrow"} <= set(manifest["package_versions"])
    stage = manifest["stages"]["ingest"]
    assert stage["status"] == "completed" and stage["seconds"] >= 0
    assert stage["inputs"]["source"]["content_hash"] == "abc"
    assert stage["outputs"]["dataset"]["content_hash"] == "def"


def test_failed_stage_in_new_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError), RunFolder.create(tmp_path, "r2").stage("ingest"):
        raise DataError("bad input")
    assert not (tmp_path / "r2").exists()


def test_failed_stage_in_existing_run_is_recorded(tmp_path: Path) -> None:
    run = RunFolder.create(tmp_path, "r3")
    with run.stage("ingest"):
        (run.root / "dataset.parquet").write_bytes(b"x")
    with pytest.raises(DataError), run.stage("train"):
        raise DataError("bad input")
    stage = run.read_manifest()["stages"]["train"]
    assert stage["status"] == "failed" and "bad input" in stage["error"]


def test_bad_run_id() -> None:
    with pytest.raises(ConfigError, match="run id"):
        RunFolder.create("x", "../escape")
