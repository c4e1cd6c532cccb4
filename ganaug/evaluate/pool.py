"""Protocols that learn from the unlabelled pool: what they return, `gan_classifier` and `semi_augmented`.

`self_training` (ganaug.evaluate.self_training) is the no-GAN baseline that uses the pool;
`gan_classifier` trains the semi-supervised GAN (ganaug.gan.semi) on the run's labelled images, the
pool and generated images, and classifies with its discriminator (kept at its best val step);
`semi_augmented` uses that GAN's generator as the source of synthetic data: the labelled images plus
its samples, each labelled by the discriminator, train the run's classifier as `augmented` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ganaug.classifier import TrainConfig, TrainedClassifier, predict_logits, train_classifier
from ganaug.data.tensors import images_to_tensor
from ganaug.errors import ConfigError
from ganaug.evaluate.config import EvaluateConfig
from ganaug.evaluate.data import ProtocolData
from ganaug.gan.semi import SemiSupervisedGan, train_semi_supervised


@dataclass(frozen=True)
class PoolFit:
    """A pool protocol's trained classifier, how many pseudo-labelled pool images it used, and its choices."""

    trained: TrainedClassifier
    pseudo_labels: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    # per pool image, the label the classifier's training gave it (-1: none); for benchmarks that know the truth
    pool_labels: np.ndarray | None = None
    synthetic: int = 0  # generated images it trained on (semi_augmented)


def require_pool(data: ProtocolData, protocol: str) -> torch.Tensor:
    """The pool as float tensors; a clear error when the dataset has none."""
    if data.pool_images is None or len(data.pool_images) == 0:
        raise ConfigError(
            f"protocol '{protocol}' needs an unlabelled pool (rows with split 'unlabelled' in dataset.parquet); "
            "ingest with --unlabelled PATH or --labels-per-class K, or drop the protocol"
        )
    return images_to_tensor(data.pool_images)


class _Shared:
    """The semi-supervised GANs trained in this process, by everything that determines them (a few kept).

    `gan_classifier`, `gan_self_training` and `semi_augmented` of one seed train the same GAN; training is deterministic, so
    the second reuses the first's (a thread that asks while it trains waits for it). Processes and Dask
    workers each keep their own.
    """

    keep = 2

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, tuple[threading.Lock, list[tuple[PoolFit, SemiSupervisedGan]]]] = OrderedDict()

    def get(self, key: str, train: Callable[[], tuple[PoolFit, SemiSupervisedGan]]) -> tuple[PoolFit, SemiSupervisedGan]:
        with self.lock:
            entry = self.entries.setdefault(key, (threading.Lock(), []))
            self.entries.move_to_end(key)
            while len(self.entries) > self.keep:
                self.entries.popitem(last=False)
        with entry[0]:
            if not entry[1]:
                entry[1].append(train())
            return entry[1][0]


_SHARED = _Shared()


def _gan_key(images: torch.Tensor, labels: torch.Tensor, data: ProtocolData, cfg: EvaluateConfig, seed: int) -> str:
    digest = hashlib.sha256(cfg.semi_supervised.model_dump_json().encode())
    digest.update(f"{cfg.train.device}|{seed}|{data.num_classes}".encode())
    for array in (images.numpy(), labels.numpy(), data.pool_images, data.val_images, data.val_labels):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def fit_gan_classifier(images: torch.Tensor, labels: torch.Tensor, data: ProtocolData, cfg: EvaluateConfig,
                       seed: int) -> PoolFit:
    """Train the semi-supervised GAN on (images, labels) plus the pool; its discriminator is the classifier.

    One seed's GAN is trained once per process and shared by the protocols that use it (`_Shared`).
    """
    return _semi_gan(images, labels, data, cfg, seed, "gan_classifier")[0]


def _semi_gan(images: torch.Tensor, labels: torch.Tensor, data: ProtocolData, cfg: EvaluateConfig, seed: int,
              protocol: str) -> tuple[PoolFit, SemiSupervisedGan]:
    require_pool(data, protocol)
    return _SHARED.get(_gan_key(images, labels, data, cfg, seed), lambda: _train_gan_classifier(images, labels, data, cfg, seed))


# semi_augmented draws this many generated images per synthetic image it keeps, to choose the most confident of each class
SEMI_DRAWS_PER_KEPT = 4


def fit_semi_augmented(images: torch.Tensor, labels: torch.Tensor, data: ProtocolData, cfg: EvaluateConfig, seed: int,
                       train_cfg: TrainConfig, wanted: np.ndarray) -> PoolFit:
    """The labelled images plus `wanted[k]` samples of class k from the semi-supervised GAN's generator.

    The generator is unconditional: it draws `SEMI_DRAWS_PER_KEPT` times as many images as wanted, the
    discriminator labels each with its argmax, and each class keeps its most confident images (all it
    has when fewer were drawn; `details` says how many). The classifier trains as `augmented` does (no
    augmentation, the run's step budget). The GAN is the one `gan_classifier` trains for this seed.
    """
    gan_fit, gan = _semi_gan(images, labels, data, cfg, seed, "semi_augmented")
    drawn, probabilities = gan.sample(int(wanted.sum()) * SEMI_DRAWS_PER_KEPT, seed=seed + 7919)
    confidence, predicted = probabilities.max(dim=1)
    kept = []
    for label, count in enumerate(wanted.tolist()):
        members = torch.nonzero(predicted == label).flatten()
        order = torch.argsort(confidence[members], descending=True, stable=True)
        kept.append(members[order[:count]])
    chosen = torch.cat(kept).sort().values
    x, y = torch.cat([images, drawn[chosen]]), torch.cat([labels, predicted[chosen]])
    val = (images_to_tensor(data.val_images), torch.from_numpy(data.val_labels))
    trained = train_classifier(cfg.arch, (x, y), val, data.num_classes, train_cfg, seed=seed)
    trained = dataclasses.replace(trained, seconds=gan_fit.trained.seconds + trained.seconds)
    details = {"gan": gan_fit.details, "drawn": len(drawn), "synthetic": len(chosen),
               "synthetic_by_class": [len(k) for k in kept], "wanted_by_class": wanted.tolist(),
               "mean_confidence": round(float(confidence[chosen].mean()), 6) if len(chosen) else None}
    return PoolFit(trained, 0, details, synthetic=len(chosen))


def _train_gan_classifier(images: torch.Tensor, labels: torch.Tensor, data: ProtocolData, cfg: EvaluateConfig,
                          seed: int) -> tuple[PoolFit, SemiSupervisedGan]:
    pool = require_pool(data, "gan_classifier")
    val = (images_to_tensor(data.val_images), torch.from_numpy(data.val_labels))
    semi = cfg.semi_supervised.model_copy(update={"device": cfg.train.device})
    gan = train_semi_supervised((images, labels), pool, val, data.num_classes, semi, seed)
    trained = TrainedClassifier(gan.discriminator, gan.best_step, gan.best_val_accuracy, gan.steps_run,  # type: ignore[arg-type]
                                gan.seconds, gan.history)
    last = gan.history[-1] if gan.history else {}
    details = {"pool": len(pool), "gan_steps": gan.steps_run,
               "final_unsupervised_loss": _finite(last.get("unsupervised_loss"))}
    pool_labels = predict_logits(gan.discriminator, pool).argmax(1).numpy()
    return PoolFit(trained, 0, details, pool_labels), gan


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)
