"""Neural architecture search over the classifier: space, strategies, evaluator, results.

`search` is imported lazily so `import ganaug.nas` stays light (no torch/optuna until used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ganaug.nas.config import SearchConfig, SpaceConfig
    from ganaug.nas.evaluator import Fidelity, TrialData, TrialResult, evaluate_trial
    from ganaug.nas.results import ProxyCorrelation, SearchResult
    from ganaug.nas.stage import search

_EXPORTS = {
    "SearchConfig": "ganaug.nas.config",
    "SpaceConfig": "ganaug.nas.config",
    "Fidelity": "ganaug.nas.evaluator",
    "TrialData": "ganaug.nas.evaluator",
    "TrialResult": "ganaug.nas.evaluator",
    "evaluate_trial": "ganaug.nas.evaluator",
    "ProxyCorrelation": "ganaug.nas.results",
    "SearchResult": "ganaug.nas.results",
    "search": "ganaug.nas.stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ganaug.nas' has no attribute '{name}'")
