"""The self_training protocol: the no-GAN baseline that learns from the unlabelled pool.

A teacher (the run's architecture, trained on the labelled images) pseudo-labels the pool: the
argmax of its softmax wherever that probability reaches a confidence threshold. A student with fresh
weights (same architecture, seed and augmentation) trains on the labelled plus pseudo-labelled images
and becomes the next round's teacher.

Every choice is made on the val split, never on test (a naive loop can get worse with each round
as its pseudo-labels drift):
- augmentation (`SelfTrainingConfig.augment: auto`): the first teacher is trained with the classic
  protocol's affine augmentation and without; the better on val is the teacher, and its augmentation
  is every student's (classic on a tie). Classic augmentation helps on MNIST and hurts on
  Fashion-MNIST at 10 labels per class, so a fixed choice would make a weak baseline on one of them.
- threshold: round 1 trains one student per threshold in `SelfTrainingConfig.thresholds` from the
  same teacher; the one with the best val accuracy (the first listed on a tie) is used for every
  later round. Cost: 1 + T + (R - 1) trainings, not T x R.
- rounds: a round continues the loop only if its student beats the best val accuracy so far
  (strictly); the first round that does not stops the loop. The classifier kept is the best on val
  of the teacher (round 0) and the students trained; on a tie the later round (a student that
  matches its teacher on val has learnt from more images, and small val splits tie often).
A threshold at which no pool image qualifies (with `class_balance`: at which some class has none) trains
no student; its val accuracy is reported as None.
With `class_balance` each class keeps at most as many pseudo-labels as the class with the fewest
confident ones has, most confident first, so a teacher's bias toward easy classes does not snowball.
`pool_max_samples` pseudo-labels a fixed subset of the pool drawn with the run's seed.
Val accuracy is `TrainedClassifier.best_val_accuracy` (the trainer's fixed val subset), the same
number the evaluation row reports.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ganaug.classifier import TrainedClassifier, predict_logits, train_classifier
from ganaug.classifier.train import BatchAugment, TrainConfig
from ganaug.data.tensors import images_to_tensor
from ganaug.evaluate.augment import classic_augment
from ganaug.evaluate.config import EvaluateConfig
from ganaug.evaluate.data import ProtocolData
from ganaug.evaluate.pool import PoolFit, fit_gan_classifier, require_pool

log = logging.getLogger(__name__)
PROTOCOL = "self_training"


@dataclass(frozen=True)
class _Round:
    """A classifier of the loop: the teacher (round 0, no threshold) or a student and its pseudo-labels."""

    trained: TrainedClassifier
    threshold: float | None
    pseudo: int
    chosen: tuple[torch.Tensor, torch.Tensor] | None = None  # pool indices (into the loop's pool) and their labels

    @property
    def val_accuracy(self) -> float:
        return self.trained.best_val_accuracy


def pseudo_label(probabilities: torch.Tensor, threshold: float, class_balance: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool indices (sorted) and labels of the predictions (N, K) whose top probability reaches `threshold`."""
    confidence, predicted = probabilities.max(dim=1)  # (N,), (N,)
    confident = torch.nonzero(confidence >= threshold).flatten()
    if not class_balance or len(confident) == 0:
        return confident, predicted[confident]
    cap = int(torch.bincount(predicted[confident], minlength=probabilities.shape[1]).min())
    kept = []
    for label in range(probabilities.shape[1]):
        members = confident[predicted[confident] == label]
        order = torch.argsort(confidence[members], descending=True, stable=True)
        kept.append(members[order[:cap]])
    index = torch.cat(kept).sort().values
    return index, predicted[index]


def pool_subset(pool: torch.Tensor, max_samples: int | None, seed: int) -> torch.Tensor:
    """The pool images to pseudo-label: all, or a subset of `max_samples` drawn with the run's seed."""
    keep = pool_positions(len(pool), max_samples, seed)
    return pool if keep is None else pool[torch.from_numpy(keep)]


def pool_positions(size: int, max_samples: int | None, seed: int) -> np.ndarray | None:
    """Sorted positions of `pool_subset`'s images in the pool (None: the whole pool)."""
    if max_samples is None or size <= max_samples:
        return None
    return np.sort(np.random.default_rng(np.random.SeedSequence([seed, 23])).permutation(size)[:max_samples])


class _Loop:
    """One run's teacher/student trainings: the labelled set, the pool, val, architecture, seed, augmentation."""

    def __init__(self, labelled: tuple[torch.Tensor, torch.Tensor], pool: torch.Tensor, data: ProtocolData,
                 cfg: EvaluateConfig, seed: int) -> None:
        self.labelled, self.pool, self.cfg, self.seed = labelled, pool, cfg, seed
        self.num_classes = data.num_classes
        self.val = (images_to_tensor(data.val_images), torch.from_numpy(data.val_labels))
        self.trainings, self.seconds = 0, 0.0
        self.augment_name = ""  # classic or none, set by choose_augmentation
        self.val_by_augment: dict[str, float] = {}

    @property
    def augment(self) -> BatchAugment | None:
        """The batch augmentation of the loop's trainings (`augment_name`)."""
        return classic_augment(self.cfg.classic) if self.augment_name == "classic" else None

    def choose_augmentation(self, train_cfg: TrainConfig, needed: bool) -> TrainedClassifier | None:
        """Set the augmentation of every later training (`SelfTrainingConfig.augment`) and return its first teacher.

        auto trains the teacher on the labelled images with classic augmentation and without, and keeps
        the better on val (classic on a tie). A fixed choice trains one teacher, and none at all when
        `needed` is False (a first teacher given from elsewhere).
        """
        setting = self.cfg.self_training.augment
        names = ("classic", "none") if setting == "auto" else (setting,)
        if not needed and len(names) == 1:
            self.augment_name = names[0]
            return None
        teachers = {}
        for name in names:
            self.augment_name = name
            teachers[name] = self.train(*self.labelled, train_cfg)
            self.val_by_augment[name] = teachers[name].best_val_accuracy
        self.augment_name = max(names, key=lambda name: teachers[name].best_val_accuracy)  # the first listed on a tie
        return teachers[self.augment_name]

    def train(self, x: torch.Tensor, y: torch.Tensor, train_cfg: TrainConfig) -> TrainedClassifier:
        trained = train_classifier(self.cfg.arch, (x, y), self.val, self.num_classes, train_cfg, seed=self.seed,
                                   augment=self.augment)
        self.trainings, self.seconds = self.trainings + 1, self.seconds + trained.seconds
        return trained

    def probabilities(self, teacher: TrainedClassifier) -> torch.Tensor:
        """The teacher's class probabilities (P, K) on the pool."""
        return torch.softmax(predict_logits(teacher.model, self.pool), dim=1)

    def student(self, probabilities: torch.Tensor, threshold: float) -> _Round | None:
        """A fresh network trained on the labelled images plus the pool images confident at `threshold` (None: no image is)."""
        settings = self.cfg.self_training
        index, labels = pseudo_label(probabilities, threshold, settings.class_balance)
        if len(index) == 0:
            return None
        x = torch.cat([self.labelled[0], self.pool[index]])
        y = torch.cat([self.labelled[1], labels])
        steps = settings.student_steps or self.cfg.train.steps_for(len(y))
        trained = self.train(x, y, self.cfg.train.model_copy(update={"steps": steps}))
        return _Round(trained, threshold, len(index), (index, labels))


def _best(candidates: list[_Round | None]) -> _Round | None:
    """The trained candidate with the best val accuracy (the first on a tie); None when none was trained."""
    trained = [candidate for candidate in candidates if candidate is not None]
    return max(trained, key=lambda candidate: candidate.val_accuracy) if trained else None


def fit_self_training(images: torch.Tensor, labels: torch.Tensor, data: ProtocolData, cfg: EvaluateConfig, seed: int,
                      train_cfg: TrainConfig, teacher: TrainedClassifier | None = None) -> PoolFit:
    """Teacher on (images, labels), then students on labels plus pseudo-labelled pool images; keep the best on val.

    `teacher`: a first teacher trained elsewhere (gan_self_training: the semi-supervised GAN's
    discriminator) instead of the classic protocol's network; it is round 0 and can be kept.
    """
    settings = cfg.self_training
    pool = pool_subset(require_pool(data, PROTOCOL), settings.pool_max_samples, seed)
    loop = _Loop((images, labels), pool, data, cfg, seed)
    own_teacher = loop.choose_augmentation(train_cfg, needed=teacher is None)
    teacher = teacher or own_teacher
    assert teacher is not None  # choose_augmentation trains one whenever none is given
    rounds = [_Round(teacher, None, 0)]
    probabilities = loop.probabilities(teacher)
    first = [loop.student(probabilities, threshold) for threshold in settings.thresholds]
    candidate = _best(first)
    while candidate is not None and candidate.threshold is not None:  # (a student always has a threshold)
        improved = candidate.val_accuracy > rounds[-1].val_accuracy  # rounds[-1] is the best so far
        rounds.append(candidate)
        if not improved or len(rounds) > settings.rounds:
            break
        candidate = loop.student(loop.probabilities(candidate.trained), candidate.threshold)
    kept_round = max(range(len(rounds)), key=lambda r: (rounds[r].val_accuracy, r))
    details = _details(rounds, kept_round, first, loop)
    kept = dataclasses.replace(rounds[kept_round].trained, seconds=loop.seconds)  # every training's time
    log.debug("self_training seed %d: val by round %s, kept round %d", seed, details["val_by_round"], kept_round)
    return PoolFit(kept, rounds[kept_round].pseudo, details, _pool_labels(rounds[kept_round], data, settings, seed))


def fit_gan_self_training(images: torch.Tensor, labels: torch.Tensor, data: ProtocolData, cfg: EvaluateConfig, seed: int,
                          train_cfg: TrainConfig) -> PoolFit:
    """Self-training whose first teacher is the semi-supervised GAN's discriminator (the gan_classifier protocol's).

    The GAN brings the pool in twice: its discriminator has learnt from the pool's images, and its
    labels of the pool start the student rounds; everything after the first teacher is `self_training`.
    """
    gan = fit_gan_classifier(images, labels, data, cfg, seed)
    fit = fit_self_training(images, labels, data, cfg, seed, train_cfg, teacher=gan.trained)
    trained = dataclasses.replace(fit.trained, seconds=gan.trained.seconds + fit.trained.seconds)
    return dataclasses.replace(fit, trained=trained, details={**fit.details, "teacher": "gan_classifier", "gan": gan.details})


def _pool_labels(kept: _Round, data: ProtocolData, settings: Any, seed: int) -> np.ndarray:
    """Per image of the whole pool, the pseudo-label the kept classifier trained on (-1: none)."""
    size = 0 if data.pool_images is None else len(data.pool_images)
    labels = np.full(size, -1, dtype=np.int64)
    if kept.chosen is not None:
        index = kept.chosen[0].numpy()
        positions = pool_positions(size, settings.pool_max_samples, seed)
        labels[index if positions is None else positions[index]] = kept.chosen[1].numpy()
    return labels


def _details(rounds: list[_Round], kept_round: int, first: list[_Round | None], loop: _Loop) -> dict[str, Any]:
    """What the loop chose and why, as plain JSON numbers (evaluation.parquet's pool_details)."""
    return {
        "threshold": rounds[1].threshold if len(rounds) > 1 else None,
        "rounds_run": len(rounds) - 1,
        "round_kept": kept_round,
        "val_by_round": [r.val_accuracy for r in rounds],
        "pseudo_by_round": [r.pseudo for r in rounds],
        "thresholds": list(loop.cfg.self_training.thresholds),
        "val_by_threshold": [r.val_accuracy if r is not None else None for r in first],
        "pseudo_by_threshold": [r.pseudo if r is not None else 0 for r in first],
        "pool": len(loop.pool),
        "augment": loop.augment_name,
        "val_by_augment": loop.val_by_augment,
        "trainings": loop.trainings,
    }
