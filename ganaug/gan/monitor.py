"""Collapse monitor: diversity and coverage of generated images against held-out real val images.

Every `monitor_every` steps the sampling generator (the EMA copy when there is one) draws
`monitor_per_class` images per class from fixed noise; they are compared per class with up to as
many real val images of that class:

- **within-class spread**: the per-pixel standard deviation of a class's images, averaged over
  pixels, as a share of the real val images' spread (1 = as varied as real data, 0 = one image);
- **recall** (Kynkäänniemi et al. 2019): the share of real val images that lie inside the k-NN ball
  of some generated image of their class; a collapsed class covers almost none;
- **Fréchet distance** between the two sets' Gaussians, averaged over classes;
- **nearest-neighbour CAS**: the accuracy on the real val images of a 1-nearest-neighbour classifier
  (pixel space) whose training set is the generated images -- a classification accuracy score
  without training a classifier. It drops when samples are off the real images (low fidelity) and
  when a class's samples miss part of it (low coverage); the best checkpoint is the one where it
  is highest. (The Fréchet distance on these random features picked early, blurry checkpoints with
  a lower CAS in every run measured, docs/benchmarks/gan.md, so it is reported but not used.)

Recall and Fréchet distance are computed on features of a fixed, randomly initialised convolutional
network. No classifier needs training for it (training one inside the GAN stage would cost more than
the monitor is worth, and would look at the val split through a second model); random convolutional
features preserve local structure such as strokes and edges better than raw pixels, and Naeem et
al. (2020) found k-NN fidelity/diversity metrics on random embeddings to rank generators sensibly.
The spread stays in pixel space, where "every sample of a class is the same image" is literal.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganaug.device import WEIGHT_INIT_LOCK
from ganaug.errors import DataError

log = logging.getLogger(__name__)

NEAREST_K = 3  # neighbours that set each generated image's ball in the recall
FEATURE_SEED = 1234  # the random feature network is the same in every run
NOISE_SEED_OFFSET = 7919  # monitor noise differs from the sample grids' noise


def within_class_spread(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K,) per class: per-pixel standard deviation of its images, averaged over pixels (NaN below 2 images)."""
    spread = torch.full((num_classes,), float("nan"))
    flat = images.float().flatten(1)
    for label in range(num_classes):
        members = flat[labels == label]
        if len(members) >= 2:
            spread[label] = members.std(dim=0).mean()
    return spread


def knn_recall(real: torch.Tensor, fake: torch.Tensor, k: int = NEAREST_K) -> float:
    """Share of `real` (N, D) within the k-NN ball of at least one `fake` (M, D) point (radius from fakes)."""
    if len(fake) <= k or len(real) == 0:
        raise DataError(f"recall with k={k} needs more than {k} generated and at least 1 real sample")
    fake = fake.double()
    radius = torch.cdist(fake, fake).kthvalue(k + 1, dim=1).values  # (M,); the first neighbour is the point itself
    inside = torch.cdist(real.double(), fake) <= radius[None, :]  # (N, M)
    return float(inside.any(dim=1).double().mean())


def nearest_neighbour_accuracy(train_images: torch.Tensor, train_labels: torch.Tensor, images: torch.Tensor,
                               labels: torch.Tensor) -> float:
    """Accuracy on (`images`, `labels`) of a 1-nearest-neighbour classifier (Euclidean, pixels) fit on the train set."""
    if len(train_images) == 0 or len(images) == 0:
        raise DataError("nearest-neighbour accuracy needs at least one training and one scored image")
    distances = torch.cdist(images.float().flatten(1), train_images.float().flatten(1))  # (N, M)
    predicted = train_labels[distances.argmin(dim=1)]
    return float((predicted == labels).float().mean())


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + tr(S_r + S_f - 2 (S_r S_f)^1/2) of Gaussians fitted to (N, D) and (M, D) features."""
    if len(real) < 2 or len(fake) < 2:
        raise DataError("the Fréchet distance needs at least 2 samples in each set")
    real, fake = real.double(), fake.double()
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    # tr((S_r S_f)^1/2) = sum of sqrt(eigenvalues of S_r^1/2 S_f S_r^1/2), a symmetric PSD matrix.
    values, vectors = torch.linalg.eigh(cov_r)
    root_r = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root_r @ cov_f @ root_r).clamp_min(0).sqrt().sum()
    distance = (real.mean(0) - fake.mean(0)).pow(2).sum() + cov_r.trace() + cov_f.trace() - 2 * middle
    return max(float(distance), 0.0)


class RandomFeatures(nn.Module):
    """A fixed, randomly initialised conv net: images (N, C, H, W) in [-1, 1] -> features (N, 96)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        with WEIGHT_INIT_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(FEATURE_SEED)
            self.first = nn.Conv2d(channels, 32, 3, stride=2, padding=1)
            self.second = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        first = torch.relu(self.first(images.float()))  # (N, 32, H/2, W/2)
        second = torch.relu(self.second(first))  # (N, 64, H/4, W/4)
        return torch.cat([first.mean(dim=(2, 3)), second.mean(dim=(2, 3))], dim=1)  # (N, 96)


@dataclass(frozen=True)
class MonitorReading:
    """One measurement; per-class tensors are (K,) and may hold NaN for classes without val images."""

    spread: torch.Tensor  # generated / real within-class spread
    recall: torch.Tensor
    frechet: torch.Tensor
    collapse_spread: float
    nn_cas: float = float("nan")  # accuracy on the real val subset of a 1-NN classifier fit on the generated images

    @property
    def collapsed(self) -> list[int]:
        """Classes whose spread fell below the collapse threshold."""
        return [int(c) for c in torch.nonzero(self.spread < self.collapse_spread).flatten()]

    def row(self) -> dict[str, float]:
        """The metrics.parquet columns of this reading (means and worst class over classes with val data)."""
        return {
            "spread": float(self.spread.nanmean()),
            "min_class_spread": float(_nanmin(self.spread)),
            "recall": float(self.recall.nanmean()),
            "min_class_recall": float(_nanmin(self.recall)),
            "val_frechet": float(self.frechet.nanmean()),
            "val_nn_cas": float(self.nn_cas),
            "collapsed_classes": float(len(self.collapsed)),
        }


def reading_summary(metrics: dict[str, Any]) -> str:
    """A metrics row's collapse reading as one line for progress displays ('' when the row has none)."""
    spread = metrics.get("spread")
    if not isinstance(spread, float) or math.isnan(spread):  # absent or NaN: not measured at this step
        return ""
    text = (f"spread {spread:.2f} (min {metrics['min_class_spread']:.2f}), recall {metrics['recall']:.2f}, "
            f"val 1-NN CAS {metrics['val_nn_cas']:.3f}")
    if metrics.get("collapsed"):
        text += f"; COLLAPSED: {', '.join(metrics['collapsed'])}"
    return text


def _nanmin(values: torch.Tensor) -> torch.Tensor:
    finite = values[~values.isnan()]
    return finite.min() if len(finite) else torch.tensor(float("nan"))


class CollapseMonitor:
    """Compares a generator's samples with a fixed real val subset, class by class."""

    def __init__(self, val_images: torch.Tensor, val_labels: torch.Tensor, num_classes: int, per_class: int,
                 collapse_spread: float, seed: int) -> None:
        self.num_classes, self.per_class, self.collapse_spread = num_classes, per_class, collapse_spread
        self.seed = seed + NOISE_SEED_OFFSET
        picks = [torch.nonzero(val_labels == c).flatten()[:per_class] for c in range(num_classes)]
        if sum(len(p) for p in picks) == 0:
            raise DataError("the collapse monitor needs real val images; the dataset's val split is empty "
                            "(ingest with val_fraction > 0, or set monitor_every=None)")
        index = torch.cat(picks)
        self.real_images, self.real_labels = val_images[index].float(), val_labels[index]
        self.features = RandomFeatures(val_images.shape[1])
        self.real_features = self.features(self.real_images)
        self.real_spread = within_class_spread(self.real_images, self.real_labels, num_classes)
        self.labels = torch.arange(num_classes).repeat_interleave(per_class)  # generated labels, class by class

    @torch.no_grad()
    def measure(self, generator: nn.Module) -> MonitorReading:
        """Sample the generator (in eval mode, as it is used) and compare it with the val subset."""
        from ganaug.gan.sampling import sample

        images = sample(generator, self.labels, self.seed)
        return self.compare(images, self.labels)

    def compare(self, images: torch.Tensor, labels: torch.Tensor) -> MonitorReading:
        """The reading for given generated images (N, C, H, W) in [-1, 1] with labels (N,)."""
        spread = within_class_spread(images, labels, self.num_classes) / self.real_spread
        features = self.features(images.float())
        recall = torch.full((self.num_classes,), float("nan"))
        frechet = torch.full((self.num_classes,), float("nan"))
        for label in range(self.num_classes):
            real = self.real_features[self.real_labels == label]
            fake = features[labels == label]
            if len(real) >= 2 and len(fake) > NEAREST_K:
                recall[label] = knn_recall(real, fake)
                frechet[label] = frechet_distance(real, fake)
        return MonitorReading(spread, recall, frechet, self.collapse_spread,
                              nearest_neighbour_accuracy(images, labels, self.real_images, self.real_labels))
