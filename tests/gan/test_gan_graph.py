"""The training step as a CUDA graph (GanConfig.compile graph | auto): fallbacks on CPU, equality with eager on GPU."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from ganaug.gan import GanConfig, train_gan
from ganaug.gan.checkpoint import read_checkpoint
from ganaug.gan.graph import WARMUP_STEPS, graph_fallback_reason
from ganaug.gan.networks import ImageShape
from ganaug.gan.trainer import GanTrainer
from ganaug.store import DatasetRef

WEIGHT_KEYS = ("generator", "discriminator", "generator_ema", "g_optimizer", "d_optimizer", "rng", "step")
SHAPE = ImageShape(1, 8, 8, 3)


def _data(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(36, 1, 8, 8, generator=generator) * 2 - 1
    return images.to(device), (torch.arange(36) % 3).to(device)


def _same(a: object, b: object, where: str = "", atol: float = 0.0) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        if atol == 0.0 or not a.is_floating_point():
            assert torch.equal(a.cpu(), b.cpu()), where
        else:
            assert torch.allclose(a.cpu(), b.cpu(), atol=atol, rtol=atol), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where  # type: ignore[union-attr]
        for key in a:
            _same(a[key], b[key], f"{where}.{key}", atol)  # type: ignore[index]
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where  # type: ignore[arg-type]
        for i, (x, y) in enumerate(zip(a, b)):  # type: ignore[call-overload]
            _same(x, y, f"{where}[{i}]", atol)
    else:
        assert a == b, where


def test_fallback_reasons_name_what_cannot_be_captured() -> None:
    cuda = torch.device("cuda")
    assert "CPU device" in graph_fallback_reason(GanConfig(), torch.device("cpu"))  # type: ignore[operator]
    assert "double backward" in graph_fallback_reason(GanConfig(loss="wgan-gp"), cuda)  # type: ignore[operator]
    assert "double backward" in graph_fallback_reason(GanConfig(r1_gamma=1.0), cuda)  # type: ignore[operator]
    assert "ADA" in graph_fallback_reason(GanConfig(diffaugment=["translation"], ada_target=0.6), cuda)  # type: ignore[operator]
    assert "cosine" in graph_fallback_reason(GanConfig(lr_schedule="cosine"), cuda)  # type: ignore[operator]


def test_compile_accepts_the_old_booleans_and_the_two_capture_modes() -> None:
    assert GanConfig().compile is False and GanConfig(compile="off").compile is False
    assert GanConfig(compile=True).compile is True
    assert GanConfig(compile="graph").compile == "graph" and GanConfig(compile="auto").compile == "auto"
    assert GanConfig().model_dump(mode="json")["compile"] is False  # the default's config hash is unchanged
    with pytest.raises(ValueError, match="compile"):
        GanConfig(compile="graf")
    GanConfig(compile="graph", loss="wgan-gp")  # a penalty only makes the graph fall back (torch.compile refuses it)


def test_graph_asked_for_on_cpu_logs_one_line_and_trains_as_eager(tiny_dataset: DatasetRef, tiny_cfg: GanConfig,
                                                                  tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ganaug.gan.graph"):
        graph = train_gan(tiny_dataset, tiny_cfg.model_copy(update={"compile": "graph"}), tmp_path / "graph")
    lines = [record.getMessage() for record in caplog.records if record.name == "ganaug.gan.graph"]
    assert lines == ["training step runs eagerly, not as a CUDA graph: CPU device (CUDA graphs need a CUDA GPU)"]
    eager = train_gan(tiny_dataset, tiny_cfg, tmp_path / "eager")
    graph_state, eager_state = read_checkpoint(graph.checkpoint_path), read_checkpoint(eager.checkpoint_path)
    for key in WEIGHT_KEYS:
        _same(graph_state[key], eager_state[key], key)


def test_the_captured_step_with_a_device_ema_weight_equals_the_eager_step() -> None:
    """What the graph replays (`device_step` with the EMA weight in a 0-d tensor, counts kept by the host) is the
    eager step, bit for bit on CPU; a checkpoint records the optimizers as eager training does."""
    cfg = GanConfig(batch_size=8, latent_dim=8, g_width=16, d_width=8, ema_decay=0.9, diffaugment=["translation", "cutout"],
                    lecam_weight=0.1, device="cpu", seed=3)
    eager, captured = (GanTrainer(cfg, SHAPE, torch.device("cpu"), *_data()) for _ in range(2))
    weight = torch.zeros(())
    for _ in range(5):
        eager_losses = eager.train_step()
        weight.fill_(captured.ema.weight())  # type: ignore[union-attr]
        captured_losses = captured.device_step(weight)
        captured.ema.updates += 1  # type: ignore[union-attr]
        captured.g_scheduler.step()
        captured.d_scheduler.step()
        captured.step += 1
        assert torch.equal(eager_losses, captured_losses)
    _same(eager.state_dict(), captured.state_dict())
    captured._set_capturable(True)
    assert all(not group["capturable"] for group in captured.state_dict()["g_optimizer"]["param_groups"])
    assert all(group["capturable"] for group in captured.g_optimizer.param_groups)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_graph_step_equals_the_eager_step(amp: bool) -> None:
    steps = WARMUP_STEPS + 6  # warm-up, capture, then replays
    cfg = GanConfig(batch_size=8, latent_dim=8, g_width=16, d_width=8, ema_decay=0.9, diffaugment=["translation", "cutout"],
                    device="cuda", amp=amp, seed=3)
    eager = GanTrainer(cfg, SHAPE, torch.device("cuda"), *_data("cuda"))
    graphed = GanTrainer(cfg.model_copy(update={"compile": "graph"}), SHAPE, torch.device("cuda"), *_data("cuda"))
    assert eager.step_graph is None and graphed.step_graph is not None
    eager_losses = torch.stack([eager.train_step() for _ in range(steps)])
    graphed_losses = torch.stack([graphed.train_step() for _ in range(steps)])
    assert graphed.step_graph is not None and graphed.step_graph.graph is not None  # it was captured and replayed
    tolerance = 1e-2 if amp else 1e-4
    assert torch.allclose(eager_losses, graphed_losses, atol=tolerance, rtol=tolerance)
    assert torch.equal(eager.rng.get_state(), graphed.rng.get_state())  # each replay drew fresh numbers
    eager_state, graphed_state = eager.state_dict(), graphed.state_dict()
    for key in WEIGHT_KEYS:
        _same(eager_state[key], graphed_state[key], key, atol=tolerance)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_training_resumes_and_its_checkpoints_load_eagerly(tiny_dataset: DatasetRef, tiny_cfg: GanConfig,
                                                                     tmp_path: Path) -> None:
    cfg = tiny_cfg.model_copy(update={"device": "cuda", "compile": "graph", "amp": False, "steps": 12,
                                      "checkpoint_every": 6, "metrics_every": 3, "grid_every": None})
    whole = train_gan(tiny_dataset, cfg, tmp_path / "whole")
    train_gan(tiny_dataset, cfg.model_copy(update={"steps": 6}), tmp_path / "parts")
    resumed = train_gan(tiny_dataset, cfg.model_copy(update={"resume": True}), tmp_path / "parts")
    assert resumed.resumed_from == 6 and resumed.steps == 12
    whole_state, resumed_state = read_checkpoint(whole.checkpoint_path), read_checkpoint(resumed.checkpoint_path)
    for key in WEIGHT_KEYS:
        _same(whole_state[key], resumed_state[key], key, atol=1e-4)
    assert all(not group["capturable"] for group in whole_state["d_optimizer"]["param_groups"])
    eager = GanTrainer(cfg.model_copy(update={"compile": False}), SHAPE, torch.device("cuda"), *_data("cuda"))
    eager.load_state_dict(whole_state)
    assert torch.isfinite(eager.train_step()).all()
