"""Asking an Optuna pruner from a worker: replay the finished trials into a small in-memory study.

NAS trials and GAN tuning trials train in threads or Prefect tasks, away from the study they belong
to. Each worker gets a fresh pruner and the trials finished before it, replays them into a private
in-memory study, asks for one trial and reports its readings there, so the pruner decides as the
study would and threads never share a pruner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import optuna
from optuna.trial import FrozenTrial


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO on its own handler; ganaug reports progress itself."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def replay_reporter(pruner: optuna.pruners.BasePruner, trials: Iterable[FrozenTrial], unit: str, reading: str,
                    study_name: str | None = None, judge_from: int = 0) -> Callable[[int, float], None]:
    """A `(step, value)` callback: report the value at that step; raise `optuna.TrialPruned` when the pruner,
    having seen `trials` (in order) in a study named `study_name`, says stop. Values at steps below
    `judge_from` are reported without asking the pruner. `unit` and `reading` name the step and the
    value in the message: "pruned at <unit> 4 at <reading> 0.1234"."""
    quiet_optuna()
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name=study_name,
                                sampler=optuna.samplers.RandomSampler(0))
    study.add_trials(list(trials))
    trial = study.ask()

    def on_reading(step: int, value: float) -> None:
        trial.report(value, step)
        if step >= judge_from and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at {unit} {step} at {reading} {value:.4f}")

    return on_reading
