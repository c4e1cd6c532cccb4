"""Prefect 3 flows around the ganaug stages: one flow per stage and the `pipeline` that chains them.

Tasks are one call of a stage runner (`ganaug.runner`) each; see docs/orchestration.md for caching, resume,
artifacts, deployments and scale-out.
"""

from flows.logs import setup_run_logging
from flows.pipeline import pipeline
from flows.stages import evaluate_flow, generate_flow, ingest_flow, search_flow, train_gan_flow
from ganaug.pipeline import PipelineSummary

setup_run_logging()

__all__ = ["PipelineSummary", "evaluate_flow", "generate_flow", "ingest_flow", "pipeline", "search_flow", "train_gan_flow"]
