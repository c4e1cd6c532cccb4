"""Weight averaging of the EMA generators of a training's kept checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tunehelpers import make_dataset

from ganaug.errors import CheckpointError
from ganaug.gan import load_generator, sample, train_gan
from ganaug.gan.averaging import average_generators, kept_checkpoints


def test_average_is_the_mean_of_the_kept_ema_generators(tmp_path: Path, tiny_dataset, tiny_gan) -> None:
    cfg = tiny_gan.model_copy(update={"checkpoint_every": 2, "keep_checkpoints": 3})
    train_gan(tiny_dataset, cfg, tmp_path / "run")
    kept = kept_checkpoints(tmp_path / "run" / "gan")
    assert [p.name for p in kept] == ["step_0000002.pt", "step_0000004.pt", "step_0000006.pt"]
    assert kept_checkpoints(tmp_path / "run" / "gan", last=2) == kept[1:]
    averaged, info = average_generators(kept[1:])
    assert info["averaged_steps"] == [4, 6] and not averaged.training
    first, _ = load_generator(kept[1], device="cpu")
    second, _ = load_generator(kept[2], device="cpu")
    for name, parameter in averaged.named_parameters():
        expected = (dict(first.named_parameters())[name] + dict(second.named_parameters())[name]) / 2
        assert torch.allclose(parameter, expected, atol=1e-6), name
    images = sample(averaged, torch.arange(3).repeat(4), seed=0)
    assert images.shape == (12, 1, 8, 8) and bool(torch.isfinite(images).all())
    single, _ = average_generators(kept[2:])
    for name, parameter in single.named_parameters():
        assert torch.equal(parameter, dict(second.named_parameters())[name]), name


def test_checkpoints_of_different_setups_are_not_averaged(tmp_path: Path, tiny_dataset, tiny_gan) -> None:
    train_gan(tiny_dataset, tiny_gan, tmp_path / "a")
    train_gan(tiny_dataset, tiny_gan.model_copy(update={"g_width": 32}), tmp_path / "b")
    other = make_dataset(tmp_path / "other.parquet", seed=7)
    train_gan(other, tiny_gan, tmp_path / "c")
    a, b, c = (tmp_path / name / "gan" / "checkpoints" / "last.pt" for name in "abc")
    with pytest.raises(CheckpointError, match="different widths"):
        average_generators([a, b])
    with pytest.raises(CheckpointError, match="dataset_hash"):
        average_generators([a, c])
    with pytest.raises(CheckpointError, match="no checkpoints to average"):
        average_generators([])
