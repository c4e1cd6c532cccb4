"""Generative metrics on domain features, computed offline (nothing is downloaded).

Features are the penultimate layer of a classifier trained on the real train split (Inception
features mean little for 8x8 digits). The Fréchet distance (torchmetrics' FID on these features) and
the k-NN precision/recall/density/coverage are the ones the GAN's collapse monitor uses.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ganaug.classifier import embed, predict_logits, train_classifier
from ganaug.data.tensors import images_to_tensor
from ganaug.errors import DataError
from ganaug.evaluate.config import EvaluateConfig
from ganaug.evaluate.data import ProtocolData
from ganaug.gan.monitor import frechet_distance, precision_recall_density_coverage

log = logging.getLogger(__name__)

# Below this val accuracy the feature network separates the classes too poorly for distances in
# its feature space (and GAN-test) to say much about the synthetic images.
FEATURE_ACCURACY_FLOOR = 0.8


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
