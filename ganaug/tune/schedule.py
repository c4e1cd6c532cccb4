"""A learned default schedule: η0 and η1 of lr_t = η0 · exp(−η1 t) as a function of dataset meta-features.

η0 is a multiplier of the default learning rates (GanConfig's g_lr and d_lr, so their ratio stays),
η1 is `lr_decay_rate` (a constant schedule is η1 = 0). Both are fitted from the run history:

- **observations**: for every past dataset, its best `per_dataset` finished records (tuning trials
  by CAS on val first, then plain trainings by their val 1-NN CAS, as warm start ranks them) whose
  schedule is constant or exponential; target (log η0, η1), weight = the record's val utility, so a
  dataset whose best run was poor counts less than one where tuning succeeded;
- **features**: log images per class, log classes, log pixels per image, pixel mean and std in
  tenths of the intensity range, and the log of the training's steps (the best rate of a short
  training is not that of a long one) — fixed scales (a factor e in size counts 1), centred on a
  reference (100 images per class, 10 classes, 28x28 grayscale, the default 3000 steps), not
  standardised by the history's spread, which blows up third-decimal differences among
  near-identical datasets;
- **model**: follow the regularized leader with quadratic losses — θ minimises
  Σ w_s ‖y_s − θᵀx_s‖² + (θ − θ_prior)ᵀΛ(θ − θ_prior), the prior being the fixed default (η0
  multiplier 1, η1 = 0, every slope 0); Λ pulls the intercept with strength 1 (the default counts
  like one past run) and the slopes with λ. Observations are folded in one at a time as sufficient statistics, so the
  solution is exact after each; with no observations it is the default, and the more (and the
  better) the runs on datasets like the new one, the further it moves from it. The slopes' λ is chosen among
  `STRENGTHS` by how well each past dataset's runs are predicted from the other datasets' (leave one
  dataset out). The model is rebuilt from the history whenever it is used, so every run that
  arrives updates it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganaug.errors import ConfigError, DataError
from ganaug.gan.config import GanConfig
from ganaug.store import DatasetRef, read_dataset
from ganaug.tune.history import DatasetFeatures, dataset_features, history_rows
from ganaug.tune.warmstart import PIXEL_SCALE, record_utility

log = logging.getLogger(__name__)

FEATURE_NAMES = ("log images/class", "log classes", "log pixels", "pixel mean", "pixel std", "log steps")
REFERENCE_STEPS = 3000  # GanConfig's default training length
REFERENCE = np.array([math.log(100), math.log(10), math.log(28 * 28), 0.2 / PIXEL_SCALE, 0.3 / PIXEL_SCALE,
                      math.log(REFERENCE_STEPS)])
DEFAULT_G_LR, DEFAULT_D_LR = 2e-4, 8e-4  # GanConfig's defaults; the learned η0 multiplies both
MULTIPLIER_RANGE = (0.25, 5.0)  # keeps g_lr and d_lr inside the tuning space (5e-5..2e-3, 1e-4..4e-3)
DECAY_RANGE = (0.0, 6.0)  # the tuning space's largest lr_decay_rate
INTERCEPT_STRENGTH = 1.0
DEFAULT_STRENGTH = 1.0  # of the slopes; used when the history has fewer than two datasets to choose it by
STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
DECAY_WEIGHT = 0.5  # η1 (range 6) halved next to log η0 (range ln 20 = 3.0) when strengths are compared
DEFAULT_PER_DATASET = 3


def schedule_features(features: DatasetFeatures, steps: int) -> np.ndarray:
    """What the schedule depends on — the dataset's meta-features and the training's length — on fixed
    scales, centred on the reference (a 28x28 dataset of 100 images per class trained the default 3000 steps)."""
    raw = np.array([math.log(max(features.images, 1) / max(features.classes, 1)), math.log(max(features.classes, 1)),
                    math.log(features.height * features.width * features.channels),
                    features.pixel_mean / PIXEL_SCALE, features.pixel_std / PIXEL_SCALE, math.log(max(steps, 1))])
    return raw - REFERENCE


def schedule_target(config: dict[str, Any]) -> tuple[float, float] | None:
    """(log η0 multiplier, η1) of a recorded GanConfig; None for a schedule outside exp(−η1 t) (cosine)."""
    schedule = config.get("lr_schedule", "constant")
    if schedule not in ("constant", "exponential"):
        return None
    g_lr, d_lr = float(config["g_lr"]), float(config["d_lr"])
    log_multiplier = 0.5 * (math.log(g_lr / DEFAULT_G_LR) + math.log(d_lr / DEFAULT_D_LR))  # geometric mean
    return log_multiplier, float(config["lr_decay_rate"]) if schedule == "exponential" else 0.0


@dataclass(frozen=True)
class Observation:
    """One past run the schedule learns from."""

    dataset_hash: str
    dataset_path: str
    origin: str
    study: str | None
    trial: int | None
    utility: float
    log_multiplier: float
    decay: float
    steps: int
    features: np.ndarray = field(repr=False)


def observations(rows: list[dict[str, Any]], per_dataset: int = DEFAULT_PER_DATASET,
                 exclude: frozenset[str] = frozenset()) -> list[Observation]:
    """The best `per_dataset` usable records of every dataset (not in `exclude`), in history order."""
    ranked: dict[str, list[tuple[tuple[int, float, int], dict[str, Any]]]] = {}
    for order, row in enumerate(rows):
        utility = record_utility(row)
        if utility is None or row["dataset_hash"] in exclude or schedule_target(row["config"]) is None:
            continue
        kind = 1 if isinstance(row.get("cas_val"), float) and math.isfinite(row["cas_val"]) else 0
        ranked.setdefault(row["dataset_hash"], []).append(((kind, utility, order), row))
    chosen: list[tuple[int, Observation]] = []
    for records in ranked.values():
        for (_, utility, order), row in sorted(records, key=lambda item: item[0], reverse=True)[:per_dataset]:
            log_multiplier, decay = schedule_target(row["config"])  # type: ignore[misc]
            chosen.append((order, Observation(
                row["dataset_hash"], row["dataset_path"], row["origin"], row.get("study"), row.get("trial"), utility,
                log_multiplier, decay, int(row["steps"]), schedule_features(DatasetFeatures.from_row(row), int(row["steps"])))))
    return [observation for _, observation in sorted(chosen, key=lambda pair: pair[0])]


class ScheduleModel:
    """Ridge regression of (log η0, η1) on the features, pulled to the default: the FTRL solution.

    The intercept (the schedule of the reference dataset) is pulled to the default with
    `INTERCEPT_STRENGTH` (the default counts like one past run of utility 1), the slopes to 0 with
    `strength`: what all past datasets agree on is learned from few runs, how the schedule varies
    with the features only as far as the data support it.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, intercept_strength: float = INTERCEPT_STRENGTH) -> None:
        if strength <= 0 or intercept_strength <= 0:
            raise ValueError(f"strengths must be positive, got {strength} and {intercept_strength}")
        size = 1 + len(FEATURE_NAMES)
        self.strength = strength
        self.prior = np.zeros((size, 2))  # intercept: log multiplier 0, decay 0 (the fixed default); slopes 0
        self.penalty = np.diag([intercept_strength] + [strength] * len(FEATURE_NAMES))  # Λ
        self.gram = self.penalty.copy()  # Λ + Σ w x xᵀ
        self.moment = self.penalty @ self.prior  # Λθ_prior + Σ w x yᵀ
        self.weight = 0.0

    def observe(self, features: np.ndarray, log_multiplier: float, decay: float, weight: float) -> None:
        """Fold one observation in (a rank-one update of the sufficient statistics)."""
        x = np.concatenate([[1.0], features])
        self.gram += weight * np.outer(x, x)
        self.moment += weight * np.outer(x, [log_multiplier, decay])
        self.weight += weight

    def coefficients(self) -> np.ndarray:
        """θ = (Λ + Σ w x xᵀ)⁻¹ (Λθ_prior + Σ w x yᵀ), one column per output."""
        return np.linalg.solve(self.gram, self.moment)

    def predict(self, features: np.ndarray) -> tuple[float, float]:
        """(log η0 multiplier, η1) for a dataset's features (not clipped)."""
        log_multiplier, decay = np.concatenate([[1.0], features]) @ self.coefficients()
        return float(log_multiplier), float(decay)


@dataclass(frozen=True)
class LearnedSchedule:
    """The schedule for one dataset, and the runs it was learned from."""

    g_lr: float
    d_lr: float
    lr_decay_rate: float
    multiplier: float
    predicted: tuple[float, float]  # (η0 multiplier, η1) before clipping to the tuning space's ranges
    observations: tuple[Observation, ...]
    history: str
    strength: float  # λ of the fit
    steps: int  # the training length it is for

    def steps_outside(self) -> tuple[int, int] | None:
        """The (shortest, longest) steps of the runs learned from, when this training is over 2x outside them."""
        shortest, longest = min(o.steps for o in self.observations), max(o.steps for o in self.observations)
        return (shortest, longest) if not shortest / 2 <= self.steps <= longest * 2 else None

    @property
    def lr_schedule(self) -> str:
        return "exponential" if self.lr_decay_rate > 0 else "constant"

    def settings(self) -> dict[str, Any]:
        """The GanConfig options the schedule sets."""
        return {"g_lr": self.g_lr, "d_lr": self.d_lr, "lr_schedule": self.lr_schedule, "lr_decay_rate": self.lr_decay_rate}


def fit_schedule(found: list[Observation], strength: float = DEFAULT_STRENGTH) -> ScheduleModel:
    model = ScheduleModel(strength)
    for observation in found:
        model.observe(observation.features, observation.log_multiplier, observation.decay, observation.utility)
    return model


def choose_strength(found: list[Observation]) -> float:
    """The regularisation strength that predicts each past dataset best from the others (leave one dataset out).

    The error is utility-weighted squared error of (log η0, η1 / 2); ties go to the stronger pull to the
    default. With fewer than two datasets there is nothing to hold out: DEFAULT_STRENGTH.
    """
    datasets = sorted({o.dataset_hash for o in found})
    if len(datasets) < 2:
        return DEFAULT_STRENGTH
    scale = np.array([1.0, DECAY_WEIGHT])
    errors = []
    for strength in STRENGTHS:
        error = 0.0
        for held in datasets:
            model = fit_schedule([o for o in found if o.dataset_hash != held], strength)
            for o in (o for o in found if o.dataset_hash == held):
                miss = (np.array(model.predict(o.features)) - [o.log_multiplier, o.decay]) * scale
                error += o.utility * float(miss @ miss)
        errors.append((round(error, 9), -strength))
    return -min(errors)[1]


def schedule_for(features: DatasetFeatures, steps: int, found: list[Observation], history: str,
                 strength: float | None = None) -> LearnedSchedule:
    """The learned schedule of a dataset from these observations, clipped to the tuning space's ranges.

    `strength` None: chosen by leave-one-dataset-out over the observations (`choose_strength`).
    """
    strength = choose_strength(found) if strength is None else strength
    log_multiplier, decay = fit_schedule(found, strength).predict(schedule_features(features, steps))
    multiplier = min(max(math.exp(log_multiplier), MULTIPLIER_RANGE[0]), MULTIPLIER_RANGE[1])
    clipped = min(max(decay, DECAY_RANGE[0]), DECAY_RANGE[1])
    return LearnedSchedule(DEFAULT_G_LR * multiplier, DEFAULT_D_LR * multiplier, clipped, multiplier,
                           (math.exp(log_multiplier), decay), tuple(found), history, strength, steps)


def learned_schedule(features: DatasetFeatures, steps: int, history: str | Path | None,
                     per_dataset: int = DEFAULT_PER_DATASET, strength: float | None = None) -> LearnedSchedule:
    """The schedule learned from the run history for a dataset; a `DataError` naming the file when it cannot be."""
    if history is None:
        raise DataError("the learned schedule reads the run history, but recording is off ($GANAUG_HISTORY=off); "
                        "point GANAUG_HISTORY at a history file")
    path = Path(history)
    rows = history_rows(path)  # a damaged or foreign file is a DataError naming it
    found = observations(rows, per_dataset)
    if not found:
        why = "does not exist" if not path.exists() else (
            f"has {len(rows)} record(s), none finished with a val utility and a constant or exponential schedule")
        raise DataError(f"the learned schedule needs past GAN runs, and the run history {path} {why}; train "
                        "(ganaug train) or tune (ganaug tune) on some datasets first, or point GANAUG_HISTORY "
                        "at another history")
    return schedule_for(features, steps, found, str(path), strength)


SCHEDULE_OPTIONS = ("g_lr", "d_lr", "lr_schedule", "lr_decay_rate")


def _refuse_given(cfg: GanConfig) -> None:
    """The learned schedule sets the four options; one changed from its default is a conflict, not silently replaced.

    Judged by value, not by which fields were given: a config that went through a Prefect parameter
    or a YAML dump has every field set.
    """
    given = [name for name in SCHEDULE_OPTIONS if getattr(cfg, name) != GanConfig.model_fields[name].default]
    if given:
        raise ConfigError(f"the learned schedule sets {', '.join(SCHEDULE_OPTIONS)}; the config also gives "
                          f"{', '.join(f'{name}={getattr(cfg, name)}' for name in given)}: leave them at their defaults, "
                          "or train with schedule 'fixed'")


def with_learned_schedule(cfg: GanConfig, dataset: DatasetRef | str | Path,
                          history: str | Path | None) -> tuple[GanConfig, LearnedSchedule]:
    """`cfg` with the learning rates and schedule learned for `dataset` (and schedule 'learned'); options it sets must not be given too."""
    _refuse_given(cfg)
    learned = learned_schedule(dataset_features(read_dataset(dataset)), cfg.steps, history)
    return GanConfig.model_validate({**cfg.model_dump(), **learned.settings(), "schedule": "learned"}), learned


def schedule_of_checkpoint(cfg: GanConfig, checkpoint: str | Path) -> GanConfig:
    """`cfg` with the schedule a training was started with (its checkpoint's config): a resumed training keeps it."""
    from ganaug.gan.checkpoint import read_checkpoint_with_fallback

    _refuse_given(cfg)
    payload, _ = read_checkpoint_with_fallback(checkpoint)
    started = {name: payload["config"][name] for name in SCHEDULE_OPTIONS}
    return GanConfig.model_validate({**cfg.model_dump(), **started, "schedule": "learned"})


def resolve_schedule(cfg: GanConfig, root: str | Path, dataset: DatasetRef | str | Path, history: str | Path | None,
                     announce: Callable[[str], None] | None = None) -> GanConfig:
    """The config a training under `root` starts with: `cfg` itself for schedule 'fixed'; for 'learned', the
    schedule a resumed training (cfg.resume and root/gan/checkpoints/last.pt) started with, else the one learned
    now from `history` for `dataset`. `announce` gets one line per past run learned from and the result."""
    if cfg.schedule == "fixed":
        return cfg
    from ganaug.gan.artifacts import GanPaths

    say = announce or log.info
    checkpoint = GanPaths.under(Path(root)).last_checkpoint
    if cfg.resume and checkpoint.is_file():
        resolved = schedule_of_checkpoint(cfg, checkpoint)
        say(f"resuming with the schedule this training started with ({checkpoint}): g_lr {resolved.g_lr:.3g}, "
            f"d_lr {resolved.d_lr:.3g}, {resolved.lr_schedule}, η1 = {resolved.lr_decay_rate:.2f}")
        return resolved
    resolved, learned = with_learned_schedule(cfg, dataset, history)
    for line in describe(learned):
        say(line)
    return resolved


def describe(learned: LearnedSchedule) -> list[str]:
    """The learned schedule and the past runs it was learned from, one line each."""
    datasets = len({o.dataset_hash for o in learned.observations})
    lines = [(f"learned schedule from {len(learned.observations)} past run(s) on {datasets} dataset(s) in {learned.history} "
              "(weight = val utility):")]
    for o in learned.observations:
        run = f"{o.study} trial {o.trial}" if o.study is not None else o.origin
        lines.append(f"  {o.dataset_path}  {run}, {o.steps} steps, weight {o.utility:.3f}: "
                     f"η0 {math.exp(o.log_multiplier):.2f} x default, η1 {o.decay:.2f}")
    multiplier, decay = learned.predicted
    clipped = "" if (round(multiplier, 6), round(decay, 6)) == (round(learned.multiplier, 6), round(learned.lr_decay_rate, 6)) \
        else f" (predicted η0 {multiplier:.2f} x, η1 {decay:.2f}; clipped to the tuning ranges)"
    lines.append(f"this dataset, {learned.steps} steps: η0 {learned.multiplier:.2f} x default (g_lr {learned.g_lr:.3g}, "
                 f"d_lr {learned.d_lr:.3g}), {learned.lr_schedule} schedule, η1 {learned.lr_decay_rate:.2f}{clipped}; "
                 f"regularisation λ {learned.strength:g}")
    outside = learned.steps_outside()
    if outside is not None:
        lines.append(f"note: the runs it learned from trained {outside[0]}..{outside[1]} steps, this training {learned.steps}: "
                     "the schedule is extrapolated in length")
    return lines
