"""The executor protocol: results in item order from every executor, failures raised or handed back in place."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ganaug.executor import FuturesExecutor, SerialExecutor, ThreadExecutor, Unpack, as_executor


def slow_square(x: int) -> int:
    time.sleep(0.01 * (5 - x))  # later items finish first
    if x == 3:
        raise ValueError("three")
    return x * x


EXECUTORS = [SerialExecutor(), ThreadExecutor(3), FuturesExecutor(ThreadPoolExecutor(3))]


@pytest.mark.parametrize("executor", EXECUTORS, ids=["serial", "threads", "futures"])
def test_results_in_item_order_and_failures_in_place(executor) -> None:
    assert executor.map(slow_square, [0, 1, 2, 4]) == [0, 1, 4, 16]
    results = executor.map(slow_square, [4, 3, 2], return_exceptions=True)
    assert results[0] == 16 and results[2] == 4
    assert isinstance(results[1], ValueError) and str(results[1]) == "three"
    with pytest.raises(ValueError, match="three"):
        executor.map(slow_square, [1, 3, 2])


def test_threads_run_units_at_once() -> None:
    barrier = threading.Barrier(3, timeout=10)  # each unit waits for the other two: only parallel runs pass
    assert ThreadExecutor(3).map(lambda x: barrier.wait() * 0 + x, [1, 2, 3], name="probe") == [1, 2, 3]


def test_as_executor_defaults_and_wraps_concurrent_futures() -> None:
    assert isinstance(as_executor(None), SerialExecutor)
    assert isinstance(as_executor(None, workers=4), ThreadExecutor) and as_executor(None, workers=4).workers == 4
    with ThreadPoolExecutor(2) as pool:
        wrapped = as_executor(pool)
        assert isinstance(wrapped, FuturesExecutor) and wrapped.map(Unpack(pow), [(2, 3), (3, 2)]) == [8, 9]
    own = ThreadExecutor(2)
    assert as_executor(own) is own
