"""The accuracy-vs-cost Pareto front, checked on points whose front is known by hand."""

from __future__ import annotations

from ganaug.nas.results import mark_pareto, pareto_front


def test_pareto_front_by_hand() -> None:
    # (accuracy, cost): 1 is beaten by 0 (same accuracy, dearer); 3 by 2 (less accurate, dearer);
    # 4 and 5 tie exactly and both stay; 6 is the most accurate and dearest.
    points = [(0.8, 10.0), (0.8, 12.0), (0.9, 20.0), (0.85, 25.0), (0.7, 5.0), (0.7, 5.0), (0.95, 40.0)]
    assert pareto_front(points) == [0, 2, 4, 5, 6]
    assert pareto_front([]) == [] and pareto_front([(0.5, 1.0)]) == [0]


def test_mark_pareto_uses_complete_trials_of_the_best_fidelity() -> None:
    def row(number: int, fidelity: str, fitness: float, cost: int, state: str = "complete") -> dict:
        return {"number": number, "state": state, "fidelity": fidelity, "fitness": fitness, "parameter_count": cost,
                "pareto": False}

    rows = [row(0, "proxy", 0.99, 1), row(1, "full", 0.9, 100), row(2, "full", 0.8, 50), row(3, "full", 0.7, 80),
            row(4, "full", 0.95, 10, state="pruned")]
    # the proxy trial and the pruned one would dominate everything; neither counts
    assert mark_pareto(rows, "parameter_count") == [1, 2]
    assert [r["pareto"] for r in rows] == [False, True, True, False, False]
