"""The self_training protocol on built-in 8x8 digits with an unlabelled pool (and with scripted trainings)."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from ganaug.classifier import ArchSpec, ConvBlockSpec, TrainConfig, TrainedClassifier
from ganaug.classifier.train import auto_steps
from ganaug.errors import ConfigError
from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate import self_training as self_training_module
from ganaug.evaluate.config import SelfTrainingConfig
from ganaug.evaluate.data import ProtocolData
from ganaug.evaluate.protocols import RunSpec, run_protocol
from ganaug.evaluate.self_training import fit_self_training, pool_subset, pseudo_label

# per class; the rest of each class (~105 images) is the pool, of which 900 images are pseudo-labelled
LABELS_PER_CLASS, VAL_PER_CLASS, TEST_PER_CLASS = 4, 30, 40
SEEDS = (0, 1)


def digits_with_pool() -> ProtocolData:
    """sklearn digits as (N, 1, 8, 8) uint8: 4 labelled train images per class, val, test, and ~1,050 pool images."""
    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[:, None]
    rng = np.random.default_rng(0)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": [], "pool": []}
    bounds = np.cumsum([0, LABELS_PER_CLASS, VAL_PER_CLASS, TEST_PER_CLASS])
    for label in range(10):
        members = rng.permutation(np.flatnonzero(digits.target == label))
        for (name, start), stop in zip(zip(parts, bounds), [*bounds[1:], None]):
            parts[name] += members[start:stop].tolist()
    rows = {name: np.sort(np.array(index)) for name, index in parts.items()}
    return ProtocolData(
        train_images=images[rows["train"]], train_labels=digits.target[rows["train"]],
        val_images=images[rows["val"]], val_labels=digits.target[rows["val"]],
        test_images=images[rows["test"]], test_labels=digits.target[rows["test"]],
        rows={name: rows[name] for name in ("train", "val", "test")}, class_names=[str(k) for k in range(10)],
        pool_images=images[rows["pool"]],
    )


def digits_config() -> EvaluateConfig:
    return EvaluateConfig(
        protocols=["real", "classic", "self_training"], seeds=len(SEEDS), generative_metrics=False,
        arch=ArchSpec(blocks=(ConvBlockSpec(channels=16), ConvBlockSpec(channels=32)), head_width=64, dropout=0.0),
        train=TrainConfig(steps=200, eval_every=20, batch_size=32, lr=3e-3, device="cpu"),
        self_training=SelfTrainingConfig(student_steps=400, pool_max_samples=900),
    )


@pytest.fixture(scope="module")
def digits() -> ProtocolData:
    return digits_with_pool()


@pytest.fixture(scope="module")
def rows(digits: ProtocolData) -> dict[tuple[str, int], dict]:
    """One evaluation row per (protocol, seed) on digits with the pool."""
    cfg = digits_config()
    return {(protocol, seed): run_protocol(RunSpec(protocol=protocol, seed=seed), digits, cfg)
            for protocol in ("real", "classic", "self_training") for seed in SEEDS}


def _mean_accuracy(rows: dict, protocol: str) -> float:
    return statistics.fmean(rows[protocol, seed]["accuracy"] for seed in SEEDS)


def test_self_training_beats_real_and_classic_on_digits_with_a_pool(rows: dict) -> None:
    # measured: real ~0.83, classic (the teacher) ~0.90, self_training ~0.94 at 4 labels per class
    assert _mean_accuracy(rows, "self_training") >= _mean_accuracy(rows, "real") + 0.05
    assert _mean_accuracy(rows, "self_training") >= _mean_accuracy(rows, "classic") + 0.01
    assert all(rows["self_training", seed]["n_pseudo"] > 0 for seed in SEEDS)


def test_round_and_threshold_kept_are_the_best_on_val(rows: dict) -> None:
    rounds = digits_config().self_training.rounds
    for seed in SEEDS:
        row, details = rows["self_training", seed], json.loads(rows["self_training", seed]["pool_details"])
        val = details["val_by_round"]
        # round 0 is the teacher: the classic or the real protocol's network, whichever is better on val (classic on a tie)
        teachers = {"classic": rows["classic", seed]["val_accuracy"], "none": rows["real", seed]["val_accuracy"]}
        assert details["val_by_augment"] == teachers
        assert details["augment"] == ("classic" if teachers["classic"] >= teachers["none"] else "none")
        assert val[0] == teachers[details["augment"]]
        assert details["round_kept"] == len(val) - 1 - val[::-1].index(max(val))  # the best; on a tie the later
        assert row["val_accuracy"] == max(val)
        assert row["n_pseudo"] == details["pseudo_by_round"][details["round_kept"]]
        by_threshold = details["val_by_threshold"]
        assert val[1] == max(by_threshold)
        assert details["threshold"] == details["thresholds"][by_threshold.index(max(by_threshold))]
        assert all(a < b for a, b in zip(val[:-1], val[1:-1]))  # every round but the last improved val
        assert details["rounds_run"] == len(val) - 1 and (details["rounds_run"] == rounds or val[-1] <= max(val[:-1]))


def test_same_seed_gives_the_same_choices_and_the_test_split_is_never_used_for_choosing(rows: dict,
                                                                                        digits: ProtocolData) -> None:
    rng = np.random.default_rng(5)
    corrupted = replace(digits, test_labels=rng.permutation(digits.test_labels),
                        test_images=rng.integers(0, 256, digits.test_images.shape, dtype=np.uint8))
    row = run_protocol(RunSpec(protocol="self_training", seed=SEEDS[0]), corrupted, digits_config())
    original = rows["self_training", SEEDS[0]]
    scored = {"seconds", "accuracy", "macro_f1", "balanced_accuracy", "per_class_recall"}  # from the test split
    assert {k: v for k, v in row.items() if k not in scored} == {k: v for k, v in original.items() if k not in scored}
    assert row["accuracy"] != original["accuracy"]  # the corruption did reach the scoring


@pytest.mark.parametrize("pool", [None, np.zeros((0, 1, 8, 8), dtype=np.uint8)])
def test_no_pool_is_a_config_error_naming_the_protocol(digits: ProtocolData, pool: np.ndarray | None) -> None:
    with pytest.raises(ConfigError, match="'self_training' needs an unlabelled pool"):
        run_protocol(RunSpec(protocol="self_training", seed=0), replace(digits, pool_images=pool), digits_config())


def test_class_balance_caps_every_class_at_the_rarest_confident_count() -> None:
    confidence = torch.tensor([0.99, 0.97, 0.98, 0.96, 0.5, 0.995, 0.95, 0.999, 0.93, 0.3])
    predicted = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    probabilities = torch.full((10, 3), 0.0).scatter_(1, predicted.view(-1, 1), confidence.view(-1, 1))
    probabilities += (1 - probabilities.sum(1, keepdim=True)) / 3  # rows sum to 1; the argmax is unchanged
    index, labels = pseudo_label(probabilities, 0.9, class_balance=False)
    assert index.tolist() == [0, 1, 2, 3, 5, 6, 7, 8] and labels.tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    index, labels = pseudo_label(probabilities, 0.9, class_balance=True)
    # class 1 and class 2 have 2 confident images each: class 0 keeps its 2 most confident (rows 0 and 2)
    assert index.tolist() == [0, 2, 5, 6, 7, 8] and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert pseudo_label(probabilities, 0.9999, class_balance=True)[0].tolist() == []


def test_class_balance_gives_equal_class_counts_on_digits(rows: dict) -> None:
    for seed in SEEDS:
        details = json.loads(rows["self_training", seed]["pool_details"])
        assert all(count % 10 == 0 for count in details["pseudo_by_threshold"] + details["pseudo_by_round"])


def test_pool_subset_is_fixed_for_a_seed() -> None:
    pool = torch.arange(100.0).view(100, 1, 1, 1)
    first, again, other = pool_subset(pool, 30, 3), pool_subset(pool, 30, 3), pool_subset(pool, 30, 4)
    assert len(first) == 30 and torch.equal(first, again) and not torch.equal(first, other)
    assert len(set(first.flatten().tolist())) == 30 and pool_subset(pool, None, 3) is pool


class _Confident(nn.Module):
    """Predicts a class from each image's pixel sum with probability ~1 (every pool image is confident)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = (x.flatten(1).sum(1) * 100).long() % 10
        return nn.functional.one_hot(classes, 10).float() * 20 + self.unused


def _scripted(monkeypatch: pytest.MonkeyPatch, val_accuracies: list[float],
              augments: list[bool] | None = None) -> list[tuple[int, int]]:
    """Replace training by a model whose best val accuracy is the next scripted number; returns (images, steps) per call
    (and appends to `augments` whether each call was given a batch augmentation)."""
    calls: list[tuple[int, int]] = []

    def train(spec, train, val, num_classes, cfg, seed, augment):  # noqa: ANN001, ANN202
        calls.append((len(train[0]), cfg.steps))
        if augments is not None:
            augments.append(augment is not None)
        return TrainedClassifier(_Confident(), 1, val_accuracies[len(calls) - 1], cfg.steps, 0.0)

    monkeypatch.setattr(self_training_module, "train_classifier", train)
    return calls


@pytest.mark.parametrize(("script", "rounds", "threshold", "val_by_round", "kept"), [
    # teacher, one student per threshold, then rounds with the winning threshold until one does not improve
    ([0.5, 0.6, 0.7, 0.65, 0.8, 0.75], 3, 0.95, [0.5, 0.7, 0.8, 0.75], 2),
    ([0.9, 0.8, 0.85, 0.7], 3, 0.95, [0.9, 0.85], 0),  # no student beats the teacher: keep the teacher
    ([0.5, 0.6, 0.6, 0.6, 0.7], 2, 0.9, [0.5, 0.6, 0.7], 2),  # threshold tie: the first; stop at `rounds`
    ([0.5, 0.6, 0.5, 0.5, 0.6], 3, 0.9, [0.5, 0.6, 0.6], 2),  # a tie is no improvement: stop; the later is kept
])
def test_scripted_loop_chooses_on_val_and_stops_early(monkeypatch: pytest.MonkeyPatch, digits: ProtocolData,
                                                       script: list[float], rounds: int, threshold: float,
                                                       val_by_round: list[float], kept: int) -> None:
    calls = _scripted(monkeypatch, script)
    cfg = digits_config().model_copy(update={"self_training": SelfTrainingConfig(rounds=rounds, student_steps=None, augment="classic"),
                                             "train": TrainConfig(steps=None, device="cpu")})
    x, y = torch.zeros(40, 1, 8, 8), torch.arange(40) % 10
    fit = fit_self_training(x, y, digits, cfg, 0, cfg.train.model_copy(update={"steps": auto_steps(40)}))
    assert (fit.details["threshold"], fit.details["val_by_round"], fit.details["round_kept"]) == (threshold, val_by_round, kept)
    assert fit.trained.best_val_accuracy == val_by_round[kept] and len(calls) == len(script)
    assert fit.pseudo_labels == fit.details["pseudo_by_round"][kept]
    # the teacher trains for the run's budget; students for the train config's rule applied to their own set
    pseudo = fit.details["pseudo_by_threshold"][0]
    assert pseudo > 0 and calls[:2] == [(40, auto_steps(40)), (40 + pseudo, auto_steps(40 + pseudo))]


@pytest.mark.parametrize(("script", "chosen"), [
    ([0.5, 0.6, 0.7, 0.7, 0.7], "none"),     # two teachers, three threshold students, rounds=1
    ([0.6, 0.5, 0.7, 0.7, 0.7], "classic"),
    ([0.6, 0.6, 0.7, 0.7, 0.7], "classic"),  # a tie: classic
])
def test_auto_augmentation_is_the_better_teacher_on_val_and_every_student_uses_it(
        monkeypatch: pytest.MonkeyPatch, digits: ProtocolData, script: list[float], chosen: str) -> None:
    augments: list[bool] = []
    _scripted(monkeypatch, script, augments)
    cfg = digits_config().model_copy(update={"self_training": SelfTrainingConfig(rounds=1, student_steps=50)})
    x, y = torch.zeros(40, 1, 8, 8), torch.arange(40) % 10
    fit = fit_self_training(x, y, digits, cfg, 0, cfg.train)
    assert fit.details["augment"] == chosen and fit.details["val_by_augment"] == {"classic": script[0], "none": script[1]}
    assert fit.details["val_by_round"][0] == max(script[:2]) and fit.details["trainings"] == len(script)
    assert augments[:2] == [True, False] and set(augments[2:]) == {chosen == "classic"}


@pytest.mark.parametrize(("setting", "given", "expected"), [
    ("classic", False, [True, True]), ("none", False, [False, False]),
    ("classic", True, [True]), ("none", True, [False]),  # a given first teacher: no teacher trained for a fixed choice
    ("auto", True, [True, False, True]),                # auto still trains both teachers to choose (the GAN's loop)
])
def test_a_fixed_augmentation_trains_one_teacher_or_none(monkeypatch: pytest.MonkeyPatch, digits: ProtocolData,
                                                         setting: str, given: bool, expected: list[bool]) -> None:
    augments: list[bool] = []
    _scripted(monkeypatch, [0.7, 0.6, 0.5], augments)
    cfg = digits_config().model_copy(update={"self_training": SelfTrainingConfig(rounds=1, student_steps=50, thresholds=[0.9],
                                                                                 augment=setting)})
    x, y = torch.zeros(40, 1, 8, 8), torch.arange(40) % 10
    teacher = TrainedClassifier(_Confident(), 1, 0.95, 10, 0.0) if given else None
    fit = fit_self_training(x, y, digits, cfg, 0, cfg.train, teacher=teacher)
    assert augments == expected and fit.details["augment"] == ("classic" if setting == "auto" else setting)
    if given:
        assert fit.details["val_by_round"][0] == 0.95  # the given teacher is round 0 whatever chose the augmentation


def test_pool_labels_are_the_kept_students_pseudo_labels_in_pool_order(digits: ProtocolData) -> None:
    """PoolFit.pool_labels (what the GAN's teacher hands over) is aligned with the whole pool, subset or not."""
    from ganaug.evaluate.self_training import pool_positions

    source = load_digits()
    truth_of = {image.tobytes(): label for image, label in
                zip(np.clip(source.images * 16, 0, 255).astype(np.uint8)[:, None], source.target)}
    truth = np.array([truth_of[image.tobytes()] for image in digits.pool_images])
    cfg = digits_config().model_copy(update={"self_training": SelfTrainingConfig(student_steps=200, pool_max_samples=900,
                                                                                 thresholds=[0.95], rounds=1)})
    fit = fit_self_training(torch.from_numpy(digits.train_images).float() / 127.5 - 1, torch.from_numpy(digits.train_labels),
                            digits, cfg, 0, cfg.train)
    chosen = fit.pool_labels >= 0
    assert len(fit.pool_labels) == len(digits.pool_images) and chosen.sum() == fit.pseudo_labels > 0
    assert not chosen[np.setdiff1d(np.arange(len(truth)), pool_positions(len(truth), 900, 0))].any()  # outside the subset
    assert (fit.pool_labels[chosen] == truth[chosen]).mean() > 0.9
