"""Converged training: the default (small-budget) classifier is no worse than a simple baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.evaluate import EvaluateConfig
from ganaug.evaluate.data import load_protocol_data
from ganaug.evaluate.protocols import build_run_specs
from ganaug.evaluate.stage import run_all
from ganaug.pipeline import SMALL_BUDGET


def test_small_budget_real_protocol_on_ten_digits_per_class_beats_logistic_regression(tmp_path: Path) -> None:
    # Epoch budgets left this at 0.71-0.84 (about 190 steps) against a logistic regression's 0.895.
    data = load_protocol_data(ingest(IngestConfig(train_per_class=10), tmp_path), None)
    cfg = EvaluateConfig.model_validate({**SMALL_BUDGET["evaluate"], "protocols": ["real"], "generative_metrics": False})
    rows = run_all(build_run_specs(cfg), data, cfg)
    assert len(rows) == 3 and all(row["steps_run"] == 1000 for row in rows)  # 100 images -> the 1,000-step floor
    flat = lambda images: images.reshape(len(images), -1) / 255.0  # noqa: E731
    logistic = LogisticRegression(max_iter=2000).fit(flat(data.train_images), data.train_labels)
    baseline = float((logistic.predict(flat(data.test_images)) == data.test_labels).mean())
    assert np.mean([row["accuracy"] for row in rows]) >= baseline - 0.05
