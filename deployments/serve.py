"""Serve the ganaug deployments from this process: `python deployments/serve.py` (no work pool needed).

Two deployments of the `pipeline` flow:
- `ganaug-retrain`: periodic retraining on a data folder (cron schedule; unchanged data is a cache hit);
- `ganaug-pipeline`: the whole pipeline on the built-in digits data, on demand.
The same deployments, for a process work pool and a worker, are in deployments/prefect.yaml. Where
`prefect deploy` registered them already, serving them here would replace them by deployments with no
pull step and no work pool, whose worker-started runs then crash: serve.py refuses, naming them, unless
`--suffix` gives the served ones names of their own.

Each deployment runs one flow run at a time (a deployment concurrency limit of 1; a run that comes due while
another runs waits for it). Where another deployment of the pipeline already has an active schedule on the
same cron and time zone (the worker's `ganaug-retrain`, say), the served retraining gets its schedule
paused, so the retraining is not started twice at the same hour; serve.py names the other deployment.
`--duplicate-schedule` keeps the served schedule active anyway.
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
# one flow run per deployment at a time; a run that comes due while one runs waits for it (prefect.yaml says the same)
CONCURRENCY = {"limit": 1, "collision_strategy": "ENQUEUE"}
DATA_FOLDER = "data/incoming"  # one sub-folder of images per class


def small_budget(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `ganaug run` budget as pipeline parameters, with `overrides` merged in."""
    from ganaug.pipeline import SMALL_BUDGET, deep_merge

    return deep_merge(SMALL_BUDGET, overrides or {})


def build_deployments(data_folder: str = DATA_FOLDER, cron: str = RETRAIN_CRON, timezone: str = "UTC",
                      suffix: str = "", schedule_active: bool = True) -> list[Any]:
    """The retraining (cron) and on-demand deployments of the pipeline flow, ready to `serve` or `apply`.

    Each runs one flow run at a time; `schedule_active=False` registers the retraining's schedule paused.
    """
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.schedules import Cron

    from flows import pipeline

    concurrency = ConcurrencyLimitConfig(**CONCURRENCY)
    retrain = pipeline.to_deployment(
        name=f"ganaug-retrain{suffix}",
        schedule=Cron(cron, timezone=timezone, active=schedule_active),
        concurrency_limit=concurrency,
        parameters={"config": small_budget({"ingest": {"source": "folder", "path": data_folder}})},
        description=f"Retrain on the image folder {data_folder} on a schedule; unchanged data reuses the cached stages.",
        tags=["ganaug", "retrain"],
    )
    on_demand = pipeline.to_deployment(
        name=f"ganaug-pipeline{suffix}",
        parameters={"config": small_budget()},
        concurrency_limit=concurrency,
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


def _same_cron(a: str, b: str) -> bool:
    return a.split() == b.split()


def scheduled_elsewhere(cron: str, timezone: str, names: list[str]) -> list[str]:
    """Deployments of the pipeline flow other than `names` that are not paused and have an active schedule on `cron`
    in `timezone`: a served retraining on the same schedule would start a second training at the same time."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    found = []
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=["pipeline"])))
    for deployment in deployments:
        if deployment.name in names or deployment.paused:
            continue
        for entry in deployment.schedules:
            schedule_cron = getattr(entry.schedule, "cron", None)
            schedule_timezone = getattr(entry.schedule, "timezone", None) or "UTC"
            if entry.active and schedule_cron and _same_cron(schedule_cron, cron) and schedule_timezone == timezone:
                found.append(f"pipeline/{deployment.name}")
                break
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-folder", default=DATA_FOLDER, help=f"Image folder the retraining reads (default {DATA_FOLDER}).")
    parser.add_argument("--cron", default=RETRAIN_CRON, help=f"Retraining schedule (default '{RETRAIN_CRON}').")
    parser.add_argument("--timezone", default="UTC", help="Time zone of the cron schedule.")
    parser.add_argument("--suffix", default="", help="Appended to the deployment names (e.g. --suffix=-served), so they "
                                                     "do not replace deployments made by `prefect deploy`.")
    parser.add_argument("--duplicate-schedule", action="store_true",
                        help="Keep the retraining's schedule active even where another deployment of the pipeline "
                             "already runs on the same schedule (by default it is registered paused).")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ganaug")
    from prefect import serve

    names = [f"ganaug-retrain{args.suffix}", f"ganaug-pipeline{args.suffix}"]
    duplicates = [] if args.duplicate_schedule else scheduled_elsewhere(args.cron, args.timezone, names)
    deployments = build_deployments(args.data_folder, args.cron, args.timezone, args.suffix,
                                    schedule_active=not duplicates)
    taken = deployed_for_workers([deployment.name for deployment in deployments])
    if taken:
        raise SystemExit(
            f"serve.py: {', '.join(taken)} already exist(s), registered by `prefect deploy` for a worker; serving "
            "here would replace them with deployments that have no pull step, and their runs would crash. Run them "
            "with `prefect worker start --pool ganaug-local`, delete them first (`prefect deployment delete "
            "<name>`), or serve under other names: python deployments/serve.py --suffix=-served")
    if duplicates:
        print(f"serve.py: {', '.join(duplicates)} already run{'s' if len(duplicates) == 1 else ''} on the schedule '{args.cron}' ({args.timezone}); "
              f"pipeline/{names[0]} is registered with its schedule paused so the retraining does not run twice. "
              "Resume it in the UI, or pass --duplicate-schedule, to run both.", file=sys.stderr, flush=True)
    os.chdir(PROJECT_ROOT)  # relative data and run folders resolve against the project
    serve(*deployments)


if __name__ == "__main__":
    main()
