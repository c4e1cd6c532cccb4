"""How each protocol trains its classifier on its training set: the ways of using synthetic data.

`compose_training_set` decides *which* images a run sees; this module decides *how* they are used:
plain mixing, a lower loss weight for synthetic images, pre-training on synthetic images then
fine-tuning on real ones, affine augmentation on top, or soft targets from a real-trained teacher.
Every recipe spends the same step budget (set by the real images kept), so protocols compare at
equal cost of the final classifier.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ganaug.classifier import SampleOptions, TrainedClassifier, predict_logits, train_classifier
from ganaug.classifier.stacked import StackedRun
from ganaug.classifier.train import BatchAugment, TrainConfig
from ganaug.data.tensors import images_to_tensor
from ganaug.evaluate.augment import classic_augment
from ganaug.evaluate.config import CLASSIC_PROTOCOLS, EvaluateConfig
from ganaug.evaluate.data import ProtocolData
from ganaug.evaluate.pool import PoolFit, fit_gan_classifier, fit_semi_augmented
from ganaug.evaluate.self_training import fit_gan_self_training, fit_self_training

Tensors = tuple[torch.Tensor, torch.Tensor]


# Protocols whose run is one plain `train_classifier` call (soft is one too when it has no synthetic images);
# the others (pretrain, soft, the pool protocols) train several classifiers or a GAN.
ONE_FIT = frozenset({"real", "augmented", "synthetic", "classic", "weighted", "augmented_classic", "balanced",
                     "balanced_classic", "oversampled", "balanced_mixed"})


@dataclass(frozen=True)
class SingleFit:
    """The one `train_classifier` call of a run that makes one: what it trains on, how long, and the synthetic images used."""

    run: StackedRun
    train_cfg: TrainConfig
    synthetic: int


def train_run(spec, training, data: ProtocolData, cfg: EvaluateConfig,  # noqa: ANN001
              real_count: int) -> tuple[TrainedClassifier, int] | PoolFit:
    """Train the classifier of one run (a `RunSpec` on its `TrainingSet`); returns it and the synthetic images used
    (a `PoolFit` for the protocols that learn from the unlabelled pool).

    `real_count`, the real images the run's regime keeps, sets the default step budget for every protocol.
    """
    single = single_fit(spec, training, cfg, real_count)
    val = validation_tensors(data)
    if single is not None:
        run = single.run
        return _Fit(cfg, data.num_classes, spec.seed, val)(run.train, single.train_cfg, run.augment, run.options), single.synthetic
    train_cfg = run_train_config(cfg, real_count)
    x, y = images_to_tensor(training.images), torch.from_numpy(training.labels)
    synthetic = torch.from_numpy(training.sources == "synthetic")
    augment = classic_augment(cfg.classic) if spec.protocol in CLASSIC_PROTOCOLS else None
    fit = _Fit(cfg, data.num_classes, spec.seed, val)
    if spec.protocol == "gan_classifier":
        return fit_gan_classifier(x, y, data, cfg, spec.seed)
    if spec.protocol == "semi_augmented":
        wanted = data.synthetic_per_class(training.labels, spec.ratio)
        return fit_semi_augmented(x, y, data, cfg, spec.seed, train_cfg, wanted)
    if spec.protocol == "self_training":
        return fit_self_training(x, y, data, cfg, spec.seed, train_cfg)
    if spec.protocol == "gan_self_training":
        return fit_gan_self_training(x, y, data, cfg, spec.seed, train_cfg)
    if spec.protocol == "pretrain":
        return fit.pretrain((x, y), synthetic, train_cfg, augment), int(synthetic.sum())
    if spec.protocol == "soft":
        return fit.soft((x, y), synthetic, train_cfg, augment)
    raise ValueError(f"internal error: protocol {spec.protocol!r} has no recipe")


def single_fit(spec, training, cfg: EvaluateConfig, real_count: int) -> SingleFit | None:  # noqa: ANN001
    """The one classifier training of a run whose protocol makes one (`ONE_FIT`; soft when it has no synthetic
    images), or None. Such runs can train stacked with others (`ganaug.classifier.stacked`)."""
    synthetic = torch.from_numpy(training.sources == "synthetic")
    if spec.protocol not in ONE_FIT and not (spec.protocol == "soft" and not synthetic.any()):
        return None
    x, y = images_to_tensor(training.images), torch.from_numpy(training.labels)
    augment = classic_augment(cfg.classic) if spec.protocol in CLASSIC_PROTOCOLS else None
    options = SampleOptions(weights=torch.where(synthetic, cfg.strategy.synthetic_weight, 1.0)) \
        if spec.protocol == "weighted" else SampleOptions()
    return SingleFit(StackedRun((x, y), spec.seed, augment, options), run_train_config(cfg, real_count), int(synthetic.sum()))


def run_train_config(cfg: EvaluateConfig, real_count: int) -> TrainConfig:
    """Every protocol's step budget is set by the real images its regime keeps."""
    return cfg.train.model_copy(update={"steps": cfg.train.steps_for(real_count)})


def validation_tensors(data: ProtocolData) -> Tensors:
    return images_to_tensor(data.val_images), torch.from_numpy(data.val_labels)


class _Fit:
    """`train_classifier` bound to one run's architecture, classes, seed and val split."""

    def __init__(self, cfg: EvaluateConfig, num_classes: int, seed: int, val: Tensors) -> None:
        self.cfg, self.num_classes, self.seed, self.val = cfg, num_classes, seed, val

    def __call__(self, train: Tensors, train_cfg: TrainConfig, augment: BatchAugment | None = None,
                 options: SampleOptions | None = None) -> TrainedClassifier:
        return train_classifier(self.cfg.arch, train, self.val, self.num_classes, train_cfg, seed=self.seed,
                                augment=augment, options=options)

    def pretrain(self, train: Tensors, synthetic: torch.Tensor, train_cfg: TrainConfig,
                 augment: BatchAugment | None) -> TrainedClassifier:
        """`pretrain_share` of the steps on the synthetic images, the rest fine-tuning on the real ones."""
        x, y = train
        steps = train_cfg.steps or 1
        first = max(1, round(steps * self.cfg.strategy.pretrain_share))
        pretrained = self((x[synthetic], y[synthetic]), train_cfg.model_copy(update={"steps": first}), augment)
        tuned_cfg = train_cfg.model_copy(update={"steps": max(1, steps - first)})
        tuned = self((x[~synthetic], y[~synthetic]), tuned_cfg, augment, SampleOptions(init_state=pretrained.model.state_dict()))
        # steps count from the start of pre-training, so the run reports its whole budget
        return dataclasses.replace(tuned, best_step=first + tuned.best_step, steps_run=first + tuned.steps_run,
                                   seconds=pretrained.seconds + tuned.seconds,
                                   history=[*pretrained.history, *({**h, "step": first + h["step"]} for h in tuned.history)])

    def soft(self, train: Tensors, synthetic: torch.Tensor, train_cfg: TrainConfig,
             augment: BatchAugment | None) -> tuple[TrainedClassifier, int]:
        """Synthetic targets mix the label with a real-trained teacher's prediction; unconvincing ones can be dropped."""
        x, y = train
        teacher = self((x[~synthetic], y[~synthetic]), train_cfg, augment)
        probabilities = torch.softmax(predict_logits(teacher.model, x[synthetic]), dim=1)  # (S, K)
        labels = torch.nn.functional.one_hot(y, self.num_classes).float()  # (N, K)
        mix = self.cfg.strategy.soft_label_mix
        labels[synthetic] = (1 - mix) * labels[synthetic] + mix * probabilities
        keep = torch.ones(len(y), dtype=torch.bool)
        if self.cfg.strategy.min_confidence is not None:
            own = probabilities.gather(1, y[synthetic].view(-1, 1)).squeeze(1)
            keep[torch.from_numpy(np.flatnonzero(synthetic.numpy()))] = own >= self.cfg.strategy.min_confidence
        trained = self((x[keep], y[keep]), train_cfg, augment, SampleOptions(soft_targets=labels[keep]))
        return trained, int((synthetic & keep).sum())
