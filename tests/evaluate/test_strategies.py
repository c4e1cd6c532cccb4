"""Ways of using synthetic data: what each hands the trainer, and the choice of the best one on val."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evalhelpers import tiny_eval_config, write_tiny_dataset, write_tiny_synthetic

from ganaug.evaluate import strategies
from ganaug.evaluate.config import StrategyConfig
from ganaug.evaluate.data import load_protocol_data
from ganaug.evaluate.protocols import RunSpec, compose_training_set, run_protocol
from ganaug.evaluate.stats import select_use, summarize


@pytest.fixture
def data(tmp_path):
    real = write_tiny_dataset(tmp_path / "dataset.parquet", train_counts=[12, 8, 4])
    return load_protocol_data(real, write_tiny_synthetic(tmp_path / "synthetic.parquet", per_class=30))


@pytest.fixture
def calls(monkeypatch):
    seen: list[dict] = []
    real_train = strategies.train_classifier

    def spy(spec, train, val, num_classes, cfg, seed=0, augment=None, on_eval=None, options=None):
        seen.append({"train": train, "steps": cfg.steps, "augment": augment, "options": options})
        return real_train(spec, train, val, num_classes, cfg, seed=seed, augment=augment, options=options)

    monkeypatch.setattr(strategies, "train_classifier", spy)
    return seen


def _run(protocol: str, data, calls, **strategy) -> tuple[dict, list[dict]]:
    cfg = tiny_eval_config(protocols=[protocol], strategy=StrategyConfig(**strategy))
    ratio = {"balanced": None, "balanced_classic": None, "balanced_mixed": None}.get(protocol, 1.0)
    row = run_protocol(RunSpec(protocol=protocol, ratio=ratio, seed=0), data, cfg)
    return row, calls


def test_weighted_gives_synthetic_images_their_weight(data, calls):
    _run("weighted", data, calls, synthetic_weight=0.25)
    (call,) = calls
    training = compose_training_set(RunSpec(protocol="weighted", ratio=1.0, seed=0), data, tiny_eval_config())
    expected = np.where(training.sources == "synthetic", 0.25, 1.0)
    assert np.allclose(call["options"].weights.numpy(), expected)


def test_pretrain_spends_its_share_on_synthetic_then_fine_tunes_on_real_from_those_weights(data, calls):
    row, _ = _run("pretrain", data, calls, pretrain_share=0.25)
    first, second = calls
    assert (first["steps"], second["steps"]) == (10, 30)  # 25% of the 40-step budget
    assert len(first["train"][1]) == 24 and len(second["train"][1]) == 24  # 24 synthetic, then the 24 real
    assert second["options"].init_state is not None and row["n_synthetic"] == 24
    assert row["steps_run"] == 40 and 10 < row["best_step"] <= 40  # the whole budget, fine-tuning after step 10


def test_soft_targets_mix_label_and_teacher_and_confidence_filter_drops(data, calls):
    row, _ = _run("soft", data, calls, soft_label_mix=0.4, min_confidence=0.999999)
    teacher, student = calls
    assert len(teacher["train"][1]) == 24  # the teacher sees the real images only
    targets = student["options"].soft_targets
    assert torch.allclose(targets.sum(1), torch.ones(len(targets)))
    kept_synthetic = len(targets) - 24
    assert row["n_synthetic"] == kept_synthetic < 24  # a near-certain threshold drops synthetic images
    synthetic_targets = targets[24:]
    assert (synthetic_targets.max(1).values >= 0.6 - 1e-6).all()  # the label keeps at least 1 - mix


def test_augmented_classic_oversampled_and_balanced_classic_use_affine_augmentation(data, calls):
    _run("augmented_classic", data, calls)
    _run("oversampled", data, calls)
    _run("balanced_classic", data, calls)
    _run("balanced", data, calls)
    _run("balanced_mixed", data, calls, fill_synthetic_share=0.25)
    assert [call["augment"] is not None for call in calls] == [True, True, True, False, True]
    assert np.bincount(calls[1]["train"][1].numpy()).tolist() == [12, 12, 12]
    assert np.bincount(calls[2]["train"][1].numpy()).tolist() == [12, 12, 12]  # 12/8/4 real, filled up with synthetic
    mixed_row, _ = _run("balanced_mixed", data, calls, fill_synthetic_share=0.25)
    assert np.bincount(calls[-1]["train"][1].numpy()).tolist() == [12, 12, 12]
    assert mixed_row["n_synthetic"] == 3  # a quarter of the gaps of 4 and 8


def _rows(val: dict[str, float], test: dict[str, float]) -> list[dict]:
    rows = []
    for protocol in ("real", "classic", "augmented", "weighted"):
        for seed in range(3):
            wobble = 0.001 * seed
            rows.append({"train_fraction": 1.0, "protocol": protocol, "ratio": None if protocol in ("real", "classic") else 1.0,
                         "seed": seed, "accuracy": test[protocol] + wobble, "macro_f1": test[protocol] + wobble,
                         "balanced_accuracy": test[protocol], "val_accuracy": val[protocol], "val_macro_f1": val[protocol],
                         "n_real": 10, "n_synthetic": 10})
    return rows


def test_selection_uses_val_only_and_says_plainly_when_nothing_helps():
    val = {"real": 0.90, "classic": 0.91, "augmented": 0.95, "weighted": 0.93}
    helps = select_use(summarize(_rows(val, {"real": 0.90, "classic": 0.91, "augmented": 0.94, "weighted": 0.99})))
    assert helps[0].protocol == "augmented" and helps[0].helped  # val picks augmented, not test's favourite
    assert helps[0].statement.startswith("best use of synthetic data: augmented x1, +0.040")
    # the same val scores with a worse test result: the choice is the same, the verdict honest
    hurts = select_use(summarize(_rows(val, {"real": 0.90, "classic": 0.91, "augmented": 0.88, "weighted": 0.99})))
    assert hurts[0].protocol == "augmented" and not hurts[0].helped
    assert hurts[0].statement.startswith("no use of synthetic data helped on this dataset")


def test_selection_can_target_macro_f1():
    rows = _rows({"real": 0.9, "classic": 0.9, "augmented": 0.95, "weighted": 0.93},
                 {"real": 0.9, "classic": 0.9, "augmented": 0.92, "weighted": 0.92})
    for row in rows:
        row["val_macro_f1"] = {"augmented": 0.80, "weighted": 0.85}.get(row["protocol"], 0.7)
    chosen = select_use(summarize(rows, metric="macro_f1"))[0]
    assert chosen.protocol == "weighted" and chosen.metric == "macro_f1"
