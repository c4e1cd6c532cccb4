"""Classifier architecture spec, builder and trainer, shared by evaluation and NAS."""

from ganaug.classifier.spec import ArchSpec, Classifier, ConvBlockSpec, build_classifier, max_pools, parameter_count
from ganaug.classifier.train import SampleOptions, TrainConfig, TrainedClassifier, accuracy, embed, predict_logits, train_classifier

__all__ = [
    "ArchSpec",
    "Classifier",
    "ConvBlockSpec",
    "SampleOptions",
    "TrainConfig",
    "TrainedClassifier",
    "accuracy",
    "build_classifier",
    "embed",
    "max_pools",
    "parameter_count",
    "predict_logits",
    "train_classifier",
]
