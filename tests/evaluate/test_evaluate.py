"""The evaluation stage end to end: artifacts, report, determinism, executors, bad input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from evalhelpers import CLASSES, bar_images, tiny_eval_config, tiny_meta, write_tiny_dataset, write_tiny_synthetic

from ganaug.errors import ConfigError, DataError
from ganaug.evaluate import EvaluationResult, evaluate
from ganaug.evaluate.table import read_evaluation
from ganaug.generate import write_synthetic
from ganaug.report import write_report
from ganaug.store import SYNTHETIC_SCHEMA, read_dataset


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def without_time(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_evaluate_writes_table_plot_and_report(tmp_path, real_ref, synthetic_ref):
    cfg = tiny_eval_config(train_fractions=[0.5, 1.0], ratios=[0.5, 1.0])
    result = evaluate(real_ref, synthetic_ref, cfg, tmp_path / "run", report=write_report)
    assert EvaluationResult.model_validate_json(result.model_dump_json()) == result
    rows, meta = read_evaluation(result.evaluation_path)
    assert len(rows) == result.runs == 2 * (3 + 2) * 2  # regimes x (3 protocols + 2 ratios) x seeds
    assert {(r["protocol"], r["ratio"]) for r in rows} == {
        ("real", None), ("classic", None), ("synthetic", 1.0), ("augmented", 0.5), ("augmented", 1.0)}
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and len(row["per_class_recall"]) == len(CLASSES)
    full_real = [r for r in rows if r["protocol"] == "real" and r["train_fraction"] == 1.0]
    assert {r["n_real"] for r in full_real} == {36}
    assert meta["dataset"]["content_hash"] == real_ref.content_hash
    metrics = result.generative_metrics
    assert metrics["frechet_distance"] >= 0 and 0 <= metrics["precision"] <= 1 and 0 <= metrics["coverage"] <= 1
    assert 0 <= metrics["gan_test_accuracy"] <= 1
    assert len(result.summary) == 2 * 5
    augmented = [s for s in result.summary if s.protocol == "augmented"]
    assert all(s.vs_real is not None and s.vs_real.pairs == 2 and s.vs_classic is not None for s in augmented)
    assert Path(result.plot_path).stat().st_size > 0
    report = Path(result.report_path).read_text()
    assert "| 50% | augmented x0.5 |" in report and "Generative metrics" in report
    assert "Per-class recall: real-only" in report and "| 100% | real (recall) |" in report
    assert "samples_real_vs_synthetic.png" in report
    assert "GAN trained on the full train split" in report  # the low-data caveat is stated
    assert (tmp_path / "run" / "samples_real_vs_synthetic.png").is_file()


def test_same_seed_same_rows_sequential_or_through_an_executor(tmp_path, real_ref, synthetic_ref):
    cfg = tiny_eval_config(protocols=["real", "augmented"], seeds=1, generative_metrics=False)
    first = evaluate(real_ref, synthetic_ref, cfg, tmp_path / "a", report=write_report)
    with ThreadPoolExecutor(max_workers=1) as pool:  # one worker: order-independent torch RNG use
        second = evaluate(real_ref, synthetic_ref, cfg, tmp_path / "b", executor=pool, report=write_report)

    class SubmitOnly:
        def submit(self, fn, *args):
            class Done:
                def result(self_inner):
                    return fn(*args)
            return Done()

    third = evaluate(real_ref, synthetic_ref, cfg, tmp_path / "c", executor=SubmitOnly(), report=write_report)
    side_by_side = cfg.model_copy(update={"workers": 3, "seeds": 2})  # four runs on three threads at once
    one_by_one = cfg.model_copy(update={"workers": 1, "seeds": 2})
    fourth = evaluate(real_ref, synthetic_ref, side_by_side, tmp_path / "d", report=write_report)
    fifth = evaluate(real_ref, synthetic_ref, one_by_one, tmp_path / "e", report=write_report)
    rows = [without_time(read_evaluation(r.evaluation_path)[0]) for r in (first, second, third, fourth, fifth)]
    assert rows[0] == rows[1] == rows[2]
    assert rows[3] == rows[4] and rows[3][0] == rows[0][0]


def test_real_and_classic_need_no_synthetic_data(tmp_path, real_ref):
    cfg = tiny_eval_config(protocols=["real", "classic"], seeds=1)
    result = evaluate(real_ref, None, cfg, tmp_path / "run", report=write_report)
    assert result.generative_metrics is None
    assert [s.protocol for s in result.summary] == ["real", "classic"]


def test_augmented_without_synthetic_data_is_refused(tmp_path, real_ref):
    with pytest.raises(ConfigError, match=r"run `ganaug generate` first"):
        evaluate(real_ref, None, tiny_eval_config(seeds=1), tmp_path / "run", report=write_report)
    assert files_under(tmp_path / "run") == []


def _empty_synthetic(path: Path, template: Path) -> Path:
    """A well-formed synthetic table (its content hash matches) with no rows."""
    meta = read_dataset(template, SYNTHETIC_SCHEMA).meta
    write_synthetic(path, np.zeros((0, meta.channels, meta.height, meta.width), np.uint8), np.zeros(0, np.int64),
                    meta, "ckpt", None)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unseen_label", r"column 'label' has classes \['c'\] that the train split of .*dataset.parquet does not contain"),
        ("size", r"synthetic.parquet holds 1x6x6 images .* but .*dataset.parquet holds 1x8x8"),
        ("channels", r"synthetic.parquet holds 3x8x8 images .* but .*dataset.parquet holds 1x8x8"),
        ("empty", r"synthetic.parquet has no rows"),
        ("class_names", r"has class names \['x', 'y', 'z'\] but .* has \['a', 'b', 'c'\]"),
    ],
)
def test_bad_synthetic_input_gives_a_clear_error_and_writes_nothing(tmp_path, case, message):
    inputs = tmp_path / "inputs"
    real = write_tiny_dataset(inputs / "dataset.parquet", train_counts=[12, 12, 0] if case == "unseen_label" else None)
    path = inputs / "synthetic.parquet"
    if case == "size":
        synthetic = write_tiny_synthetic(path, size=6)
    elif case == "channels":
        synthetic = write_tiny_synthetic(path, channels=3)
    elif case == "class_names":
        synthetic = write_tiny_synthetic(path, classes=["x", "y", "z"])
    elif case == "empty":
        synthetic = write_tiny_synthetic(path)
        _empty_synthetic(path, path)
    else:
        synthetic = write_tiny_synthetic(path)
    with pytest.raises(DataError, match=message):
        evaluate(real, synthetic, tiny_eval_config(seeds=1), tmp_path / "run", report=write_report)
    assert files_under(tmp_path / "run") == []


def test_label_outside_the_class_list_is_refused(tmp_path, real_ref):
    labels = np.array([0, 1, 5])
    path = tmp_path / "synthetic.parquet"
    write_synthetic(path, bar_images(np.array([0, 1, 2]), 0), labels, tiny_meta(), "ckpt", None)
    with pytest.raises(DataError, match=r"column 'label' has values outside 0..2"):
        evaluate(real_ref, _ref(path), tiny_eval_config(seeds=1), tmp_path / "run", report=write_report)
    assert files_under(tmp_path / "run") == []


def _ref(path: Path):
    from ganaug.store import SyntheticRef, file_hash

    return SyntheticRef(path=str(path), content_hash=file_hash(path), rows=3)


def test_report_includes_the_nas_report_and_works_without_evaluation(tmp_path):
    run = tmp_path / "run"
    (run / "nas").mkdir(parents=True)
    (run / "nas" / "report.md").write_text("# Search\n\nbest accuracy 0.97\n")
    text = write_report(run).read_text()
    assert "No evaluation.parquet" in text
    assert "## Search" in text and "best accuracy 0.97" in text  # heading pushed one level down
    with pytest.raises(DataError, match="does not exist"):
        write_report(tmp_path / "missing")


def test_evaluation_metadata_is_json(tmp_path, real_ref, synthetic_ref):
    cfg = tiny_eval_config(protocols=["real"], seeds=1, generative_metrics=False)
    result = evaluate(real_ref, synthetic_ref, cfg, tmp_path / "run", report=write_report)
    _, meta = read_evaluation(result.evaluation_path)
    assert json.loads(json.dumps(meta))["config"]["protocols"] == ["real"]


def test_evaluation_and_report_are_committed_together(tmp_path, real_ref):
    run = tmp_path / "run"
    evaluate(real_ref, None, tiny_eval_config(protocols=["real"], seeds=1, generative_metrics=False), run, report=write_report)
    before = {name: (run / name).read_bytes() for name in ("evaluation.parquet", "report.md")}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stopped while the report is being written

    with pytest.raises(KeyboardInterrupt):
        evaluate(real_ref, None, tiny_eval_config(protocols=["real"], seeds=2, generative_metrics=False), run, report=killed)
    assert {name: (run / name).read_bytes() for name in before} == before  # the old pair, not a new table
    assert not list(run.glob(".*.tmp"))


def test_without_a_report_writer_only_the_evaluation_table_is_written(tmp_path, real_ref):
    run = tmp_path / "run"
    result = evaluate(real_ref, None, tiny_eval_config(protocols=["real"], seeds=1, generative_metrics=False), run)
    assert Path(result.evaluation_path).is_file() and result.report_path is None and result.plot_path is None
    assert sorted(path.name for path in run.iterdir()) == ["evaluation.parquet"]
