"""The stacked trainer: each run of a stack equals the same run trained alone, up to float rounding."""

from __future__ import annotations

import pytest
import torch

from ganaug.classifier import ArchSpec, ConvBlockSpec, SampleOptions, TrainConfig, TrainedClassifier, train_classifier
from ganaug.classifier.augment import random_affine
from ganaug.classifier.stacked import StackedRun, stack_signature, train_stacked
from ganaug.errors import ConfigError

SPEC = ArchSpec(blocks=(ConvBlockSpec(channels=8), ConvBlockSpec(channels=8, residual=True)), head_width=16, dropout=0.5)


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 8, 8, generator=generator) * 0.5 + y.view(-1, 1, 1, 1).float() - 1
    return x, y


VAL = _data(24, seed=9)


def _alone(run: StackedRun, cfg: TrainConfig, spec: ArchSpec = SPEC) -> TrainedClassifier:
    return train_classifier(spec, run.train, VAL, 3, cfg, seed=run.seed, augment=run.augment, options=run.options)


def _assert_same(stacked: TrainedClassifier, alone: TrainedClassifier, tolerance: float = 1e-5) -> None:
    assert (stacked.best_step, stacked.steps_run) == (alone.best_step, alone.steps_run)
    assert stacked.best_val_accuracy == alone.best_val_accuracy
    assert [h["step"] for h in stacked.history] == [h["step"] for h in alone.history]
    for mine, theirs in zip(stacked.history, alone.history, strict=True):
        assert mine["val_accuracy"] == theirs["val_accuracy"] and mine["lr"] == pytest.approx(theirs["lr"])
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=tolerance)
    theirs = alone.model.state_dict()
    for name, value in stacked.model.state_dict().items():
        assert torch.allclose(value.float(), theirs[name].float(), atol=tolerance), name


def _elastic(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape[0], shape[2], shape[3], 2, generator=generator) - 0.5) * 0.1


def test_each_run_of_a_stack_equals_its_separate_run() -> None:
    """Seeds, batch orders, dropout masks, affine and elastic draws, a custom augmentation and different training
    sets: a few steps in, every run's weights, batch-norm statistics and history match its run alone."""
    cfg = TrainConfig(steps=8, batch_size=16, eval_every=3)
    flip = lambda images, generator: torch.where(torch.rand(len(images), 1, 1, 1, generator=generator) < 0.5,  # noqa: E731
                                                 images.flip(3), images)
    runs = [StackedRun(_data(40), 0), StackedRun(_data(40), 1, random_affine(10, 0.1, 0.1)),
            StackedRun(_data(56, seed=3), 2, random_affine(15, 0.2, 0.1, _elastic)), StackedRun(_data(40), 0, flip)]
    stacked = train_stacked(SPEC, runs, VAL, 3, cfg)
    alone = [_alone(run, cfg) for run in runs]
    for mine, theirs in zip(stacked, alone, strict=True):
        _assert_same(mine, theirs)
    assert not torch.equal(alone[0].model.output.weight, alone[1].model.output.weight)
    assert not torch.equal(alone[0].model.output.weight, alone[3].model.output.weight)  # same seed, other augmentation


@pytest.mark.parametrize("kind", ["weights", "soft_targets", "init_state"])
def test_per_image_options_stack_too(kind: str) -> None:
    cfg = TrainConfig(steps=6, batch_size=16, eval_every=3)
    x, y = _data(40)
    options = []
    for seed in (0, 1):
        generator = torch.Generator().manual_seed(seed + 5)
        if kind == "weights":
            options.append(SampleOptions(weights=torch.rand(40, generator=generator)))
        elif kind == "soft_targets":
            options.append(SampleOptions(soft_targets=torch.softmax(torch.randn(40, 3, generator=generator), 1)))
        else:
            start = _alone(StackedRun((x, y), seed + 7), TrainConfig(steps=3, batch_size=16)).model.state_dict()
            options.append(SampleOptions(init_state=start))
    runs = [StackedRun((x, y), seed, options=option) for seed, option in zip((0, 1), options, strict=True)]
    for mine, theirs in zip(train_stacked(SPEC, runs, VAL, 3, cfg), [_alone(run, cfg) for run in runs], strict=True):
        _assert_same(mine, theirs)


def test_patience_stops_each_run_when_its_own_run_would_stop() -> None:
    cfg = TrainConfig(steps=40, batch_size=8, eval_every=1, patience=2, lr=0.05)
    spec = ArchSpec(blocks=(ConvBlockSpec(channels=4, pool="none"),), head_width=0, dropout=0.0, norm="group")
    runs = [StackedRun(_data(24), seed) for seed in range(4)]
    stacked = train_stacked(spec, runs, VAL, 3, cfg)
    alone = [_alone(run, cfg, spec) for run in runs]
    assert len({run.steps_run for run in alone}) > 1  # the runs stop at different steps
    for mine, theirs in zip(stacked, alone, strict=True):
        _assert_same(mine, theirs, tolerance=1e-4)


def test_runs_that_cannot_share_a_stack_are_refused() -> None:
    cfg = TrainConfig(steps=4, batch_size=32)
    small, large = StackedRun(_data(20), 0), StackedRun(_data(40), 1)  # batches of 20 and 32
    assert stack_signature(small, cfg) != stack_signature(large, cfg)
    weighted = StackedRun(_data(40), 2, options=SampleOptions(weights=torch.ones(40)))
    assert stack_signature(weighted, cfg) != stack_signature(large, cfg)
    with pytest.raises(ConfigError, match="share image shape, step budget, batch size"):
        train_stacked(SPEC, [small, large], VAL, 3, cfg)
    assert train_stacked(SPEC, [], VAL, 3, cfg) == []
