"""Defaults on an imbalanced dataset: with minority classes, protocols left at their default gain oversampled and
balanced_mixed and the best use is selected on macro_f1, with a note; explicit choices are kept; balanced data is
unchanged; the default generate mode samples enough for balanced_mixed."""

from __future__ import annotations

import numpy as np
from evalhelpers import tiny_eval_config, write_tiny_dataset, write_tiny_synthetic

from ganaug.evaluate import evaluate, prepare_evaluation
from ganaug.report import write_report
from ganaug.evaluate.data import load_protocol_data
from ganaug.evaluate.stage import resolved_config
from ganaug.evaluate.table import read_evaluation
from ganaug.generate import GenerateConfig, requested_counts

IMBALANCED = [12, 8, 2]  # class c has fewer than half the images of class a: a minority


def _imbalanced(tmp_path, synthetic_labels=None):
    real = write_tiny_dataset(tmp_path / "dataset.parquet", train_counts=IMBALANCED)
    synthetic = write_tiny_synthetic(tmp_path / "synthetic.parquet", labels=synthetic_labels)
    return real, synthetic


def test_minority_classes_add_oversampled_and_balanced_mixed_and_select_on_macro_f1_with_a_note(tmp_path):
    real, synthetic = _imbalanced(tmp_path)
    cfg = tiny_eval_config(generative_metrics=False)
    data, specs = prepare_evaluation(real, synthetic, cfg)
    assert {s.protocol for s in specs} == {"real", "augmented", "synthetic", "classic", "oversampled", "balanced_mixed"}
    resolved, notes = resolved_config(cfg, data)
    assert resolved.selection_metric == "macro_f1"
    note = next(note for note in data.notes if "minority class" in note)
    assert note == notes[0]
    assert "the train split has 1 minority class (c: fewer than half the images of the largest class)" in note
    assert "protocols oversampled, balanced_mixed were added to the defaults" in note and "macro_f1" in note


def test_explicit_protocols_and_selection_metric_are_kept(tmp_path):
    real, synthetic = _imbalanced(tmp_path)
    cfg = tiny_eval_config(protocols=["real", "augmented"], generative_metrics=False)
    data, specs = prepare_evaluation(real, synthetic, cfg)
    assert {s.protocol for s in specs} == {"real", "augmented"}
    resolved, notes = resolved_config(cfg, data)
    assert resolved.protocols == ["real", "augmented"] and resolved.selection_metric == "macro_f1"
    assert "were added" not in notes[0] and "selected on macro_f1" in notes[0]
    both = tiny_eval_config(protocols=["real", "augmented"], selection_metric="accuracy", generative_metrics=False)
    assert resolved_config(both, data) == (both, [])


def test_a_balanced_dataset_keeps_the_defaults(tmp_path):
    real = write_tiny_dataset(tmp_path / "dataset.parquet")
    data = load_protocol_data(real, write_tiny_synthetic(tmp_path / "synthetic.parquet"))
    cfg = tiny_eval_config(generative_metrics=False)
    assert resolved_config(cfg, data) == (cfg, [])


def test_balanced_mixed_is_left_out_and_said_so_when_synthetic_images_cannot_fill_it(tmp_path):
    real, synthetic = _imbalanced(tmp_path, synthetic_labels=np.repeat(np.arange(3), IMBALANCED))  # exactly ratio 1
    data = load_protocol_data(real, synthetic)
    resolved, (note,) = resolved_config(tiny_eval_config(generative_metrics=False), data)
    assert "oversampled" in resolved.protocols and "balanced_mixed" not in resolved.protocols
    assert ("balanced_mixed was left out (balanced_mixed needs 5 synthetic images of class 'c' but synthetic.parquet has 2; "
            "`ganaug generate` with its default mode") in note


def test_the_default_generate_mode_fills_minority_gaps_and_an_explicit_ratio_is_exact():
    labels = np.repeat(np.arange(3), IMBALANCED)
    assert requested_counts(labels, 3, GenerateConfig()).tolist() == [12, 8, 10]  # ratio 1, and c's gap of 10
    assert requested_counts(labels, 3, GenerateConfig(mode="ratio", ratio=1.0)).tolist() == [12, 8, 2]
    assert requested_counts(labels, 3, GenerateConfig.model_validate(GenerateConfig().model_dump())).tolist() == [12, 8, 10]
    balanced = np.repeat(np.arange(3), [12, 8, 7])
    assert requested_counts(balanced, 3, GenerateConfig()).tolist() == [12, 8, 7]


def test_the_default_generate_output_supplies_the_default_evaluation(tmp_path):
    labels = np.repeat(np.arange(3), requested_counts(np.repeat(np.arange(3), IMBALANCED), 3, GenerateConfig()))
    real, synthetic = _imbalanced(tmp_path, synthetic_labels=labels)
    _, specs = prepare_evaluation(real, synthetic, tiny_eval_config(generative_metrics=False))
    assert {"oversampled", "balanced_mixed"} <= {s.protocol for s in specs}


def test_the_evaluation_table_and_report_record_the_resolved_defaults(tmp_path):
    real, synthetic = _imbalanced(tmp_path)
    result = evaluate(real, synthetic, tiny_eval_config(generative_metrics=False, seeds=1), tmp_path, report=write_report)
    _, meta = read_evaluation(result.evaluation_path)
    assert meta["selection_metric"] == "macro_f1"
    assert {"oversampled", "balanced_mixed"} <= set(meta["config"]["protocols"])
    assert "protocols oversampled, balanced_mixed were added to the defaults" in (tmp_path / "report.md").read_text()
