"""Helpers for the architecture-search tests: tiny 8x8 digits datasets, tiny configs, a toy fitness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ganaug.classifier import ArchSpec
from ganaug.nas.config import SearchConfig, SpaceConfig
from ganaug.nas.evaluator import TrialResult
from ganaug.store import DatasetMeta, DatasetRef, SyntheticRef, write_dataset

META = DatasetMeta(height=8, width=8, channels=1, class_names=[str(i) for i in range(10)], ingestion_source="digits")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    images = np.round(digits.images / 16.0 * 255.0).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    return images, digits.target.astype(np.int64)


def write_tiny_dataset(folder: Path, per_class: tuple[int, int, int] = (16, 6, 6)) -> DatasetRef:
    """A class-balanced digits subset: per_class = (train, val, test) images of each class."""
    images, labels = _digits()
    rows, splits = [], []
    for label in range(10):
        members = np.flatnonzero(labels == label)[: sum(per_class)]
        rows.extend(members)
        splits.extend(["train"] * per_class[0] + ["val"] * per_class[1] + ["test"] * per_class[2])
    rows = np.array(rows)
    return write_dataset(folder / "dataset.parquet", images[rows], labels[rows], np.array(splits), META)


def write_tiny_synthetic(folder: Path, per_class: int = 10, seed: int = 0) -> SyntheticRef:
    """Noisy copies of digits (not those of the tiny dataset's splits) standing in for GAN samples."""
    images, labels = _digits()
    rng = np.random.default_rng(seed)
    rows = np.concatenate([np.flatnonzero(labels == label)[-per_class:] for label in range(10)])
    noisy = np.clip(images[rows].astype(int) + rng.integers(-25, 26, images[rows].shape), 0, 255).astype(np.uint8)
    n = len(rows)
    ref = write_dataset(
        folder / "synthetic.parquet", noisy, labels[rows], np.full(n, "train"), META,
        sample_ids=np.array([f"syn-{i:05d}" for i in range(n)]), sources=np.full(n, "synthetic"),
        extra_columns={"checkpoint_id": np.full(n, "test-ckpt"), "quality_score": np.ones(n, dtype=np.float32)},
    )
    return SyntheticRef(**ref.model_dump(exclude={"kind"}))


def tiny_config(**overrides: object) -> SearchConfig:
    """A search that trains 4 very small CNNs for one epoch each."""
    values: dict[str, object] = {
        "n_trials": 4, "steps": 10, "final_steps": 10, "population_size": 2, "tournament_size": 2,
        "storage": "memory", "batch_size": 32,
        "space": SpaceConfig(max_blocks=2, channels=[4, 8], head_widths=[0, 16]),
    }
    values.update(overrides)
    return SearchConfig(**values)


TARGET = ArchSpec.model_validate({
    "blocks": [{"channels": 32, "kernel": 3, "pool": "max"}, {"channels": 16, "kernel": 5, "pool": "avg"},
               {"channels": 64, "kernel": 3, "pool": "none"}],
    "norm": "group", "activation": "silu", "dropout": 0.25, "head_width": 64,
})


def toy_fitness(arch: ArchSpec) -> float:
    """A known function of the spec: the share of TARGET's choices that `arch` matches (1.0 = TARGET)."""
    score = float(len(arch.blocks) == len(TARGET.blocks))
    for i, target in enumerate(TARGET.blocks):
        block = arch.blocks[i] if i < len(arch.blocks) else None
        score += sum(block is not None and getattr(block, f) == getattr(target, f) for f in ("channels", "kernel", "pool"))
    score += sum(getattr(arch, f) == getattr(TARGET, f) for f in ("norm", "activation", "dropout", "head_width"))
    return score / (1 + 3 * len(TARGET.blocks) + 4)


def toy_task(arch: ArchSpec, prune: object = None, augment: float = 0.0) -> TrialResult:
    """Evaluate with the toy fitness instead of training (instant, deterministic)."""
    fitness = toy_fitness(arch)
    return TrialResult(arch_json=arch.to_json(), accuracy=fitness, parameter_count=sum(b.channels for b in arch.blocks),
                       state="complete", fidelity="full", steps_run=1, seconds=0.0, val_curve=(fitness,))


TOY_SPACE = SpaceConfig(max_blocks=4, channels=[8, 16, 32, 64], kernels=[3, 5], pools=["max", "avg", "none"],
                        norms=["batch", "group", "none"], activations=["relu", "gelu", "silu", "leaky_relu"],
                        dropouts=[0.0, 0.25, 0.5], head_widths=[0, 64, 128])


@pytest.fixture
def tiny_data(tmp_path: Path) -> tuple[DatasetRef, SyntheticRef]:
    """A tiny dataset.parquet and synthetic.parquet in the test's temporary folder."""
    return write_tiny_dataset(tmp_path), write_tiny_synthetic(tmp_path)
