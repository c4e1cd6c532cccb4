"""Affine augmentation at a searchable strength, applied while a trial trains.

Strength 1 is the classic baseline's transform (+-10 degrees, +-10% zoom, +-10% shift: the
classifier's `random_affine`, which the evaluate `classic` protocol uses); 0 is off; other values
scale all three ranges.
"""

from __future__ import annotations

from ganaug.classifier.augment import random_affine
from ganaug.classifier.train import BatchAugment
from ganaug.errors import ConfigError

MAX_ROTATION_DEGREES = 10.0  # at strength 1
MAX_SCALE = 0.1
MAX_SHIFT = 0.1  # share of the image side
MAX_STRENGTH = 3.0


def affine_augment(strength: float) -> BatchAugment | None:
    """A batch augmentation with random rotation, zoom and shift per image scaled by `strength`; None for 0."""
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise ConfigError(f"augmentation strength must lie in 0..{MAX_STRENGTH:g}, got {strength}")
    if strength == 0.0:
        return None
    return random_affine(MAX_ROTATION_DEGREES * strength, MAX_SCALE * strength, MAX_SHIFT * strength)
