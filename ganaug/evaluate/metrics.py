"""Generative metrics on domain features, computed offline (nothing is downloaded).

Features are the penultimate layer of a classifier trained on the real train split (Inception
features mean little for 8x8 digits). Fréchet distance uses torchmetrics' FID with that feature
extractor; precision/recall and density/coverage follow Naeem et al. (2020) with k-NN balls.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from ganaug.classifier import embed, predict_logits, train_classifier
from ganaug.data.tensors import images_to_tensor
from ganaug.errors import DataError
from ganaug.evaluate.config import EvaluateConfig
from ganaug.evaluate.data import ProtocolData

log = logging.getLogger(__name__)

# Below this val accuracy the feature network separates the classes too poorly for distances in
# its feature space (and GAN-test) to say much about the synthetic images.
FEATURE_ACCURACY_FLOOR = 0.8


class _Features(nn.Module):
    """Adapter that torchmetrics' FID calls as its feature extractor: (N, ...) -> (N, num_features)."""

    def __init__(self, num_features: int, extractor: nn.Module | None = None) -> None:
        super().__init__()
        self.num_features = num_features
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.extractor is None else self.extractor(x)


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D)."""
    if real_features.ndim != 2 or fake_features.ndim != 2 or real_features.shape[1] != fake_features.shape[1]:
        raise DataError(f"feature sets must be (N, D) with the same D, got {tuple(real_features.shape)} and {tuple(fake_features.shape)}")
    if len(real_features) < 2 or len(fake_features) < 2:
        raise DataError("the Fréchet distance needs at least 2 samples in each set")
    metric = FrechetInceptionDistance(feature=_Features(real_features.shape[1]), reset_real_features=True)
    metric.update(real_features.double(), real=True)
    metric.update(fake_features.double(), real=False)
    return max(0.0, float(metric.compute()))  # rounding can leave -1e-12 for identical sets


def _kth_neighbour_radius(features: torch.Tensor, k: int) -> torch.Tensor:
    distances = torch.cdist(features, features)  # (N, N); the diagonal is the point itself
    return distances.kthvalue(k + 1, dim=1).values


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    """k-NN manifold metrics: precision, recall, density and coverage of `fake` against `real`."""
    if min(len(real), len(fake)) <= k:
        raise DataError(f"precision/recall with k={k} needs more than {k} real and synthetic samples")
    real, fake = real.double(), fake.double()
    real_radius = _kth_neighbour_radius(real, k)  # (N,)
    fake_radius = _kth_neighbour_radius(fake, k)  # (M,)
    real_to_fake = torch.cdist(real, fake)  # (N, M)
    inside_real = real_to_fake <= real_radius[:, None]  # fake j inside real i's ball
    inside_fake = real_to_fake <= fake_radius[None, :]  # real i inside fake j's ball
    return {
        "precision": float(inside_real.any(0).double().mean()),
        "recall": float(inside_fake.any(1).double().mean()),
        "density": float(inside_real.sum(0).double().mean() / k),
        "coverage": float(inside_real.any(1).double().mean()),
    }


def _subsample(count: int, limit: int, seed: int) -> np.ndarray:
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:limit])


def generative_metrics(data: ProtocolData, cfg: EvaluateConfig) -> dict[str, Any]:
    """Fréchet distance, precision/recall/density/coverage and GAN-test of the synthetic table."""
    if data.synthetic_images is None or data.synthetic_labels is None:
        raise DataError("generative metrics need synthetic data")
    seed = cfg.base_seed
    trained = train_classifier(
        cfg.arch,
        (images_to_tensor(data.train_images), torch.from_numpy(data.train_labels)),
        (images_to_tensor(data.val_images), torch.from_numpy(data.val_labels)),
        data.num_classes,
        cfg.train,
        seed=seed,
    )
    reference = data.train_images if cfg.metrics_reference_split == "train" else data.val_images
    real_pick = _subsample(len(reference), cfg.metrics_max_samples, seed)
    fake_pick = _subsample(len(data.synthetic_images), cfg.metrics_max_samples, seed + 1)
    real_features = embed(trained.model, images_to_tensor(reference[real_pick]))
    fake_images = images_to_tensor(data.synthetic_images)
    fake_features = embed(trained.model, fake_images[fake_pick])
    predicted = predict_logits(trained.model, fake_images).argmax(1).numpy()
    metrics: dict[str, Any] = {
        "frechet_distance": frechet_distance(real_features, fake_features),
        **precision_recall_density_coverage(real_features, fake_features, cfg.nearest_k),
        "gan_test_accuracy": float((predicted == data.synthetic_labels).mean()),
        "feature_classifier_val_accuracy": float(trained.best_val_accuracy),
        "feature_classifier_steps": int(trained.steps_run),
        "feature_classifier_best_step": int(trained.best_step),
        "reference_split": cfg.metrics_reference_split,
        "real_samples": int(len(real_pick)),
        "synthetic_samples": int(len(fake_pick)),
        "nearest_k": cfg.nearest_k,
    }
    if len(real_features) >= 4:
        # The same statistic between two random halves of the real set: the noise floor at this sample size.
        order = torch.from_numpy(np.random.default_rng(seed + 2).permutation(len(real_features)))
        half = len(order) // 2
        metrics["frechet_distance_real_halves"] = frechet_distance(
            real_features[order[:half]], real_features[order[half:]]
        )
    if trained.best_val_accuracy < FEATURE_ACCURACY_FLOOR:
        metrics["warning"] = (
            f"the feature classifier reaches only {trained.best_val_accuracy:.3f} val accuracy (below "
            f"{FEATURE_ACCURACY_FLOOR}); Fréchet distance, precision/recall and GAN-test on its features mean little"
        )
        log.warning(metrics["warning"])
    log.info("generative metrics: %s", metrics)
    return metrics
