"""generate() samples the checkpoint with the best validation score, and records the choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from genhelpers import tiny_gan_config, write_bar_dataset

from ganaug.errors import CheckpointError, ConfigError
from ganaug.gan import train_gan
from ganaug.gan.checkpoint import read_checkpoint
from ganaug.gan.stage import near_best
from ganaug.gan.monitor import CollapseMonitor, MonitorReading
from ganaug.generate import GenerateConfig, checkpoint_choice, generate, generate_from_checkpoint
from ganaug.store import SYNTHETIC_SCHEMA, read_dataset

# Scripted val scores (1-NN CAS) at steps 2, 4, 6, 8, 10: the best (highest) is at step 4, and every
# later score falls short of it by more than the val subset's noise.
SCORES = [0.3, 0.9, 0.5, 0.4, 0.6]


@pytest.fixture
def scripted_monitor(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the collapse monitor's measurement with scripted scores; returns the measured steps."""
    calls: list[int] = []

    def measure(self: CollapseMonitor, generator: torch.nn.Module) -> MonitorReading:
        score = SCORES[len(calls)]
        calls.append(len(calls))
        ones = torch.ones(self.num_classes)
        return MonitorReading(ones, ones, ones, self.collapse_spread, nn_cas=score)

    monkeypatch.setattr(CollapseMonitor, "measure", measure)
    return calls


def test_best_checkpoint_is_the_lowest_val_score_and_generate_samples_it(tmp_path: Path, scripted_monitor: list[int]) -> None:
    dataset = write_bar_dataset(tmp_path / "dataset.parquet", train_counts=[8, 8, 8])
    gan = train_gan(dataset, tiny_gan_config(monitor_every=2, metrics_every=2), tmp_path / "run")
    assert len(scripted_monitor) == 5
    assert (gan.best_step, gan.best_score, gan.selection_metric) == (4, 0.9, "val_nn_cas")
    best = read_checkpoint(gan.best_checkpoint_path)
    assert best["step"] == 4 and best["selection"]["metric"] == "val_nn_cas" and best["selection"]["score"] == 0.9
    assert read_checkpoint(gan.checkpoint_path)["step"] == 10

    ref = generate(gan, dataset, GenerateConfig(mode="per_class", per_class=2, device="cpu"), tmp_path / "best")
    choice = checkpoint_choice(ref)
    assert (choice["file"], choice["step"], choice["metric"], choice["score"]) == ("best.pt", 4, "val_nn_cas", 0.9)
    assert choice["checkpoint_id"] == gan.best_checkpoint_id
    assert set(read_dataset(ref, SYNTHETIC_SCHEMA).extra_columns["checkpoint_id"]) == {gan.best_checkpoint_id}

    last = generate(gan, dataset, GenerateConfig(mode="per_class", per_class=2, checkpoint="last", device="cpu"), tmp_path / "last")
    assert checkpoint_choice(last)["step"] == 10 and checkpoint_choice(last)["checkpoint_id"] == gan.checkpoint_id


class CrashAtStep8:
    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if step == 8:
            raise KeyboardInterrupt


def test_resumed_training_keeps_the_same_best_checkpoint(tmp_path: Path, scripted_monitor: list[int]) -> None:
    dataset = write_bar_dataset(tmp_path / "dataset.parquet", train_counts=[8, 8, 8])
    cfg = tiny_gan_config(monitor_every=2, metrics_every=2, checkpoint_every=6)
    full = train_gan(dataset, cfg, tmp_path / "full")
    scripted_monitor.clear()
    with pytest.raises(KeyboardInterrupt):
        train_gan(dataset, cfg, tmp_path / "resumed", callbacks=CrashAtStep8())
    assert read_checkpoint(tmp_path / "resumed" / "gan" / "checkpoints" / "last.pt")["step"] == 6
    del scripted_monitor[3:]  # the resumed run measures steps 8 and 10 next
    resumed = train_gan(dataset, cfg.model_copy(update={"resume": True}), tmp_path / "resumed")
    assert resumed.best_step == full.best_step == 4
    assert resumed.best_checkpoint_id == full.best_checkpoint_id


def test_without_the_monitor_best_is_the_last_checkpoint(tmp_path: Path) -> None:
    dataset = write_bar_dataset(tmp_path / "dataset.parquet", train_counts=[8, 8, 8])
    gan = train_gan(dataset, tiny_gan_config(monitor_every=None), tmp_path / "run")
    assert gan.best_step == 10 and gan.best_score is None and gan.selection_metric is None
    assert read_checkpoint(gan.best_checkpoint_path)["selection"]["rule"].startswith("last checkpoint")


def test_missing_best_checkpoint_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    dataset = write_bar_dataset(tmp_path / "dataset.parquet", train_counts=[8, 8, 8])
    gan = train_gan(dataset, tiny_gan_config(), tmp_path / "run")
    Path(gan.best_checkpoint_path).unlink()
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="checkpoint='best' but .*best.pt does not exist.*set checkpoint='last'"):
        generate_from_checkpoint(Path(gan.checkpoint_path), dataset, GenerateConfig(device="cpu"), out)
    assert not out.exists()
    old_record = gan.model_copy(update={"best_checkpoint_path": None})
    with pytest.raises(ConfigError, match="names no best checkpoint"):
        generate(old_record, dataset, GenerateConfig(device="cpu"), out)


def test_a_later_checkpoint_within_the_val_noise_of_the_best_is_chosen() -> None:
    # 500 val images: two binomial standard errors of 0.5 are 0.045.
    best = {"step": 2000, "score": 0.50, "top": 0.50}
    assert near_best(0.47, best, 500)  # 0.03 short: noise, the later checkpoint wins
    assert not near_best(0.44, best, 500)  # 0.06 short: a real drop
    assert near_best(0.44, best, 50)  # ... but not on 50 val images (noise 0.14)
    assert near_best(0.51, best, 500) and near_best(0.3, None, 500)
    # The bar is the best score seen, not the last chosen one, so small drops cannot add up.
    assert not near_best(0.44, {"step": 2500, "score": 0.47, "top": 0.50}, 500)


def test_generate_from_a_damaged_last_checkpoint_falls_back_with_a_warning(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    dataset = write_bar_dataset(tmp_path / "dataset.parquet", train_counts=[8, 8, 8])
    gan = train_gan(dataset, tiny_gan_config(checkpoint_every=5), tmp_path / "run")  # step_5.pt, step_10.pt, last.pt
    last = Path(gan.checkpoint_path)
    last.write_bytes(last.read_bytes()[:2000])
    cfg = GenerateConfig(mode="per_class", per_class=2, checkpoint="last", device="cpu")
    with caplog.at_level("WARNING", logger="ganaug.gan.checkpoint"):
        ref = generate(gan, dataset, cfg, tmp_path / "out")
    assert "falling back to the newest valid periodic checkpoint" in caplog.text
    choice = checkpoint_choice(ref)
    assert (choice["file"], choice["step"]) == ("step_0000010.pt", 10)
    for periodic in last.parent.glob("step_*.pt"):
        periodic.unlink()
    with pytest.raises(CheckpointError, match="no readable periodic checkpoint"):
        generate(gan, dataset, cfg, tmp_path / "out2")
