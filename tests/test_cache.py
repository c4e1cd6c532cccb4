"""Cache keys (ganaug.cache): what enters them (content, config) and what does not (paths, resume flags, timestamps)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import optuna

from ganaug.cache import fingerprint, result_intact, stage_key
from ganaug.config import IngestConfig
from ganaug.gan import GanConfig
from ganaug.store import DatasetMeta, DatasetRef, write_dataset


def _dataset(path: Path, value: int = 0) -> DatasetRef:
    images = np.full((4, 1, 2, 2), value, dtype=np.uint8)
    meta = DatasetMeta(height=2, width=2, channels=1, class_names=["a", "b"], ingestion_source="test")
    return write_dataset(path, images, np.array([0, 1, 0, 1]), np.array(["train"] * 4), meta)


def test_key_depends_on_content_and_config_not_on_locations(tmp_path: Path) -> None:
    first = _dataset(tmp_path / "a" / "dataset.parquet")
    copy = _dataset(tmp_path / "b" / "dataset.parquet")
    other = _dataset(tmp_path / "c" / "dataset.parquet", value=9)
    cfg = GanConfig(steps=10)
    key = stage_key("train_gan", {"dataset": first, "cfg": cfg, "out": tmp_path / "a"})
    assert stage_key("train_gan", {"dataset": copy, "cfg": cfg, "out": tmp_path / "b"}) == key
    assert stage_key("train_gan", {"dataset": first, "cfg": cfg.model_copy(update={"resume": True}), "out": tmp_path}) == key
    assert stage_key("train_gan", {"dataset": other, "cfg": cfg, "out": tmp_path / "a"}) != key
    assert stage_key("train_gan", {"dataset": first, "cfg": GanConfig(steps=11), "out": tmp_path / "a"}) != key
    assert stage_key("generate", {"dataset": first, "cfg": cfg, "out": tmp_path / "a"}) != key


def test_ingest_key_follows_the_input_files(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "1.png").write_bytes(b"one")
    cfg = IngestConfig(source="folder", path=folder)
    before = stage_key("ingest", {"cfg": cfg, "out": tmp_path})
    assert stage_key("ingest", {"cfg": cfg, "out": tmp_path / "elsewhere"}) == before
    (folder / "cat" / "2.png").write_bytes(b"two")  # new data arrived: the scheduled retraining must run
    assert stage_key("ingest", {"cfg": cfg, "out": tmp_path}) != before


def test_optuna_history_and_pruner_fingerprints_ignore_timestamps_and_identity() -> None:
    def trial(start: datetime.datetime) -> optuna.trial.FrozenTrial:
        frozen = optuna.trial.create_trial(value=0.5, params={"x": 1},
                                            distributions={"x": optuna.distributions.IntDistribution(0, 2)},
                                            intermediate_values={1: 0.4})
        frozen.datetime_start = start
        return frozen

    early, late = trial(datetime.datetime(2020, 1, 1)), trial(datetime.datetime(2030, 1, 1))
    assert early.datetime_start != late.datetime_start
    assert fingerprint(early) == fingerprint(late)
    assert fingerprint(optuna.pruners.MedianPruner()) == fingerprint(optuna.pruners.MedianPruner())
    assert fingerprint(optuna.pruners.MedianPruner(n_startup_trials=2)) != fingerprint(optuna.pruners.MedianPruner())


def test_cached_result_is_unusable_when_its_file_is_gone_or_changed(tmp_path: Path) -> None:
    path = tmp_path / "dataset.parquet"
    ref = _dataset(path)
    assert result_intact(ref) == (True, "")
    _dataset(path, value=3)  # rewritten with other content under the same name
    intact, why = result_intact(ref)
    assert not intact and "changed" in why
    path.unlink()
    intact, why = result_intact(ref)
    assert not intact and "no longer exists" in why


def test_key_of_bound_work_follows_what_is_bound() -> None:
    """Fanned-out work is often `functools.partial(run_protocol, data=..., cfg=...)`: the data must enter the key."""
    import functools

    def train(item: int, data: np.ndarray) -> int:
        return item

    same = stage_key("protocol_run", {"fn": functools.partial(train, data=np.zeros(3)), "item": 1, "label": "a"})
    assert stage_key("protocol_run", {"fn": functools.partial(train, data=np.zeros(3)), "item": 1, "label": "b"}) == same
    assert stage_key("protocol_run", {"fn": functools.partial(train, data=np.ones(3)), "item": 1, "label": "a"}) != same
    assert stage_key("protocol_run", {"fn": functools.partial(train, data=np.zeros(3)), "item": 2, "label": "a"}) != same
