"""The pool protocols in the evaluation stage: added by default with a pool, refused without one, recorded in the table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evalhelpers import bar_images, tiny_eval_config, tiny_meta, write_tiny_dataset, write_tiny_synthetic

from ganaug.errors import ConfigError
from ganaug.evaluate import evaluate, prepare_evaluation
from ganaug.report import write_report
from ganaug.evaluate.table import read_evaluation
from ganaug.gan.semi import SemiSupervisedConfig
from ganaug.store import NO_LABEL, POOL_SPLIT, write_dataset

SEMI = SemiSupervisedConfig(steps=30, batch_size=16, discriminator_widths=[32, 16], generator_widths=[16], device="cpu")


def write_pool_dataset(path, pool_per_class: int = 20):
    """3 bar classes: 4 train, 5 val, 5 test images each, plus an unlabelled pool."""
    labels, splits = [], []
    for split, count in (("train", 4), ("val", 5), ("test", 5)):
        for label in range(3):
            labels += [label] * count
            splits += [split] * count
    pool_classes = np.repeat(np.arange(3), pool_per_class)
    images = np.concatenate([bar_images(np.array(labels), seed=1), bar_images(pool_classes, seed=3)])
    all_labels = np.concatenate([labels, np.full(len(pool_classes), NO_LABEL)])
    all_splits = np.concatenate([splits, [POOL_SPLIT] * len(pool_classes)])
    return write_dataset(path, images, all_labels, all_splits, tiny_meta())


def test_with_a_pool_the_default_protocols_gain_the_pool_protocols_and_say_so(tmp_path):
    dataset = write_pool_dataset(tmp_path / "dataset.parquet")
    synthetic = write_tiny_synthetic(tmp_path / "synthetic.parquet")
    cfg = tiny_eval_config(generative_metrics=False, semi_supervised=SEMI)
    assert "protocols" not in cfg.model_fields_set
    data, specs = prepare_evaluation(dataset, synthetic, cfg)
    assert len(data.pool_images) == 60
    assert {s.protocol for s in specs} >= {"self_training", "gan_classifier"}
    assert any("unlabelled pool of 60 images" in note for note in data.notes)


def test_explicit_protocols_are_kept_and_pool_protocols_without_a_pool_fail_before_training(tmp_path):
    pooled = write_pool_dataset(tmp_path / "pooled" / "dataset.parquet")
    cfg = tiny_eval_config(protocols=["real"], generative_metrics=False)
    assert {s.protocol for s in prepare_evaluation(pooled, None, cfg)[1]} == {"real"}
    plain = write_tiny_dataset(tmp_path / "plain" / "dataset.parquet")
    with pytest.raises(ConfigError, match=r"\['gan_classifier'\] need an unlabelled pool"):
        prepare_evaluation(plain, None, tiny_eval_config(protocols=["real", "gan_classifier"], generative_metrics=False))
    assert not (tmp_path / "plain" / "evaluation.parquet").exists()


def test_gan_classifier_rows_record_the_pool_and_the_report_shows_it(tmp_path):
    dataset = write_pool_dataset(tmp_path / "dataset.parquet")
    cfg = tiny_eval_config(protocols=["real", "gan_classifier"], generative_metrics=False, semi_supervised=SEMI, seeds=1)
    result = evaluate(dataset, None, cfg, tmp_path, report=write_report)
    rows, meta = read_evaluation(result.evaluation_path)
    gan_row = next(r for r in rows if r["protocol"] == "gan_classifier")
    assert json.loads(gan_row["pool_details"])["pool"] == 60 and gan_row["n_pseudo"] == 0
    assert next(r for r in rows if r["protocol"] == "real")["pool_details"] is None
    assert gan_row["steps_run"] == 30
    report = (tmp_path / "report.md").read_text()
    assert "## The unlabelled pool" in report and "| gan_classifier | 0 |" in report


def test_gan_self_training_starts_its_rounds_from_the_gan_discriminator(tmp_path):
    from ganaug.evaluate.data import load_protocol_data
    from ganaug.evaluate.protocols import RunSpec, run_protocol

    data = load_protocol_data(write_pool_dataset(tmp_path / "dataset.parquet"), None)
    cfg = tiny_eval_config(protocols=["gan_classifier", "gan_self_training"], generative_metrics=False, semi_supervised=SEMI,
                           self_training={"thresholds": [0.5], "rounds": 1, "student_steps": 40})
    gan_row = run_protocol(RunSpec(protocol="gan_classifier", seed=0), data, cfg)
    row = run_protocol(RunSpec(protocol="gan_self_training", seed=0), data, cfg)
    details = json.loads(row["pool_details"])
    assert details["teacher"] == "gan_classifier" and details["gan"]["pool"] == 60
    assert details["val_by_round"][0] == gan_row["val_accuracy"]  # round 0 is the discriminator of gan_classifier
    assert row["val_accuracy"] == max(details["val_by_round"])


def test_the_report_states_the_pool_size_what_was_dropped_and_the_pseudo_label_share():
    from ganaug.report.markdown import pool_markdown

    pool = {"rows": 900, "source": "idx:train.gz", "rows_read": 0, "moved_from_train": 905,
            "dropped_overlap_val_test": 3, "dropped_duplicates": 2}
    rows = [{"train_fraction": 1.0, "protocol": "self_training", "seed": 0, "n_pseudo": 450,
             "pool_details": json.dumps({"pool": 900, "threshold": 0.95, "round_kept": 2})},
            {"train_fraction": 1.0, "protocol": "real", "seed": 0, "pool_details": None}]
    text = pool_markdown(rows, pool)
    assert text.startswith("Unlabelled pool: 900 images") and "905 moved from the train split" in text
    assert "dropped 3 identical to val/test images and 2 duplicates" in text
    assert "| 100% | self_training | 0 | 450 | 50.0% | threshold 0.95, round_kept 2 |" in text
    assert "| real |" not in text


def test_one_seeds_semi_supervised_gan_is_trained_once_and_shared_without_changing_results(tmp_path, monkeypatch):
    from ganaug.evaluate import pool as pool_module
    from ganaug.evaluate.data import load_protocol_data
    from ganaug.evaluate.protocols import RunSpec, run_protocol

    trainings = []
    real_train = pool_module.train_semi_supervised
    monkeypatch.setattr(pool_module, "train_semi_supervised", lambda *a, **k: trainings.append(a[-1]) or real_train(*a, **k))
    monkeypatch.setattr(pool_module, "_SHARED", pool_module._Shared())
    data = load_protocol_data(write_pool_dataset(tmp_path / "dataset.parquet"), None)
    cfg = tiny_eval_config(protocols=["gan_classifier", "gan_self_training"], generative_metrics=False, semi_supervised=SEMI,
                           self_training={"thresholds": [0.5], "rounds": 1, "student_steps": 20})
    shared = [run_protocol(RunSpec(protocol=name, seed=seed), data, cfg)
              for seed in (0, 1) for name in ("gan_classifier", "gan_self_training")]
    assert trainings == [0, 1]  # one GAN per seed, not one per protocol run
    monkeypatch.setattr(pool_module, "_SHARED", pool_module._Shared())
    alone = run_protocol(RunSpec(protocol="gan_self_training", seed=1), data, cfg)
    assert trainings == [0, 1, 1]
    for key in ("accuracy", "val_accuracy", "pool_details"):
        assert alone[key] == shared[3][key]


def test_semi_augmented_adds_each_class_s_most_confident_generated_images_to_the_labelled_ones(tmp_path, monkeypatch):
    """The generator's draws are labelled by the discriminator; each class keeps its most confident, up to the ratio."""
    import torch

    from ganaug.data.tensors import images_to_tensor
    from ganaug.evaluate import pool as pool_module
    from ganaug.evaluate.data import load_protocol_data
    from ganaug.evaluate.protocols import RunSpec, run_protocol

    class FakeGan:  # 3 classes; draws i has class i % 3 at confidence growing with i, except class 2: only 2 draws
        def sample(self, count, seed):
            index = torch.arange(count, dtype=torch.float32)
            predicted = torch.where(index < count - 2, index.long() % 2, torch.full((count,), 2))
            confidence = 0.4 + 0.5 * index / count
            probabilities = torch.full((count, 3), 0.0).scatter_(1, predicted.view(-1, 1), confidence.view(-1, 1))
            probabilities += (1 - probabilities.sum(1, keepdim=True)) / 3
            return index.view(-1, 1, 1, 1).expand(count, 1, 8, 8) / count, probabilities

    data = load_protocol_data(write_pool_dataset(tmp_path / "dataset.parquet"), None)
    cfg = tiny_eval_config(protocols=["semi_augmented"], generative_metrics=False, semi_supervised=SEMI, ratios=[2.0])
    real_fit = run_protocol(RunSpec(protocol="gan_classifier", seed=0), data, cfg)  # a real shared GAN's record
    gan_fit = pool_module.PoolFit(pool_module.TrainedClassifier(torch.nn.Identity(), 1, 0.5, 1, 3.0), 0, {"pool": 60})
    monkeypatch.setattr(pool_module, "_semi_gan", lambda *args: (gan_fit, FakeGan()))
    seen = {}
    real_train = pool_module.train_classifier
    monkeypatch.setattr(pool_module, "train_classifier",
                        lambda spec, train, *args, **kwargs: seen.setdefault("train", train) and real_train(spec, train, *args, **kwargs))
    row = run_protocol(RunSpec(protocol="semi_augmented", seed=0, ratio=2.0), data, cfg)
    details = json.loads(row["pool_details"])
    # 4 labelled images per class at ratio 2: 8 wanted per class; 4 x 24 = 96 draws, of which class 2 has only 2
    assert details["wanted_by_class"] == [8, 8, 8] and details["drawn"] == 96
    assert details["synthetic_by_class"] == [8, 8, 2] and row["n_synthetic"] == 18 == details["synthetic"]
    x, y = seen["train"]
    assert len(y) == 12 + 18 and torch.equal(x[:12], images_to_tensor(data.train_images))  # labelled first
    chosen = (x[12:, 0, 0, 0] * 96).round().long()
    assert sorted(chosen[y[12:] == 0].tolist()) == [78, 80, 82, 84, 86, 88, 90, 92]  # the 8 most confident of class 0
    assert sorted(chosen[y[12:] == 2].tolist()) == [94, 95]
    assert row["pool_details"] != real_fit["pool_details"]


def test_semi_augmented_uses_the_seeds_shared_gan_and_is_a_default_with_a_pool(tmp_path, monkeypatch):
    from ganaug.evaluate import pool as pool_module
    from ganaug.evaluate.data import load_protocol_data
    from ganaug.evaluate.protocols import RunSpec, run_protocol

    trainings = []
    real_train = pool_module.train_semi_supervised
    monkeypatch.setattr(pool_module, "train_semi_supervised", lambda *a, **k: trainings.append(a[-1]) or real_train(*a, **k))
    monkeypatch.setattr(pool_module, "_SHARED", pool_module._Shared())
    dataset = write_pool_dataset(tmp_path / "dataset.parquet")
    data = load_protocol_data(dataset, None)
    cfg = tiny_eval_config(generative_metrics=False, semi_supervised=SEMI, ratios=[1.0])
    synthetic = write_tiny_synthetic(tmp_path / "synthetic.parquet")
    assert "semi_augmented" in {s.protocol for s in prepare_evaluation(dataset, synthetic, cfg)[1]}
    gan_row = run_protocol(RunSpec(protocol="gan_classifier", seed=0), data, cfg)
    row = run_protocol(RunSpec(protocol="semi_augmented", seed=0, ratio=1.0), data, cfg)
    again = run_protocol(RunSpec(protocol="semi_augmented", seed=0, ratio=1.0), data, cfg)
    assert trainings == [0]  # one GAN for the seed
    assert json.loads(row["pool_details"])["gan"] == json.loads(gan_row["pool_details"])
    assert 0 < row["n_synthetic"] <= 12 and {k: v for k, v in row.items() if k != "seconds"} == {
        k: v for k, v in again.items() if k != "seconds"}
