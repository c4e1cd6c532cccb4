"""Evaluation runs trained as stacked ensembles (`EvaluateConfig.stack`): units of work, and rows equal to
the runs trained one by one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from evalhelpers import tiny_eval_config, write_tiny_dataset, write_tiny_synthetic
from typer.testing import CliRunner

import ganaug.evaluate.stacking as stacking
from ganaug.cli import app
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate.data import load_protocol_data
from ganaug.evaluate.protocols import RunSpec, build_run_specs
from ganaug.evaluate.stage import group_label, run_all
from ganaug.evaluate.stacking import stack_units, stacking_on
from ganaug.store import DatasetRef

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
SAME = ("train_fraction", "protocol", "ratio", "seed", "n_real", "n_synthetic", "steps_run")


@pytest.fixture
def stack_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of runs of every stack trained."""
    sizes: list[int] = []
    trainer = stacking.train_stacked

    def counted(spec, runs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        sizes.append(len(runs))
        return trainer(spec, runs, *args, **kwargs)

    monkeypatch.setattr(stacking, "train_stacked", counted)
    return sizes


def test_auto_stacks_on_a_cuda_gpu_only_and_off_never() -> None:
    assert [stacking_on(choice, CPU) for choice in ("auto", "on", "off")] == [False, True, False]
    assert [stacking_on(choice, CUDA) for choice in ("auto", "on", "off")] == [True, True, False]


def test_units_group_single_fit_runs_by_regime_and_loss_and_leave_the_others_alone() -> None:
    cfg = tiny_eval_config(protocols=["real", "weighted", "pretrain", "classic", "soft", "self_training"],
                           train_fractions=[1.0, 0.5], seeds=2)
    specs = build_run_specs(cfg)
    assert stack_units(specs, cfg, CPU) == [[i] for i in range(len(specs))]  # auto on CPU: one by one, as before
    units = stack_units(specs, cfg, CUDA)
    assert sorted(i for unit in units for i in unit) == list(range(len(specs)))
    grouped = [sorted((specs[i].train_fraction, specs[i].protocol) for i in unit) for unit in units if len(unit) > 1]
    assert grouped == [[(1.0, "classic")] * 2 + [(1.0, "real")] * 2, [(1.0, "weighted")] * 2,
                       [(0.5, "classic")] * 2 + [(0.5, "real")] * 2, [(0.5, "weighted")] * 2]
    alone = {specs[unit[0]].protocol for unit in units if len(unit) == 1}
    assert alone == {"pretrain", "soft", "self_training"}
    assert stack_units(specs, cfg.model_copy(update={"stack": "off"}), CUDA) == [[i] for i in range(len(specs))]
    assert group_label([RunSpec(protocol="real", seed=0), RunSpec(protocol="classic", seed=0),
                        RunSpec(protocol="real", seed=1)]) == "3 runs: real, classic seeds 0-1"


def _assert_rows_agree(stacked: list[dict], alone: list[dict], accuracy_tolerance: float) -> None:
    for mine, theirs in zip(stacked, alone, strict=True):
        assert {key: mine[key] for key in SAME} == {key: theirs[key] for key in SAME}
        for key in ("accuracy", "macro_f1", "val_accuracy"):
            assert mine[key] == pytest.approx(theirs[key], abs=accuracy_tolerance), (mine["protocol"], mine["seed"], key)


@pytest.mark.slow
def test_stacked_rows_equal_the_runs_one_by_one_on_digits(tmp_path: Path, stack_sizes: list[int]) -> None:
    """2 protocols x 2 seeds, a few hundred steps: float rounding may move a test image or two, no more."""
    data = load_protocol_data(ingest(IngestConfig(), tmp_path), None)
    cfg = EvaluateConfig(protocols=["real", "classic"], seeds=2, generative_metrics=False,
                         train={"steps": 200, "batch_size": 64, "device": "cpu"})
    specs = build_run_specs(cfg)
    alone = run_all(specs, data, cfg.model_copy(update={"stack": "off"}))
    assert stack_sizes == []
    stacked = run_all(specs, data, cfg.model_copy(update={"stack": "on"}))
    assert stack_sizes == [4]
    _assert_rows_agree(stacked, alone, accuracy_tolerance=2.5 / len(data.test_labels))
    assert len({row["accuracy"] for row in alone}) > 1  # the seeds and protocols are different runs


def test_mixed_protocols_stack_where_they_can_and_give_the_rows_of_one_by_one(tmp_path: Path, stack_sizes: list[int]) -> None:
    real, synthetic = write_tiny_dataset(tmp_path / "d.parquet"), write_tiny_synthetic(tmp_path / "s.parquet")
    data = load_protocol_data(real, synthetic)
    cfg = tiny_eval_config(protocols=["real", "augmented", "weighted", "pretrain", "soft", "classic"], generative_metrics=False,
                           arch={"blocks": [{"channels": 8}], "head_width": 16, "dropout": 0.3})
    specs = build_run_specs(cfg)
    alone = run_all(specs, data, cfg.model_copy(update={"stack": "off"}))
    stacked = run_all(specs, data, cfg.model_copy(update={"stack": "on"}), executor=None)
    assert sorted(stack_sizes) == [2, 6]  # weighted x 2 seeds; real, augmented, classic x 2 seeds
    _assert_rows_agree(stacked, alone, accuracy_tolerance=1e-9)
    for mine, theirs in zip(stacked, alone, strict=True):
        assert mine["best_step"] == theirs["best_step"] and mine["per_class_recall"] == theirs["per_class_recall"]


def test_runs_whose_batches_differ_train_one_by_one_within_their_unit(tmp_path: Path, stack_sizes: list[int]) -> None:
    """With batches of 64, the real runs (36 images) train on batches of 36 and the augmented runs (72) on 64."""
    real, synthetic = write_tiny_dataset(tmp_path / "d.parquet"), write_tiny_synthetic(tmp_path / "s.parquet")
    data = load_protocol_data(real, synthetic)
    cfg = tiny_eval_config(protocols=["real", "augmented"], train={"steps": 6, "batch_size": 64, "device": "cpu"},
                           generative_metrics=False, seeds=1, stack="on")
    rows = run_all(build_run_specs(cfg), data, cfg)
    assert stack_sizes == [] and [row["protocol"] for row in rows] == ["real", "augmented"]
    assert np.all([row["steps_run"] == 6 for row in rows])


def test_a_bad_stack_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_tiny_dataset(run / "dataset.parquet")
    config = tmp_path / "eval.json"
    config.write_text(json.dumps({"protocols": ["real"], "stack": "sometimes"}))
    result = CliRunner().invoke(app, ["evaluate", "--run-dir", str(run), "-c", str(config)])
    assert result.exit_code == 2 and "stack" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in run.iterdir()) == ["dataset.parquet"]


def test_the_stage_writes_the_same_table_with_stacking_off_as_before(real_ref: DatasetRef, tmp_path: Path) -> None:
    """`stack` off and auto on CPU take the one-by-one path: the rows are bit for bit those of each run alone."""
    from ganaug.evaluate.protocols import run_protocol

    data = load_protocol_data(real_ref, None)
    cfg = tiny_eval_config(protocols=["real", "classic"], generative_metrics=False)
    rows = run_all(build_run_specs(cfg), data, cfg)
    each = [run_protocol(spec, data, cfg) for spec in build_run_specs(cfg)]
    for row, alone in zip(rows, each, strict=True):
        assert {k: v for k, v in row.items() if k != "seconds"} == {k: v for k, v in alone.items() if k != "seconds"}
