"""Pool images with teacher-given labels, added to the class-conditional GAN's training images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ganaug.errors import DataError


@dataclass(frozen=True)
class PseudoLabelled:
    """Which pool images (positions among the dataset's pool rows) the GAN also trains on, and their labels."""

    positions: np.ndarray  # (M,) int64 indices into the pool rows, in dataset order
    labels: np.ndarray  # (M,) int64 class codes
    details: dict[str, Any] = field(default_factory=dict)  # how the labels were made (teacher, threshold, rounds)

    def content_hash(self) -> str:
        """sha256 of the positions and labels: a checkpoint trained on other pseudo-labels cannot be resumed."""
        digest = hashlib.sha256(np.ascontiguousarray(self.positions, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def check(self, pool_size: int, num_classes: int) -> None:
        """Raise `DataError` unless every position is a pool row and every label a class."""
        if self.positions.shape != self.labels.shape or self.positions.ndim != 1:
            raise DataError(f"pseudo-labels: {self.positions.shape} positions but {self.labels.shape} labels")
        if len(self.positions) and (self.positions.min() < 0 or self.positions.max() >= pool_size):
            raise DataError(f"pseudo-labels name pool rows outside 0..{pool_size - 1}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= num_classes):
            raise DataError(f"pseudo-labels hold classes outside 0..{num_classes - 1}")
