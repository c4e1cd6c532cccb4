"""Serve the ganaug deployments from this process: `python deployments/serve.py` (no work pool needed).

Two deployments of the `pipeline` flow:
- `ganaug-retrain`: periodic retraining on a data folder (cron schedule; unchanged data is a cache hit);
- `ganaug-pipeline`: the whole pipeline on the built-in digits data, on demand.
The same deployments, for a process work pool and a worker, are in deployments/prefect.yaml. Where
`prefect deploy` registered them already, serving them here would replace them by deployments with no
pull step and no work pool, whose worker-started runs then crash: serve.py refuses, naming them, unless
`--suffix` gives the served ones names of their own.
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


def build_deployments(data_folder: str = DATA_FOLDER, cron: str = RETRAIN_CRON, timezone: str = "UTC",
                      suffix: str = "") -> list[Any]:
    """The retraining (cron) and on-demand deployments of the pipeline flow, ready to `serve` or `apply`."""
    from prefect.schedules import Cron

    from flows import pipeline

    retrain = pipeline.to_deployment(
        name=f"ganaug-retrain{suffix}",
        schedule=Cron(cron, timezone=timezone),
        parameters={"config": small_budget({"ingest": {"source": "folder", "path": data_folder}})},
        description=f"Retrain on the image folder {data_folder} on a schedule; unchanged data reuses the cached stages.",
        tags=["ganaug", "retrain"],
    )
    on_demand = pipeline.to_deployment(
        name=f"ganaug-pipeline{suffix}",
        parameters={"config": small_budget()},
        description="The whole pipeline on the built-in digits dataset (the `ganaug run` budget); edit the form to change it.",
        tags=["ganaug"],
    )
    return [retrain, on_demand]


def deployed_for_workers(names: list[str]) -> list[str]:
    """Those of the pipeline's deployments `names` that the API holds for a work pool (made by `prefect deploy`)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    found = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                deployment = client.read_deployment_by_name(f"pipeline/{name}")
            except ObjectNotFound:
                continue
            if deployment.work_pool_name is not None:
                found.append(f"pipeline/{name} (work pool {deployment.work_pool_name})")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-folder", default=DATA_FOLDER, help=f"Image folder the retraining reads (default {DATA_FOLDER}).")
    parser.add_argument("--cron", default=RETRAIN_CRON, help=f"Retraining schedule (default '{RETRAIN_CRON}').")
    parser.add_argument("--timezone", default="UTC", help="Time zone of the cron schedule.")
    parser.add_argument("--suffix", default="", help="Appended to the deployment names (e.g. --suffix=-served), so they "
                                                     "do not replace deployments made by `prefect deploy`.")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ganaug")
    from prefect import serve

    deployments = build_deployments(args.data_folder, args.cron, args.timezone, args.suffix)
    taken = deployed_for_workers([deployment.name for deployment in deployments])
    if taken:
        raise SystemExit(
            f"serve.py: {', '.join(taken)} already exist(s), registered by `prefect deploy` for a worker; serving "
            "here would replace them with deployments that have no pull step, and their runs would crash. Run them "
            "with `prefect worker start --pool ganaug-local`, delete them first (`prefect deployment delete "
            "<name>`), or serve under other names: python deployments/serve.py --suffix=-served")
    os.chdir(PROJECT_ROOT)  # relative data and run folders resolve against the project
    serve(*deployments)


if __name__ == "__main__":
    main()
