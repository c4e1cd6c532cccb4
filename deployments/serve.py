"""Serve the ganaug deployments from this process: `python deployments/serve.py` (no work pool needed).

Two deployments of the `pipeline` flow:
- `ganaug-retrain`: periodic retraining on a data folder (cron schedule; unchanged data is a cache hit);
- `ganaug-pipeline`: the whole pipeline on the built-in digits data, on demand.
The same deployments, for a process work pool and a worker, are in deployments/prefect.yaml.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

RETRAIN_CRON = "0 3 * * 1"  # Mondays 03:00
DATA_FOLDER = "data/incoming"  # one sub-folder of images per class


def small_budget(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `ganaug run` budget as pipeline parameters, with `overrides` merged in."""
    from ganaug.pipeline import SMALL_BUDGET, deep_merge

    return deep_merge(SMALL_BUDGET, overrides or {})


def build_deployments(data_folder: str = DATA_FOLDER, cron: str = RETRAIN_CRON, timezone: str = "UTC") -> list[Any]:
    """The retraining (cron) and on-demand deployments of the pipeline flow, ready to `serve` or `apply`."""
    from prefect.schedules import Cron

    from flows import pipeline

    retrain = pipeline.to_deployment(
        name="ganaug-retrain",
        schedule=Cron(cron, timezone=timezone),
        parameters={"config": small_budget({"ingest": {"source": "folder", "path": data_folder}})},
        description=f"Retrain on the image folder {data_folder} on a schedule; unchanged data reuses the cached stages.",
        tags=["ganaug", "retrain"],
    )
    on_demand = pipeline.to_deployment(
        name="ganaug-pipeline",
        parameters={"config": small_budget()},
        description="The whole pipeline on the built-in digits dataset (the `ganaug run` budget); edit the form to change it.",
        tags=["ganaug"],
    )
    return [retrain, on_demand]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-folder", default=DATA_FOLDER, help=f"Image folder the retraining reads (default {DATA_FOLDER}).")
    parser.add_argument("--cron", default=RETRAIN_CRON, help=f"Retraining schedule (default '{RETRAIN_CRON}').")
    parser.add_argument("--timezone", default="UTC", help="Time zone of the cron schedule.")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ganaug")
    from prefect import serve

    os.chdir(PROJECT_ROOT)  # relative data and run folders resolve against the project
    serve(*build_deployments(args.data_folder, args.cron, args.timezone))


if __name__ == "__main__":
    main()
