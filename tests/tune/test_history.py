"""The run history: its format, one record per training, atomic appends, damaged and foreign files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tunehelpers import make_dataset

from ganaug.errors import DataError
from ganaug.gan import GanConfig, train_gan
from ganaug.store import read_dataset
from ganaug.tune.history import (
    HISTORY_ENV,
    HISTORY_KEY,
    HISTORY_SCHEMA,
    HistoryRecorder,
    append_record,
    dataset_features,
    history_path,
    history_rows,
    make_record,
    read_history,
)

# The pinned format: a change here is a change of the history file format (bump HISTORY_VERSION).
COLUMNS = [
    "recorded_at", "origin", "dataset_hash", "dataset_path", "images", "classes", "height", "width", "channels",
    "class_counts", "pixel_mean", "pixel_std", "embedding", "gan_config", "config_hash", "steps", "pruned",
    "d_loss_final", "g_loss_final", "d_loss_mean", "g_loss_mean", "monitor_steps", "val_nn_cas_curve",
    "val_frechet", "recall", "val_nn_cas", "spread", "collapsed_classes", "best_step", "cas_val", "study", "trial",
    "seconds", "device",
]


def test_training_appends_one_record_with_meta_features_config_and_val_quality(tmp_path: Path, tiny_dataset, tiny_gan) -> None:
    history = tmp_path / "history" / "runs.parquet"
    result = train_gan(tiny_dataset, tiny_gan, tmp_path / "run", callbacks=[HistoryRecorder(history, "train")])
    table = pq.read_table(history)
    assert table.column_names == COLUMNS == HISTORY_SCHEMA.names
    assert json.loads(table.schema.metadata[HISTORY_KEY]) == {"format": "ganaug-gan-history", "version": 2}
    [row] = history_rows(history)
    assert (row["origin"], row["dataset_hash"], row["images"], row["classes"]) == ("train", result.dataset_hash, 24, 3)
    assert (row["height"], row["width"], row["channels"], row["class_counts"]) == (8, 8, 1, [8, 8, 8])
    assert len(row["embedding"]) == 32
    assert GanConfig.model_validate(row["config"]) == tiny_gan
    assert row["config_hash"] == tiny_gan.config_hash()
    assert (row["steps"], row["pruned"], row["device"], row["best_step"]) == (6, False, "cpu", result.best_step)
    # the collapse monitor's final reading (it always reads at the end) is the record's val quality
    assert row["monitor_steps"] == [6]
    assert row["val_nn_cas"] == pytest.approx(result.final_metrics["val_nn_cas"])
    assert row["recall"] == pytest.approx(result.final_metrics["recall"])
    assert row["val_frechet"] == pytest.approx(result.final_metrics["val_frechet"])
    assert row["spread"] == pytest.approx(result.final_metrics["spread"])
    assert row["collapsed_classes"] == result.final_metrics["collapsed_classes"]
    assert row["d_loss_final"] == pytest.approx(result.final_metrics["d_loss"])
    assert row["cas_val"] is None and row["seconds"] > 0
    train_gan(tiny_dataset, tiny_gan.model_copy(update={"seed": 1}), tmp_path / "run2",
              callbacks=[HistoryRecorder(history, "train")])
    assert len(read_history(history)) == 2


def test_pixel_statistics_and_embedding_follow_the_train_images(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "d.parquet", channels=3, size=8, classes=2, train_per_class=5)
    loaded = read_dataset(ref)
    features = dataset_features(loaded)
    train = loaded.images[loaded.select(split="train", source="real")].astype(np.float64) / 255.0
    assert (features.images, features.channels, features.class_counts) == (10, 3, (5, 5))
    assert features.pixel_mean == pytest.approx(train.mean(), abs=1e-5)
    assert features.pixel_std == pytest.approx(train.std(), abs=1e-5)
    pooled = train.mean(axis=1).reshape(10, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(10, 16)  # 8x8 -> 4x4 grayscale
    assert features.embedding[:16] == pytest.approx(pooled.mean(axis=0), abs=1e-5)
    assert features.embedding[16:] == pytest.approx(pooled.std(axis=0), abs=1e-5)


def _run_train(tmp_path: Path, dataset, cfg: GanConfig, name: str = "run"):  # noqa: ANN001, ANN202
    """`ganaug train`'s path: the runner, which adds the history recorder, on a run folder holding `dataset`."""
    import shutil

    from ganaug.runner import run_train
    from ganaug.runs import RunFolder

    run = RunFolder.open(tmp_path / name)
    run.root.mkdir(parents=True)
    shutil.copy(dataset.path, run.dataset)
    return run_train(run, cfg)


def test_history_location_option_environment_and_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_dataset, tiny_gan) -> None:
    monkeypatch.setenv(HISTORY_ENV, str(tmp_path / "env.parquet"))
    assert history_path() == tmp_path / "env.parquet"
    assert history_path(tmp_path / "x.parquet") == tmp_path / "x.parquet"
    train_gan(tiny_dataset, tiny_gan, tmp_path / "library")  # the GAN stage itself records nothing
    assert not (tmp_path / "env.parquet").exists()
    _run_train(tmp_path, tiny_dataset, tiny_gan)  # the runner adds the recorder
    assert [row["origin"] for row in history_rows(tmp_path / "env.parquet")] == ["train"]
    monkeypatch.setenv(HISTORY_ENV, "off")
    assert history_path() is None
    _run_train(tmp_path, tiny_dataset, tiny_gan, "run-off")
    assert len(read_history(tmp_path / "env.parquet")) == 1
    monkeypatch.delenv(HISTORY_ENV)
    assert history_path() == Path("data/history/gan_runs.parquet")


@pytest.mark.parametrize("content", ["damaged", "foreign"])
def test_damaged_or_foreign_history_stops_before_training_and_is_not_touched(tmp_path: Path, content: str, tiny_dataset,
                                                                              tiny_gan, monkeypatch: pytest.MonkeyPatch) -> None:
    history = tmp_path / "runs.parquet"
    if content == "damaged":
        history.write_bytes(b"PAR1 this is not parquet")
        message = "is not a readable Parquet file"
    else:
        pq.write_table(pa.table({"x": [1, 2]}), history)
        message = "is not a ganaug GAN history"
    before = history.read_bytes()
    monkeypatch.setenv(HISTORY_ENV, str(history))
    with pytest.raises(DataError, match=message) as raised:
        _run_train(tmp_path, tiny_dataset, tiny_gan)
    assert str(history) in str(raised.value)
    assert not (tmp_path / "run" / "gan").exists()  # nothing trained, nothing written
    with pytest.raises(DataError, match=message):
        append_record(history, {"anything": 1})
    assert history.read_bytes() == before


def test_a_version_1_history_is_read_with_the_later_columns_empty_and_kept_at_the_next_append(
        tmp_path: Path, tiny_dataset, tiny_gan) -> None:
    history = tmp_path / "runs.parquet"
    train_gan(tiny_dataset, tiny_gan, tmp_path / "run", callbacks=[HistoryRecorder(history, "train")])
    old = pq.read_table(history).drop_columns(["spread", "collapsed_classes"])
    version_1 = {HISTORY_KEY: json.dumps({"format": "ganaug-gan-history", "version": 1}).encode()}
    pq.write_table(old.replace_schema_metadata(version_1), history)
    [row] = history_rows(history)
    assert row["spread"] is None and row["collapsed_classes"] is None and row["config_hash"] == tiny_gan.config_hash()
    train_gan(tiny_dataset, tiny_gan.model_copy(update={"seed": 1}), tmp_path / "run2",
              callbacks=[HistoryRecorder(history, "train")])
    table = pq.read_table(history)
    assert json.loads(table.schema.metadata[HISTORY_KEY])["version"] == 2 and table.column_names == COLUMNS
    first, second = table.to_pylist()
    assert first["collapsed_classes"] is None and second["collapsed_classes"] is not None
    future = {HISTORY_KEY: json.dumps({"format": "ganaug-gan-history", "version": 3}).encode()}
    pq.write_table(table.replace_schema_metadata(future), history)
    with pytest.raises(DataError, match="has format version 3, this ganaug reads 1 to 2"):
        read_history(history)


def test_appends_from_threads_are_atomic_and_none_is_lost(tmp_path: Path, tiny_dataset, tiny_gan) -> None:
    features = dataset_features(read_dataset(tiny_dataset))
    history = tmp_path / "runs.parquet"
    records = [make_record(features, tiny_gan, [], origin="tune", steps=i, seconds=0.1, device="cpu", trial=i)
               for i in range(12)]
    threads = [threading.Thread(target=append_record, args=(history, record)) for record in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(row["trial"] for row in history_rows(history)) == list(range(12))
    assert [p.name for p in history.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_record_that_does_not_fit_the_schema_changes_nothing(tmp_path: Path, tiny_dataset, tiny_gan) -> None:
    features = dataset_features(read_dataset(tiny_dataset))
    history = tmp_path / "runs.parquet"
    append_record(history, make_record(features, tiny_gan, [], origin="train", steps=1, seconds=0.1, device="cpu"))
    before = history.read_bytes()
    bad = make_record(features, tiny_gan, [], origin="train", steps=1, seconds=0.1, device="cpu")
    bad["images"] = "many"
    with pytest.raises(DataError, match="does not fit the history schema"):
        append_record(history, bad)
    assert history.read_bytes() == before


def test_the_history_module_imports_on_its_own() -> None:
    """The GAN stage imports it, so it must not import the GAN stage back (a fresh interpreter, it first)."""
    done = subprocess.run([sys.executable, "-c", "import ganaug.tune.history, ganaug.tune.study, ganaug.cli.tune"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
