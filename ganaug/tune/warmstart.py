"""Warm start: the past datasets nearest a new one by meta-features, and their best GAN configs.

Distance: the Euclidean norm of the meta-feature differences on fixed scales — log images, log
classes, log pixels per image, channels and log imbalance (largest / smallest class) as they are
(a factor e in size counts 1), pixel mean and std in tenths of the intensity range, and the
root-mean-square difference of the 32-number embedding in tenths. Fixed scales, not the spread of
the candidates: among near-identical datasets (digits at several sizes) standardising blew up
differences in the third decimal of the pixel statistics and ranked the dataset closest in size last.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from ganaug.gan.config import GanConfig
from ganaug.tune.history import DatasetFeatures, penalised_utility


@dataclass(frozen=True)
class Neighbour:
    """A past dataset, its distance to the new one, and its best configs (best first)."""

    features: DatasetFeatures
    distance: float
    configs: tuple[GanConfig, ...]
    utilities: tuple[float, ...]


PIXEL_SCALE = 0.1  # a tenth of the intensity range counts as much as a factor e in size


def scalar_features(features: DatasetFeatures) -> list[float]:
    counts = [c for c in features.class_counts if c > 0] or [1]
    return [math.log1p(features.images), math.log(max(features.classes, 1)), math.log(features.height * features.width),
            float(features.channels), math.log(max(counts) / min(counts)), features.pixel_mean / PIXEL_SCALE,
            features.pixel_std / PIXEL_SCALE]


def distances(query: DatasetFeatures, candidates: list[DatasetFeatures]) -> list[float]:
    """Distance of each candidate to `query` (see the module docstring)."""
    found = []
    reference = np.array(scalar_features(query))
    embedding = np.array(query.embedding)
    for candidate in candidates:
        scalars = np.array(scalar_features(candidate)) - reference
        other = np.array(candidate.embedding)
        rms = float(np.sqrt(np.mean((other - embedding) ** 2))) if len(other) == len(embedding) and len(other) else 0.0
        found.append(float(np.sqrt(np.sum(scalars**2) + (rms / PIXEL_SCALE) ** 2)))
    return found


def record_utility(row: dict[str, Any]) -> float | None:
    """How good a record's config was: CAS on val from a tuning trial, else the monitor's val 1-NN CAS, times the
    share of classes the last monitor reading did not find collapsed (records written before it was kept count whole)."""
    if row.get("pruned"):
        return None
    collapsed = row.get("collapsed_classes")
    for name in ("cas_val", "val_nn_cas"):
        value = row.get(name)
        if isinstance(value, float) and math.isfinite(value):
            if isinstance(collapsed, float) and math.isfinite(collapsed):
                return penalised_utility(value, collapsed, int(row["classes"]))
            return value
    return None


def nearest_datasets(query: DatasetFeatures, rows: list[dict[str, Any]], k: int, per_dataset: int) -> list[Neighbour]:
    """The `k` past datasets nearest `query` that have a finished record, each with its best `per_dataset` configs.

    Records of tuning trials (with `cas_val`) rank before plain trainings of the same dataset, whose
    1-NN CAS is on another scale; within a kind the higher utility wins, ties go to the later record.
    """
    by_dataset: dict[str, list[tuple[tuple[int, float, int], dict[str, Any]]]] = {}
    features: dict[str, DatasetFeatures] = {}
    for order, row in enumerate(rows):
        utility = record_utility(row)
        if utility is None:
            continue
        kind = 1 if isinstance(row.get("cas_val"), float) and math.isfinite(row["cas_val"]) else 0
        by_dataset.setdefault(row["dataset_hash"], []).append(((kind, utility, order), row))
        features[row["dataset_hash"]] = DatasetFeatures.from_row(row)
    hashes = sorted(by_dataset)
    found = distances(query, [features[h] for h in hashes])
    ranked = sorted(zip(found, hashes), key=lambda pair: (pair[0], pair[1]))[:k]
    neighbours = []
    for distance, dataset_hash in ranked:
        best = sorted(by_dataset[dataset_hash], key=lambda item: item[0], reverse=True)
        configs: list[GanConfig] = []
        utilities: list[float] = []
        seen: set[str] = set()
        for (_, utility, _), row in best:
            if row["config_hash"] in seen:
                continue
            try:
                config = GanConfig.model_validate(json.loads(row["gan_config"]))
            except (ValidationError, ValueError):  # written by a ganaug whose GanConfig had other options
                continue
            seen.add(row["config_hash"])
            configs.append(config)
            utilities.append(utility)
            if len(configs) == per_dataset:
                break
        neighbours.append(Neighbour(features[dataset_hash], distance, tuple(configs), tuple(utilities)))
    return neighbours


def warm_order(neighbours: list[Neighbour]) -> list[tuple[Neighbour, GanConfig]]:
    """The neighbours' configs in the order they are enqueued: every dataset's best (nearest dataset first), then
    every dataset's second best, and so on. A dataset's runner-up transfers worse than another dataset's best: on
    Fashion-MNIST the nearest dataset's (MNIST 100/class) second config was pruned in 9 of 9 held-out studies, the
    second dataset's (digits) best finished in 8 of 9 (docs/benchmarks/meta.md, rounds 3-5)."""
    depth = max((len(n.configs) for n in neighbours), default=0)
    return [(n, n.configs[rank]) for rank in range(depth) for n in neighbours if rank < len(n.configs)]
