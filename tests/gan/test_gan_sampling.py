"""What other stages use: load_generator, sample and discriminator_scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganaug.errors import CheckpointError, DataError
from ganaug.gan import GanConfig, GanResult, discriminator_scores, load_generator, sample, train_gan
from ganaug.gan.checkpoint import content_hash, read_checkpoint
from ganaug.store import DatasetRef


@pytest.fixture
def trained(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> GanResult:
    return train_gan(tiny_dataset, tiny_cfg, tmp_path)


def test_load_generator_returns_an_eval_module_and_metadata(trained: GanResult, tiny_cfg: GanConfig) -> None:
    generator, meta = load_generator(trained.checkpoint_path, device="cpu")
    assert not generator.training and not any(p.requires_grad for p in generator.parameters())
    assert (meta["latent_dim"], meta["num_classes"], meta["channels"], meta["height"], meta["width"]) == (8, 3, 1, 8, 8)
    assert meta["class_names"] == ["c0", "c1", "c2"] and meta["step"] == 6 and meta["use_ema"] is True
    assert GanConfig.model_validate(meta["config"]) == tiny_cfg
    assert meta["checkpoint_id"] == trained.checkpoint_id == content_hash(read_checkpoint(trained.checkpoint_path))


def test_ema_and_raw_generators_differ(trained: GanResult) -> None:
    ema, _ = load_generator(trained.checkpoint_path, use_ema=True, device="cpu")
    raw, _ = load_generator(trained.checkpoint_path, use_ema=False, device="cpu")
    labels = torch.tensor([0, 1, 2])
    assert not torch.equal(sample(ema, labels, seed=0), sample(raw, labels, seed=0))


def test_sample_is_deterministic_per_seed_and_independent_of_batching(trained: GanResult) -> None:
    generator, _ = load_generator(trained.checkpoint_path, device="cpu")
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    first = sample(generator, labels, seed=5)
    assert first.shape == (7, 1, 8, 8) and first.dtype == torch.float32
    assert first.min() >= -1.0 and first.max() <= 1.0
    assert torch.equal(first, sample(generator, labels, seed=5))
    assert torch.allclose(first, sample(generator, labels, seed=5, batch_size=2), atol=1e-5)  # same noise per image
    assert not torch.equal(first, sample(generator, labels, seed=6))
    assert sample(generator, torch.tensor([], dtype=torch.int64), seed=0).shape == (0, 1, 8, 8)


def test_sample_rejects_unknown_labels(trained: GanResult) -> None:
    generator, _ = load_generator(trained.checkpoint_path, device="cpu")
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.2"):
        sample(generator, torch.tensor([0, 3]), seed=0)


def test_generator_without_ema_must_be_loaded_raw(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    result = train_gan(tiny_dataset, tiny_cfg.model_copy(update={"ema_decay": None, "steps": 2}), tmp_path)
    with pytest.raises(CheckpointError, match="has no EMA generator"):
        load_generator(result.checkpoint_path, device="cpu")
    generator, meta = load_generator(result.checkpoint_path, use_ema=False, device="cpu")
    assert meta["use_ema"] is False


def test_discriminator_scores(trained: GanResult) -> None:
    images = torch.rand(5, 1, 8, 8) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1])
    scores = discriminator_scores(trained.checkpoint_path, images, labels, device="cpu", batch_size=2)
    assert scores.shape == (5,) and torch.isfinite(scores).all()
    assert torch.allclose(scores, discriminator_scores(trained.checkpoint_path, images, labels, device="cpu"), atol=1e-5)
    with pytest.raises(DataError, match=r"\(N, 1, 8, 8\)"):
        discriminator_scores(trained.checkpoint_path, torch.zeros(2, 3, 8, 8), labels[:2], device="cpu")
    with pytest.raises(DataError, match="labels must lie"):
        discriminator_scores(trained.checkpoint_path, images[:1], torch.tensor([7]), device="cpu")


def test_loading_a_missing_or_corrupt_checkpoint_names_the_file(trained: GanResult, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(Path(trained.checkpoint_path).read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=f"checkpoint {broken} is corrupt"):
        load_generator(broken, device="cpu")
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / 'nope.pt'} does not exist"):
        discriminator_scores(tmp_path / "nope.pt", torch.zeros(1, 1, 8, 8), torch.tensor([0]), device="cpu")


def test_tiles_by_hand_with_gaps_scale_and_white_leftover_cells() -> None:
    import numpy as np

    from ganaug.gan.sampling import grid_image, tile_images

    images = np.array([[[[10]]], [[[20]]], [[[30]]]], dtype=np.uint8)  # three 1x1 gray images
    # two columns, scale 2, gap 1: rows and columns 1-2 and 4-5 hold tiles; the fourth cell stays white
    expected = np.array([
        [255, 255, 255, 255, 255, 255, 255],
        [255, 10, 10, 255, 20, 20, 255],
        [255, 10, 10, 255, 20, 20, 255],
        [255, 255, 255, 255, 255, 255, 255],
        [255, 30, 30, 255, 255, 255, 255],
        [255, 30, 30, 255, 255, 255, 255],
        [255, 255, 255, 255, 255, 255, 255],
    ], dtype=np.uint8)
    assert np.array_equal(tile_images(images, 2, scale=2)[..., 0], expected)
    picture = grid_image(images, 2, min_cell=2)  # 1x1 images enlarged to 2x2 cells
    assert picture.mode == "L" and np.array_equal(np.asarray(picture), expected)
    assert grid_image(np.zeros((2, 3, 4, 4), dtype=np.uint8), 2).mode == "RGB"
