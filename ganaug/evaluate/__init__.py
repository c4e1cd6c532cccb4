"""Downstream evaluation: protocols (real / augmented / synthetic-only / classic), generative metrics, statistics."""

from ganaug.evaluate.config import EvaluateConfig
from ganaug.evaluate.protocols import RunSpec, build_run_specs, run_protocol
from ganaug.evaluate.stage import EvaluationResult, evaluate, finish_evaluation, prepare_evaluation, run_all

__all__ = [
    "EvaluateConfig",
    "EvaluationResult",
    "RunSpec",
    "build_run_specs",
    "evaluate",
    "finish_evaluation",
    "prepare_evaluation",
    "run_all",
    "run_protocol",
]
