"""Flow retries after transient errors only, as many as the run's `OrchestrationConfig.retries` says.

Prefect's server retries a failed flow run while its run count is within the run's `retries`, whatever the error:
flows have no retry condition as tasks do. So every stage flow and the pipeline set their own run's retries from
their settings when they start (a deployment's parameters can change them, not only the code), and clear them when
they fail with an error that is not transient (bad input or divergence, a `GanAugError`, or a bug), which makes that
failure final.

A retry reruns the flow from its start; finished stages and fanned-out units are cache hits. An error that a
subflow has already retried as often as allowed is not retried again by the pipeline around it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

from ganaug.errors import GanAugError
from ganaug.pipeline import OrchestrationConfig

TRANSIENT_ERRORS = (OSError, TimeoutError, ConnectionError)
_SPENT = "_ganaug_retries_spent"  # set on an error a flow run has already retried as often as it may


def is_transient(error: BaseException | None) -> bool:
    """Whether a retry may cure `error`: I/O-type failures are retried; ganaug's own errors and bugs never are."""
    if error is None or isinstance(error, GanAugError) or getattr(error, _SPENT, False):
        return False
    return isinstance(error, TRANSIENT_ERRORS)


def _set_retries(flow_run_id: object, retries: int, delay_seconds: float | None = None) -> int:
    """Set the retries the server allows this flow run; returns its run count."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        update = {"retries": retries}
        if delay_seconds is not None:
            update["retry_delay"] = math.ceil(delay_seconds)
        client.update_flow_run(flow_run.id, empirical_policy=flow_run.empirical_policy.model_copy(update=update))
        return flow_run.run_count


@contextlib.contextmanager
def transient_retries(settings: OrchestrationConfig) -> Iterator[None]:
    """Around a flow's body: the flow run is retried `settings.retries` times after a transient error, never after
    another one."""
    from prefect.runtime import flow_run

    flow_run_id = flow_run.id
    if flow_run_id is None:  # not in a flow run
        yield
        return
    run_count = _set_retries(flow_run_id, settings.retries, settings.retry_delay_seconds)
    try:
        yield
    except Exception as err:
        if not is_transient(err):
            _set_retries(flow_run_id, 0)
        elif run_count > settings.retries:  # this was the last try: a flow around this one does not retry it again
            setattr(err, _SPENT, True)
        raise
