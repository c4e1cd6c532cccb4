"""Search results: the trials table, the Pareto front, the best trial, and `SearchResult`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa
from optuna.trial import FrozenTrial, TrialState, create_trial
from pydantic import BaseModel, ConfigDict

from ganaug.classifier import ArchSpec
from ganaug.errors import GanAugError
from ganaug.nas.proxies import ProxyScore
from ganaug.nas.strategy import GENERATION_ATTR, PARENTS_ATTR, ga_generation
from ganaug.pruning import quiet_optuna
from ganaug.study import write_rows

STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
               TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}

TRIALS_SCHEMA = pa.schema([
    pa.field("number", pa.int64()),
    pa.field("state", pa.string()),
    pa.field("role", pa.string()),
    pa.field("strategy", pa.string()),
    pa.field("fidelity", pa.string()),
    pa.field("arch_json", pa.string()),
    pa.field("augment_strength", pa.float64()),
    pa.field("parameter_count", pa.int64()),
    pa.field("fitness", pa.float64()),
    pa.field("latency_ms", pa.float64()),
    pa.field("cost_seconds", pa.float64()),
    pa.field("steps_run", pa.int64()),
    pa.field("generation", pa.int64()),
    pa.field("parents", pa.list_(pa.int64())),
    pa.field("verify_of", pa.int64()),
    pa.field("pareto", pa.bool_()),
    pa.field("error", pa.string()),
])


class ProxyCorrelation(BaseModel):
    """How well the cheap proxy ranks architectures like full-fidelity training does, and what it saves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_size: int
    spearman: float | None
    kendall: float | None
    proxy_seconds: float
    full_seconds: float
    cost_ratio: float | None  # full / proxy seconds: the proxy's speed-up
    proxy: str = "training"  # the proxy these numbers describe (the one the search uses)
    training_fidelity: str | None = None  # what the 'training' proxy trains on, e.g. "synthetic (random) 50/class x 250 steps"
    candidates: list[ProxyScore] = []  # every proxy measured on the same architectures


class SearchResult(BaseModel):
    """What `search` produced (JSON-serializable; paths are strings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str
    mode: str
    objectives: list[str]
    trials_path: str
    best_path: str
    report_path: str
    plot_paths: list[str]
    best_trial: int
    best_arch: ArchSpec
    best_fitness: float
    best_fidelity: str
    best_parameter_count: int
    best_augment_strength: float = 0.0
    test_accuracy_real: float
    test_accuracy_augmented: float | None
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    pareto_trials: list[int]
    proxy: ProxyCorrelation | None = None
    seconds: float = 0.0
    train_data: str = "augmented"  # what full-fidelity trials trained on, e.g. "augmented x1"

    @property
    def best_arch_json(self) -> str:
        return self.best_arch.to_json()


def trial_row(trial: FrozenTrial, strategy: str) -> dict[str, Any]:
    """One row of `trials.parquet` from a trial as Optuna stored it."""
    attrs = trial.user_attrs
    generation = attrs.get(GENERATION_ATTR)
    if generation is None:
        generation = ga_generation(trial)
    error = attrs.get("error")
    if trial.state == TrialState.FAIL and error is None:
        error = "interrupted before it finished"
    return {
        "number": trial.number,
        "state": STATE_NAMES.get(trial.state, str(trial.state)),
        "role": attrs.get("role", "search"),
        "strategy": strategy if attrs.get("role", "search") == "search" else "verify",
        "fidelity": attrs.get("fidelity"),
        "arch_json": attrs.get("arch"),
        "augment_strength": float(attrs.get("augment", 0.0)),
        "parameter_count": attrs.get("parameter_count"),
        "fitness": attrs.get("fitness"),
        "latency_ms": attrs.get("latency_ms"),
        "cost_seconds": attrs.get("seconds"),
        "steps_run": attrs.get("steps_run"),
        "generation": generation,
        "parents": list(attrs.get(PARENTS_ATTR) or []),
        "verify_of": attrs.get("verify_of"),
        "pareto": False,
        "error": error,
    }


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated when maximising the first value and minimising the second.

    Optuna's `best_trials` of a throwaway in-memory study holding the points: the search's own study
    mixes fidelities and may have one objective, while the front is drawn for one fidelity against a cost.
    """
    quiet_optuna()  # no INFO line per throwaway study
    front = optuna.create_study(directions=["maximize", "minimize"])
    front.add_trials([create_trial(state=TrialState.COMPLETE, values=[accuracy, cost]) for accuracy, cost in points])
    return sorted(trial.number for trial in front.best_trials)


def best_fidelity(rows: Sequence[dict[str, Any]]) -> str:
    """Full fidelity wins when any full trial completed (proxy-then-verify); else the proxy."""
    done = {row["fidelity"] for row in rows if row["state"] == "complete"}
    return "full" if "full" in done or not done else "proxy"


def mark_pareto(rows: list[dict[str, Any]], cost_column: str) -> list[int]:
    """Flag rows on the accuracy-vs-cost Pareto front (complete trials of the best fidelity)."""
    fidelity = best_fidelity(rows)
    candidates = [r for r in rows if r["state"] == "complete" and r["fidelity"] == fidelity and r[cost_column] is not None]
    for index in pareto_front([(r["fitness"], r[cost_column]) for r in candidates]):
        candidates[index]["pareto"] = True
    return sorted(r["number"] for r in candidates if r["pareto"])


def select_best(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Highest fitness at the best fidelity; ties go to fewer parameters, then the earlier trial."""
    fidelity = best_fidelity(rows)
    candidates = [r for r in rows if r["state"] == "complete" and r["fidelity"] == fidelity]
    if not candidates:
        errors = sorted({r["error"] for r in rows if r["error"]})
        raise GanAugError(f"no search trial completed ({len(rows)} trials); errors seen: {'; '.join(errors) or 'none'}")
    return max(candidates, key=lambda r: (r["fitness"], -r["parameter_count"], -r["number"]))


def write_trials(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write `trials.parquet` atomically."""
    return write_rows(rows, TRIALS_SCHEMA, path)


def study_rows(study: optuna.Study, strategy: str) -> list[dict[str, Any]]:
    return [trial_row(t, strategy) for t in study.get_trials(deepcopy=False)]


def best_json(best: dict[str, Any], result_fields: dict[str, Any]) -> dict[str, Any]:
    """Content of `best.json`: the architecture as an object plus its scores."""
    return {"trial": best["number"], "arch": json.loads(best["arch_json"]), "augment_strength": best["augment_strength"],
            "fitness": best["fitness"],
            "fidelity": best["fidelity"], "parameter_count": best["parameter_count"], **result_fields}
