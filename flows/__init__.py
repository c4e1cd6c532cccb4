"""Prefect 3 flows around the ganaug stages: one flow per stage and the `pipeline` that chains them.

Tasks are thin wrappers over the stage functions; see docs/orchestration.md for caching, resume,
artifacts, deployments and scale-out.
"""

from flows.pipeline import PipelineSummary, pipeline
from flows.stages import (
    evaluate_flow,
    generate_flow,
    ingest_flow,
    search_flow,
    train_gan_flow,
)

__all__ = ["PipelineSummary", "evaluate_flow", "generate_flow", "ingest_flow", "pipeline", "search_flow", "train_gan_flow"]
