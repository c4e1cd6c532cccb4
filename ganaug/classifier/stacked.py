"""Train several classifiers of one architecture as one stacked ensemble (`torch.func`).

Evaluation runs (seeds x protocols) train the same small network many times. On a GPU one run at a
time leaves the chip idle between kernel launches; stacking the runs' parameters along a leading
dimension (`torch.func.stack_module_state`) and calling the network once per step under
`torch.func.vmap` trains them all with the kernels of one.

Each run stays the run `train_classifier` would train: its own seeded initial weights, batch order,
augmentation draws and dropout masks (drawn outside vmap from the run's own generators), its own
AdamW moments (AdamW is elementwise, so one optimizer over the stacked parameters updates each run as
its own would), its own val evaluations, patience and best checkpoint. Only float rounding differs
(vmap runs the convolutions as one grouped convolution). Batch norm's running statistics are stacked
buffers that vmap updates in place, one slice per run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import torch
from torch.func import functional_call, stack_module_state, vmap

from ganaug.classifier.augment import AffineDraw, RandomAffine, apply_affine
from ganaug.classifier.spec import ArchSpec, build_classifier
from ganaug.classifier.train import (
    _INIT_LOCK,
    BatchAugment,
    SampleOptions,
    TrainConfig,
    TrainedClassifier,
    _autocast,
    _checked_inputs,
    _loss,
    _Run,
    one_cycle,
)
from ganaug.errors import ConfigError

Tensors = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class StackedRun:
    """One run of a stack: its training images (N, C, H, W) and labels, seed, augmentation and per-image extras."""

    train: Tensors
    seed: int
    augment: BatchAugment | None = None
    options: SampleOptions = field(default_factory=SampleOptions)


def stack_signature(run: StackedRun, cfg: TrainConfig) -> Hashable:
    """What runs of one architecture must share to train as one stack: image shape, step budget, batch size,
    and the kind of loss (labels, weighted, soft targets)."""
    images = run.train[0]
    return (tuple(images.shape[1:]), cfg.steps_for(len(images)), min(cfg.batch_size, len(images)),
            run.options.weights is not None, run.options.soft_targets is not None)


def train_stacked(spec: ArchSpec, runs: Sequence[StackedRun], val: Tensors | None, num_classes: int,
                  cfg: TrainConfig | None = None) -> list[TrainedClassifier]:
    """`[train_classifier(spec, run.train, val, num_classes, cfg, run.seed, run.augment, options=run.options)
    for run in runs]`, trained as one stack; each result equals its separate run up to float rounding.

    A run's `seconds` is its share of the stack's time. Runs with different `stack_signature`s are refused.
    """
    cfg = cfg or TrainConfig()
    if not runs:
        return []
    if len({stack_signature(run, cfg) for run in runs}) > 1:
        raise ConfigError("runs trained as one stack must share image shape, step budget, batch size and kind of loss; "
                          "group them by ganaug.classifier.stacked.stack_signature")
    started = time.perf_counter()
    checked = [_checked_inputs(run.train, val, num_classes, cfg, run.options) for run in runs]
    states = [_Run(spec, run.train, checked[0], num_classes, cfg, run.seed, run.options, stacked=True) for run in runs]
    ensemble = _Ensemble(spec, states, runs, num_classes, cfg)
    going = list(range(len(states)))
    for step in range(1, states[0].steps + 1):
        ensemble.train_step()
        if step % states[0].eval_every and step != states[0].steps:
            continue
        going = ensemble.evaluate(step, going, cfg.patience)
        if not going:
            break
    share = (time.perf_counter() - started) / len(states)
    return [dataclasses.replace(state.finish(spec), seconds=share) for state in states]


class _Ensemble:
    """The stacked parameters, buffers and optimizer of several runs, and their concatenated training data."""

    def __init__(self, spec: ArchSpec, states: list[_Run], runs: Sequence[StackedRun], num_classes: int,
                 cfg: TrainConfig) -> None:
        self.states, self.runs = states, runs
        self.device = device = states[0].device
        self.dtype = states[0].dtype
        self.params, self.buffers = stack_module_state([state.model for state in states])  # name -> (R, ...)
        self.stacked = {**self.params, **self.buffers}
        shape = runs[0].train[0].shape
        with _INIT_LOCK:  # building draws initial weights from the global generator that seeded builds share
            self.base = build_classifier(spec, shape[1], shape[2], shape[3], num_classes).to("meta")
        self.base.train()
        self.optimizer = torch.optim.AdamW(self.params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, one_cycle(states[0].steps, cfg.warmup))
        sizes = torch.tensor([len(run.train[0]) for run in runs])
        self.offsets = (torch.cumsum(sizes, 0) - sizes).view(-1, 1).to(device)  # (R, 1) first row of each run
        self.x = torch.cat([run.train[0] for run in runs]).to(device)  # (sum N, C, H, W)
        self.y = torch.cat([run.train[1] for run in runs]).to(device)
        self.weights = _joined([run.options.weights for run in runs], device)
        self.soft = _joined([run.options.soft_targets for run in runs], device)
        self.batch = states[0].batches.batch
        self.keep_dtype = self._feature_dtype()
        self.loss_sum, self.loss_count = torch.zeros(len(states), device=device), 0

    def _feature_dtype(self) -> torch.dtype:
        """The dtype dropout sees in a separate run (its masks are drawn in it): float32, or the autocast dtype."""
        model = self.states[0].model
        with torch.no_grad(), _autocast(self.device, self.dtype):
            model.eval()  # no batch-norm statistics are updated, no dropout mask is drawn
            return model.features(self.x[:2].contiguous(memory_format=torch.channels_last)).dtype

    def train_step(self) -> None:
        index, drawn, custom = [], {}, {}
        for r, (state, run) in enumerate(zip(self.states, self.runs, strict=True)):
            rows = state.batches.next()  # each run draws its batch, then its augmentation, from its own generator
            index.append(rows)
            if isinstance(run.augment, RandomAffine):
                drawn[r] = run.augment.draw(torch.Size((self.batch, *self.x.shape[1:])), state.generator)
            elif run.augment is not None:
                custom[r] = run.augment(self.x[rows + self.offsets[r]], state.generator)
        flat = torch.stack(index) + self.offsets  # (R, B) rows of the concatenated data
        images = self._augmented(self.x[flat], drawn, custom)  # (R, B, C, H, W)
        keep = self._dropout_masks()
        with _autocast(self.device, self.dtype):
            logits = vmap(self._forward, in_dims=(0, 0, 0, 0 if keep is not None else None))(
                self.params, self.buffers, images, keep)  # (R, B, K)
        losses = vmap(_loss, in_dims=(0, 0, 0 if self.weights is not None else None, 0 if self.soft is not None else None))(
            logits.float(), self.y[flat], _rows(self.weights, flat), _rows(self.soft, flat))  # (R,)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the runs share no parameter: each gets its own loss's gradient
        self.optimizer.step()
        self.scheduler.step()
        self.loss_sum, self.loss_count = self.loss_sum + losses.detach(), self.loss_count + 1

    def _forward(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], images: torch.Tensor,
                 keep: torch.Tensor | None) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (images,), {"dropout_keep": keep})

    def _augmented(self, images: torch.Tensor, drawn: dict[int, AffineDraw], custom: dict[int, torch.Tensor]) -> torch.Tensor:
        """Every affine-augmented run's images warped in one call, others' augmentations put in place."""
        if drawn:
            runs = list(drawn)
            displaced = any(d.displacement is not None for d in drawn.values())
            displacement = torch.cat([d.displacement if d.displacement is not None else  # + 0 leaves a grid as it is
                                      torch.zeros(self.batch, *images.shape[-2:], 2) for d in drawn.values()]) if displaced else None
            warped = apply_affine(images[runs].flatten(0, 1), AffineDraw(torch.cat([d.theta for d in drawn.values()]), displacement))
            images[runs] = warped.view(len(runs), *images.shape[1:])
        for r, augmented in custom.items():
            images[r] = augmented
        return images

    def _dropout_masks(self) -> torch.Tensor | None:
        """Each run's dropout mask (R, B, D), drawn from the run's own generator as its model would draw it."""
        if self.base.dropout.p == 0.0:
            return None
        shape = torch.Size((self.batch, self.base.feature_dim))
        return torch.stack([state.model.dropout.draw_keep(shape, self.keep_dtype, self.device) for state in self.states])

    @torch.no_grad()
    def evaluate(self, step: int, going: list[int], patience: int | None) -> list[int]:
        """Score the runs still going at `step` on val; return those that go on (patience not run out)."""
        lr = self.scheduler.get_last_lr()[0]
        still = []
        for r in going:
            state = self.states[r]
            for name, tensor in chain(state.model.named_parameters(), state.model.named_buffers()):
                tensor.copy_(self.stacked[name][r])
            state.loss_sum, state.loss_count, state.step = self.loss_sum[r], self.loss_count, step
            state.evaluate(step, lr)
            if patience is None or state.evaluations_since_best < patience:
                still.append(r)
        self.loss_sum, self.loss_count = torch.zeros_like(self.loss_sum), 0
        return still


def _joined(parts: list[torch.Tensor | None], device: torch.device) -> torch.Tensor | None:
    """The runs' per-image tensors concatenated (all present, or None: `stack_signature` makes them agree)."""
    return torch.cat([part for part in parts if part is not None]).to(device) if parts[0] is not None else None


def _rows(values: torch.Tensor | None, flat: torch.Tensor) -> Any:
    return values[flat] if values is not None else None
