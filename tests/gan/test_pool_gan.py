"""The class-conditional GAN trained on labelled images plus pool images that a self-training teacher labels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ganaug.errors import CheckpointError, ConfigError
from ganaug.gan import GanConfig, train_gan
from ganaug.gan.checkpoint import read_checkpoint
from ganaug.gan.pool import PseudoLabelled
from ganaug.runner import pool_pseudo_labels
from ganaug.store import dataset_ref, pool_size

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from evalhelpers import tiny_eval_config, write_tiny_dataset  # noqa: E402
from test_pool_protocols import write_pool_dataset  # noqa: E402

TINY_GAN = dict(steps=6, batch_size=8, checkpoint_every=3, metrics_every=3, monitor_every=None, grid_every=None,
                device="cpu", g_width=8, d_width=8, latent_dim=8)


def test_a_self_training_teacher_labels_the_pool_and_the_gan_trains_on_it(tmp_path):
    dataset = write_pool_dataset(tmp_path / "dataset.parquet")
    teacher = tiny_eval_config(self_training={"thresholds": [0.5], "rounds": 1})
    pseudo = pool_pseudo_labels(dataset, GanConfig(**TINY_GAN), teacher)
    assert pseudo is not None and pseudo.details["teacher"] == "self_training" and pseudo.details["pool"] == 60
    truth = np.repeat(np.arange(3), 20)  # write_pool_dataset's pool: 20 bar images of each class, in class order
    if len(pseudo.labels):  # the bars are easy: what the teacher labels, it labels right
        assert (pseudo.labels == truth[pseudo.positions]).mean() > 0.9
    result = train_gan(dataset, GanConfig(**TINY_GAN), tmp_path,
                       pseudo_labelled=PseudoLabelled(np.arange(0, 60, 2), truth[::2]))
    assert result.pseudo_labelled == 30
    meta = read_checkpoint(Path(result.checkpoint_path))["meta"]
    assert meta["pseudo_labels_hash"] == PseudoLabelled(np.arange(0, 60, 2), truth[::2]).content_hash()
    with pytest.raises(CheckpointError, match="pseudo_labels_hash"):  # other pseudo-labels: not the same training
        train_gan(dataset, GanConfig(**{**TINY_GAN, "steps": 9, "resume": True}), tmp_path,
                  pseudo_labelled=PseudoLabelled(np.arange(0, 60, 3), truth[::3]))


def test_no_pool_means_no_pseudo_labels_unless_asked_for(tmp_path):
    plain = write_tiny_dataset(tmp_path / "dataset.parquet")
    assert pool_size(plain.path) == 0 and pool_size(write_pool_dataset(tmp_path / "pool" / "dataset.parquet").path) == 60
    assert pool_pseudo_labels(plain, GanConfig(**TINY_GAN)) is None
    assert pool_pseudo_labels(dataset_ref(plain.path), GanConfig(**{**TINY_GAN, "pool": "off"})) is None
    with pytest.raises(ConfigError, match="gan.pool is 'pseudo_label' but .* has no unlabelled pool"):
        pool_pseudo_labels(plain, GanConfig(**{**TINY_GAN, "pool": "pseudo_label"}))
