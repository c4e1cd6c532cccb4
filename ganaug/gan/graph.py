"""The whole GAN training step captured once in a CUDA graph and replayed (`GanConfig.compile` graph | auto).

A step at batch 64 on small networks is a few hundred short kernels; launching them from Python
bounds the step, not the GPU. Captured in one CUDA graph, a step is one launch. What makes the step
capturable (PyTorch's "whole network capture" recipe, torch.cuda.graph):

- every tensor the step reads or writes keeps its address between steps: the training images and
  labels stay on the device and batches are drawn by indexing with device random numbers; the
  networks, the EMA copy and the regularizers' state are updated in place; Adam runs with
  `capturable=True` (its step counts stay on the device); gradients are allocated once, in the
  graph's memory pool, at capture;
- no step reads a value on the host: losses stay on the device (the caller reads them every
  `metrics_every` steps), the EMA weight is a 0-d device tensor refilled before each replay;
- the trainer's own `torch.Generator` is registered with the graph, so each replay draws fresh
  numbers (`CUDAGraph.register_generator_state`) and the generator's state checkpoints as in eager;
- a few eager warm-up steps on a side stream come first (lazy initialisation: Adam's state, cuDNN
  plans), and capture happens on that same stream.

Where one of these cannot hold, the step runs eagerly and one log line says why
(`graph_fallback_reason`). Host-side bookkeeping (step count, EMA count, schedulers) stays with
the trainer, so checkpoints and resume are the same as in eager training.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import torch

from ganaug.gan.config import GanConfig

if TYPE_CHECKING:
    from ganaug.gan.trainer import GanTrainer

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on the capture stream before the capture (PyTorch's example uses 3)


def graph_fallback_reason(cfg: GanConfig, device: torch.device) -> str | None:
    """Why the step of this config cannot be captured on this device (None: it can)."""
    if device.type != "cuda":
        return f"{device.type.upper()} device (CUDA graphs need a CUDA GPU)"
    if cfg.loss == "wgan-gp" or cfg.r1_gamma is not None:
        return "gradient penalties (loss='wgan-gp', r1_gamma) need double backward, which is not captured here"
    if cfg.ada_target is not None:
        return "ADA (ada_target) moves its probability on a host-side count of D steps"
    if cfg.lr_schedule != "constant":
        return f"lr_schedule='{cfg.lr_schedule}' sets the learning rate on the host at every step"
    if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        return f"torch {torch.__version__} cannot register the trainer's random generator with a CUDA graph"
    return None


def step_graph_for(trainer: GanTrainer) -> StepGraph | None:
    """The trainer's step graph when its config asks for one and it can be captured; else None, logged once."""
    mode = trainer.cfg.compile
    if mode not in ("graph", "auto"):
        return None
    reason = graph_fallback_reason(trainer.cfg, trainer.device)
    if reason is not None:
        (log.warning if mode == "graph" else log.info)("training step runs eagerly, not as a CUDA graph: %s", reason)
        return None
    return StepGraph(trainer)


class StepGraph:
    """`GanTrainer.device_step` captured once and replayed; call `run()` once per training step."""

    def __init__(self, trainer: GanTrainer) -> None:
        self.trainer = trainer
        self.ema_weight = torch.zeros((), device=trainer.device)  # read by the graph's EMA update
        self.stream = torch.cuda.Stream(device=trainer.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.losses: torch.Tensor | None = None  # the graph's output: (5,) losses of the last replay
        self.warm_steps = 0

    def reset(self) -> None:
        """Forget the capture (after a state load replaced tensors the graph points at); warm up again."""
        self.graph, self.losses, self.warm_steps = None, None, 0

    def run(self) -> torch.Tensor | None:
        """One training step's device work; returns its (5,) losses, or None when capture failed (step not taken)."""
        trainer = self.trainer
        if trainer.ema is not None:
            self.ema_weight.fill_(trainer.ema.weight())
        if self.graph is None and self.warm_steps < WARMUP_STEPS:
            return self._warm_up()
        if self.graph is None and not self._capture():
            return None
        self.graph.replay()  # type: ignore[union-attr]
        return self.losses.clone()  # type: ignore[union-attr]

    def _ema_weight(self) -> torch.Tensor | None:
        return self.ema_weight if self.trainer.ema is not None else None

    def _warm_up(self) -> torch.Tensor:
        trainer = self.trainer
        if self.warm_steps == 0:
            for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
                for group in optimizer.param_groups:
                    group["capturable"] = True  # step counts and bias corrections stay on the device
        current = torch.cuda.current_stream(trainer.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")  # warm-up steps run uncaptured on purpose
            losses = trainer.device_step(self._ema_weight())
        current.wait_stream(self.stream)
        self.warm_steps += 1
        return losses

    def _capture(self) -> bool:
        trainer = self.trainer
        graph = torch.cuda.CUDAGraph()
        try:
            graph.register_generator_state(trainer.rng)
            trainer.g_optimizer.zero_grad(set_to_none=True)
            trainer.d_optimizer.zero_grad(set_to_none=True)
            # thread_local: trainings in other threads (parallel trials on one GPU) may allocate during the capture
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                losses = trainer.device_step(self._ema_weight())
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            log.warning("training step runs eagerly from step %d, not as a CUDA graph: capture failed (%s)",
                        trainer.step, first)
            trainer.g_optimizer.zero_grad(set_to_none=True)
            trainer.d_optimizer.zero_grad(set_to_none=True)
            return False
        self.graph, self.losses = graph, losses
        log.info("training step captured as a CUDA graph at step %d", trainer.step)
        return True
