"""The training stage end to end on a tiny dataset: artifacts, determinism, resume, faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from ganaug.errors import CheckpointError, DataError, DivergenceError
from ganaug.gan import GanConfig, GanResult, train_gan
from ganaug.gan import losses as losses_module
from ganaug.gan.artifacts import METRIC_COLUMNS
from ganaug.gan.checkpoint import content_hash, read_checkpoint
from ganaug.store import DatasetRef

WEIGHT_KEYS = ("generator", "discriminator", "generator_ema", "g_optimizer", "d_optimizer", "rng", "step")


class Recorder:
    """Callback object that records every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, Any]] = []

    def on_start(self, step: int, total: int) -> None:
        self.events.append(("start", step, total))

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.events.append(("metrics", step, metrics))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.events.append(("checkpoint", step, path))

    def on_samples(self, step: int, path: Path) -> None:
        self.events.append(("samples", step, path))


class Interrupt(Exception):
    """Stands in for a crash or Ctrl-C in the middle of training."""


def assert_same_state(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_few_steps_write_checkpoints_metrics_and_grids(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    recorder, plain_calls = Recorder(), []
    result = train_gan(tiny_dataset, tiny_cfg, tmp_path / "run", callbacks=[recorder, lambda s, m: plain_calls.append(s)])
    gan = tmp_path / "run" / "gan"
    assert sorted(p.name for p in (gan / "checkpoints").iterdir()) == ["best.pt", "last.pt", "step_0000003.pt", "step_0000006.pt"]
    assert sorted(p.name for p in gan.glob("*.png")) == ["samples_0000003.png", "samples_0000006.png", "samples_final.png"]
    metrics = pq.read_table(gan / "metrics.parquet").to_pydict()
    assert tuple(metrics) == METRIC_COLUMNS and metrics["step"] == [2, 4, 6]
    assert all(v > 0 for v in metrics["images_per_second"]) and metrics["g_lr"] == [tiny_cfg.g_lr] * 3
    grid = Image.open(gan / "samples_final.png")
    assert grid.mode == "L" and grid.size == (2 * 33 + 1, 3 * 33 + 1)  # 2 columns, one row per class, 8px x4 cells
    assert result.steps == 6 and result.resumed_from == 0 and result.device == "cpu"
    assert result.checkpoint_id == content_hash(read_checkpoint(gan / "checkpoints" / "last.pt"))
    assert result.dataset_hash == tiny_dataset.content_hash
    assert GanResult.model_validate_json(result.model_dump_json()) == result
    assert [e[:2] for e in recorder.events if e[0] != "metrics"] == [
        ("start", 0), ("checkpoint", 3), ("samples", 3), ("checkpoint", 6), ("samples", 6)]
    assert [e[1] for e in recorder.events if e[0] == "metrics"] == [2, 4, 6] == plain_calls
    assert read_checkpoint(gan / "checkpoints" / "last.pt")["step"] == 6


def test_same_seed_gives_the_same_weights(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    first = train_gan(tiny_dataset, tiny_cfg, tmp_path / "a")
    second = train_gan(tiny_dataset, tiny_cfg, tmp_path / "b")
    other = train_gan(tiny_dataset, tiny_cfg.model_copy(update={"seed": 1}), tmp_path / "c")
    assert first.checkpoint_id == second.checkpoint_id != other.checkpoint_id
    a, b = read_checkpoint(first.checkpoint_path), read_checkpoint(second.checkpoint_path)
    assert_same_state({k: a[k] for k in WEIGHT_KEYS}, {k: b[k] for k in WEIGHT_KEYS})


@pytest.mark.parametrize("variant", [
    {},
    {"loss": "wgan-gp", "conditioning": "acgan", "lr_schedule": "cosine", "d_steps_per_g": 2},
    {"loss": "bce", "r1_gamma": 1.0, "weight_decay": 1e-4, "lr_schedule": "exponential", "diffaugment": ["color", "cutout"]},
    {"diffaugment": ["translation"], "ada_target": 0.6, "ada_kimg": 0.05, "lecam_weight": 0.1, "monitor_every": 2,
     "ema_statistics": "copied"},
])
def test_resume_after_interruption_equals_the_uninterrupted_run(
    tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path, variant: dict[str, Any]
) -> None:
    cfg = tiny_cfg.model_copy(update=variant)
    full = train_gan(tiny_dataset, cfg, tmp_path / "full")

    class CrashAtStep4:
        def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
            if step == 4:
                raise Interrupt

    with pytest.raises(Interrupt):
        train_gan(tiny_dataset, cfg, tmp_path / "broken", callbacks=CrashAtStep4())
    assert read_checkpoint(tmp_path / "broken" / "gan" / "checkpoints" / "last.pt")["step"] == 3
    resumed = train_gan(tiny_dataset, cfg.model_copy(update={"resume": True}), tmp_path / "broken")
    assert resumed.resumed_from == 3 and resumed.steps == 6
    assert resumed.checkpoint_id == full.checkpoint_id  # byte-identical final checkpoint
    a, b = read_checkpoint(full.checkpoint_path), read_checkpoint(resumed.checkpoint_path)
    assert_same_state({k: a[k] for k in WEIGHT_KEYS}, {k: b[k] for k in WEIGHT_KEYS})
    losses = ["step", "d_loss", "g_loss", "d_real", "d_fake", "d_val"]
    assert pq.read_table(full.metrics_path, columns=losses).equals(pq.read_table(resumed.metrics_path, columns=losses))


def test_resume_applies_a_changed_learning_rate(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    train_gan(tiny_dataset, tiny_cfg.model_copy(update={"steps": 4}), tmp_path)
    result = train_gan(tiny_dataset, tiny_cfg.model_copy(update={"resume": True, "g_lr": 1e-5}), tmp_path)
    assert pq.read_table(result.metrics_path).to_pydict()["g_lr"] == [tiny_cfg.g_lr, tiny_cfg.g_lr, 1e-5]


def test_resume_without_a_checkpoint_starts_fresh(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    fresh = train_gan(tiny_dataset, tiny_cfg, tmp_path / "a")
    resumed = train_gan(tiny_dataset, tiny_cfg.model_copy(update={"resume": True}), tmp_path / "b")
    assert resumed.resumed_from == 0 and resumed.checkpoint_id == fresh.checkpoint_id
    again = train_gan(tiny_dataset, tiny_cfg.model_copy(update={"resume": True}), tmp_path / "b")
    assert again.resumed_from == 6 and again.checkpoint_id == fresh.checkpoint_id  # nothing left to train


def test_nan_loss_restores_the_last_good_checkpoint(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    d_hinge, g_hinge = losses_module.LOSSES["hinge"]
    calls = []

    def poisoned(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = d_hinge(real, fake)
        return loss * float("nan") if len(calls) >= 4 else loss  # D step 4 blows up

    monkeypatch.setitem(losses_module.LOSSES, "hinge", (poisoned, g_hinge))
    with pytest.raises(DivergenceError) as caught:
        train_gan(tiny_dataset, tiny_cfg, tmp_path)
    checkpoints = tmp_path / "gan" / "checkpoints"
    message = str(caught.value)
    assert "step 4" in message and str(checkpoints / "last.pt") in message and "(step 3)" in message
    assert "learning rate" in message and "loss" in message and "resume=true" in message
    restored = read_checkpoint(checkpoints / "last.pt")
    assert restored["step"] == 3
    assert all(torch.isfinite(t).all() for t in restored["generator"].values() if t.is_floating_point())
    assert not (checkpoints / "step_0000006.pt").exists()


def test_nan_before_the_first_periodic_checkpoint_restores_step_zero(
    tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, g_hinge = losses_module.LOSSES["hinge"]
    monkeypatch.setitem(losses_module.LOSSES, "hinge", (lambda real, fake: real.mean() * float("inf"), g_hinge))
    with pytest.raises(DivergenceError, match=r"\(step 0\)"):
        train_gan(tiny_dataset, tiny_cfg, tmp_path)
    assert read_checkpoint(tmp_path / "gan" / "checkpoints" / "last.pt")["step"] == 0


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"])
def test_corrupt_checkpoint_names_the_file(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path,
                                           content: bytes | str) -> None:
    train_gan(tiny_dataset, tiny_cfg.model_copy(update={"steps": 3}), tmp_path)
    last = tmp_path / "gan" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000] if content == "truncated" else content)  # type: ignore[arg-type]
    for periodic in last.parent.glob("step_*.pt"):  # nothing to fall back to
        periodic.unlink()
    with pytest.raises(CheckpointError, match=f"checkpoint {last} is corrupt.*no readable periodic checkpoint"):
        train_gan(tiny_dataset, tiny_cfg.model_copy(update={"resume": True}), tmp_path)


def test_foreign_and_unsafe_files_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a ganaug GAN checkpoint"):
        read_checkpoint(plain)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "ganaug-gan-checkpoint", "payload": Interrupt("code")}, unsafe)  # needs unpickling code
    with pytest.raises(CheckpointError, match=f"checkpoint {unsafe} is corrupt or not a ganaug GAN checkpoint"):
        read_checkpoint(unsafe)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_incompatible_checkpoint_is_refused_on_resume(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    train_gan(tiny_dataset, tiny_cfg.model_copy(update={"steps": 3}), tmp_path)
    with pytest.raises(CheckpointError, match="g_width is 16 in the checkpoint but 32 now"):
        train_gan(tiny_dataset, tiny_cfg.model_copy(update={"resume": True, "g_width": 32}), tmp_path)


def test_training_reads_train_and_val_but_never_test(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ganaug.gan.stage as stage

    splits: list[str | None] = []
    real_load = stage.load_tensors

    def spy(dataset: Any, split: str | None = "train", source: str | None = None) -> Any:
        splits.append(split)
        return real_load(dataset, split, source)

    monkeypatch.setattr(stage, "load_tensors", spy)
    train_gan(tiny_dataset, tiny_cfg.model_copy(update={"steps": 2}), tmp_path)
    assert sorted(splits) == ["train", "val"]


def test_dataset_without_train_rows_is_refused_before_writing(tmp_path: Path, dataset_factory: Any) -> None:
    ref = dataset_factory(tmp_path / "dataset.parquet", split_names=("val", "test"))
    with pytest.raises(DataError, match=f"dataset {ref.path}: no real rows with split 'train'"):
        train_gan(ref, GanConfig(steps=1, device="cpu"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_changed_dataset_is_refused(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    stale = tiny_dataset.model_copy(update={"content_hash": "0" * 64})
    with pytest.raises(DataError, match="changed since its reference was made"):
        train_gan(stale, tiny_cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_result_is_json_for_the_orchestration_layer(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    result = train_gan(tiny_dataset, tiny_cfg.model_copy(update={"steps": 2}), tmp_path)
    data = json.loads(result.model_dump_json())
    assert {"checkpoint_path", "checkpoint_id", "metrics_path", "grid_path", "steps", "seconds", "images_per_second",
            "device", "dataset_hash"} <= set(data)
    assert data["final_metrics"]["step"] == 2


def test_callbacks_accept_one_callable_and_reject_other_objects(tiny_dataset: DatasetRef, tiny_cfg: GanConfig,
                                                                tmp_path: Path) -> None:
    from ganaug.gan.artifacts import Callbacks

    steps: list[int] = []
    train_gan(tiny_dataset, tiny_cfg.model_copy(update={"steps": 4}), tmp_path, callbacks=lambda s, m: steps.append(s))
    assert steps == [2, 4]
    for bad in (42, [object()]):
        with pytest.raises(TypeError, match="neither callable nor has any of the hooks"):
            Callbacks(bad)


def test_damaged_last_checkpoint_falls_back_to_the_newest_valid_periodic_one(
    tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_cfg.model_copy(update={"steps": 9})
    full = train_gan(tiny_dataset, cfg, tmp_path / "full")
    train_gan(tiny_dataset, tiny_cfg, tmp_path / "broken")  # steps 0..6: step_3.pt, step_6.pt, last.pt
    checkpoints = tmp_path / "broken" / "gan" / "checkpoints"
    last = checkpoints / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated by a crash or a full disk
    newest = checkpoints / "step_0000006.pt"
    newest.write_bytes(newest.read_bytes()[:500])  # this one too: the fallback skips it
    with caplog.at_level("WARNING", logger="ganaug.gan.checkpoint"):
        resumed = train_gan(tiny_dataset, cfg.model_copy(update={"resume": True}), tmp_path / "broken")
    assert f"checkpoint {last} is corrupt" in caplog.text and "truncated or damaged" in caplog.text
    assert "falling back to the newest valid periodic checkpoint" in caplog.text and "step_0000003.pt" in caplog.text
    assert resumed.resumed_from == 3 and resumed.steps == 9
    assert resumed.checkpoint_id == full.checkpoint_id  # the same final checkpoint as an uninterrupted run
