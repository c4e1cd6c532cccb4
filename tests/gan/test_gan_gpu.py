"""The CUDA path: bf16 autocast and torch.compile (skipped without a CUDA GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganaug.gan import GanConfig, discriminator_scores, load_generator, sample, train_gan
from ganaug.store import DatasetRef

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("compile_networks", [False, True])
def test_cuda_training_with_bf16_autocast(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path,
                                          compile_networks: bool) -> None:
    cfg = tiny_cfg.model_copy(update={"device": "cuda", "amp": True, "compile": compile_networks})
    result = train_gan(tiny_dataset, cfg, tmp_path)
    assert result.device.startswith("cuda") and result.steps == cfg.steps
    assert all(isinstance(v, float) for k, v in result.final_metrics.items() if k in ("d_loss", "g_loss"))
    generator, _ = load_generator(result.checkpoint_path, device="cuda")
    images = sample(generator, torch.tensor([0, 1, 2]), seed=0)
    assert images.device.type == "cpu" and torch.isfinite(images).all()
    scores = discriminator_scores(result.checkpoint_path, images, torch.tensor([0, 1, 2]), device="cuda")
    assert torch.isfinite(scores).all()


def test_cuda_resume_continues_from_the_checkpoint(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    cfg = tiny_cfg.model_copy(update={"device": "cuda", "steps": 3})
    train_gan(tiny_dataset, cfg, tmp_path)
    resumed = train_gan(tiny_dataset, cfg.model_copy(update={"steps": 6, "resume": True}), tmp_path)
    assert resumed.resumed_from == 3 and resumed.steps == 6


def test_cuda_stabilisers_and_monitor_with_bf16(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    """ADA, LeCam, minibatch std and the collapse monitor on CUDA under bf16 autocast; the best checkpoint loads."""
    cfg = tiny_cfg.model_copy(update={
        "device": "cuda", "amp": True, "diffaugment": ["translation", "cutout"], "ada_target": 0.6, "ada_kimg": 0.1,
        "lecam_weight": 0.1, "minibatch_std": True, "monitor_every": 3,
    })
    result = train_gan(tiny_dataset, cfg, tmp_path)
    assert result.best_step in (3, 6) and result.best_score is not None
    assert 0.0 <= result.final_metrics["augment_p"] <= 1.0 and result.final_metrics["recall"] is not None
    generator, info = load_generator(result.best_checkpoint_path, device="cuda")
    assert info["selection"]["metric"] == "val_nn_cas"
    assert torch.isfinite(sample(generator, torch.tensor([0, 1, 2]), seed=0)).all()
