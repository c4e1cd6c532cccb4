"""Collapse monitor: diversity and coverage of generated images against held-out real val images.

Every `monitor_every` steps the sampling generator (the EMA copy when there is one) draws
`monitor_per_class` images per class from fixed noise; they are compared per class with up to as
many real val images of that class:

- **within-class spread**: the per-pixel standard deviation of a class's images, averaged over
  pixels, as a share of the real val images' spread (1 = as varied as real data, 0 = one image);
- **recall** (Kynkäänniemi et al. 2019): the share of real val images that lie inside the k-NN ball
  of some generated image of their class; a collapsed class covers almost none;
- **Fréchet distance** between the two sets' Gaussians (torchmetrics' FID on these features), averaged
  over classes;
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

The Fréchet distance and the k-NN precision/recall/density/coverage here are the project's only ones;
the evaluate stage applies them to its classifier's features.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

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


def _knn_radius(points: torch.Tensor, k: int) -> torch.Tensor:
    """(P,) each point's distance to its k-th nearest other point (the first neighbour is the point itself)."""
    return torch.cdist(points, points).kthvalue(k + 1, dim=1).values


def knn_recall(real: torch.Tensor, fake: torch.Tensor, k: int = NEAREST_K) -> float:
    """Share of `real` (N, D) within the k-NN ball of at least one `fake` (M, D) point (radius from fakes)."""
    if len(fake) <= k or len(real) == 0:
        raise DataError(f"recall with k={k} needs more than {k} generated and at least 1 real sample")
    fake = fake.double()
    inside = torch.cdist(real.double(), fake) <= _knn_radius(fake, k)[None, :]  # (N, M)
    return float(inside.any(dim=1).double().mean())


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    """k-NN manifold metrics of `fake` (M, D) against `real` (N, D): precision and recall (Kynkäänniemi et al.
    2019), density and coverage (Naeem et al. 2020)."""
    if min(len(real), len(fake)) <= k:
        raise DataError(f"precision/recall with k={k} needs more than {k} real and synthetic samples")
    real, fake = real.double(), fake.double()
    inside_real = torch.cdist(real, fake) <= _knn_radius(real, k)[:, None]  # (N, M): fake j inside real i's ball
    return {
        "precision": float(inside_real.any(dim=0).double().mean()),
        "recall": knn_recall(real, fake, k),
        "density": float(inside_real.sum(dim=0).double().mean() / k),
        "coverage": float(inside_real.any(dim=1).double().mean()),
    }


def nearest_neighbour_accuracy(train_images: torch.Tensor, train_labels: torch.Tensor, images: torch.Tensor,
                               labels: torch.Tensor) -> float:
    """Accuracy on (`images`, `labels`) of a 1-nearest-neighbour classifier (Euclidean, pixels) fit on the train set."""
    if len(train_images) == 0 or len(images) == 0:
        raise DataError("nearest-neighbour accuracy needs at least one training and one scored image")
    distances = torch.cdist(images.float().flatten(1), train_images.float().flatten(1))  # (N, M)
    predicted = train_labels[distances.argmin(dim=1)]
    return float((predicted == labels).float().mean())


class _Features(nn.Module):
    """Adapter that torchmetrics' FID calls as its feature extractor: features (N, D) pass through unchanged."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """torchmetrics' Fréchet distance between Gaussians fitted to feature sets (N, D) and (M, D)."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise DataError(f"feature sets must be (N, D) with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if len(real) < 2 or len(fake) < 2:
        raise DataError("the Fréchet distance needs at least 2 samples in each set")
    metric = FrechetInceptionDistance(feature=_Features(real.shape[1]), reset_real_features=True)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return max(0.0, float(metric.compute()))  # rounding can leave -1e-12 for identical sets


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
