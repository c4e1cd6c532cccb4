"""Evaluation runs trained as stacked ensembles (`EvaluateConfig.stack`): which runs may share a stack, and
the rows of such a group.

A run can join a stack when its protocol trains one classifier (`strategies.ONE_FIT`); runs of one regime
(train fraction) share the step budget, and the weighted protocol's loss differs from the others', so those
two things group them. Within a group, runs whose training sets also agree on batch size and image shape
(`ganaug.classifier.stacked.stack_signature`) train as one stack; the rest train one by one. Every row is
the row its run alone would give, up to float rounding.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from ganaug.classifier.stacked import stack_signature, train_stacked
from ganaug.classifier.train import cpu_threads
from ganaug.evaluate.config import EvaluateConfig
from ganaug.evaluate.data import ProtocolData
from ganaug.evaluate.protocols import RunSpec, compose_training_set, protocol_row, real_subset
from ganaug.evaluate.strategies import ONE_FIT, SingleFit, single_fit, train_run, validation_tensors


def stacking_on(choice: str, device: torch.device) -> bool:
    """Whether `EvaluateConfig.stack` stacks runs on `device`: auto stacks on a CUDA GPU only (on CPU, measured,
    one grouped convolution is slower than the runs side by side on threads)."""
    return choice == "on" or (choice == "auto" and device.type == "cuda")


def stack_units(specs: Sequence[RunSpec], cfg: EvaluateConfig, device: torch.device) -> list[list[int]]:
    """The runs (indices into `specs`) of each unit of work, in order of their first run: with stacking on, the
    runs that may share a stack form one unit per (regime, loss kind), every other run is a unit of its own."""
    if not stacking_on(cfg.stack, device):
        return [[i] for i in range(len(specs))]
    units: list[list[int]] = []
    groups: dict[Hashable, list[int]] = {}
    for i, spec in enumerate(specs):
        if spec.protocol not in ONE_FIT:  # soft's runs with synthetic images train two classifiers: alone
            units.append([i])
            continue
        key = (spec.train_fraction, spec.protocol == "weighted")
        if key not in groups:
            groups[key] = []
            units.append(groups[key])
        groups[key].append(i)
    return units


def run_stack(specs: Sequence[RunSpec], data: ProtocolData, cfg: EvaluateConfig) -> list[dict[str, Any]]:
    """The rows of `specs` in order: runs whose training agrees on `stack_signature` train as one stack, others alone.

    A stacked run's `seconds` is its share of its stack's training time plus its own scoring.
    """
    with cpu_threads(1):  # as run_protocol: one torch thread per unit of work
        trainings = [compose_training_set(spec, data, cfg) for spec in specs]
        real_counts = [len(real_subset(data, spec.train_fraction, spec.seed)) for spec in specs]
        singles = [single_fit(spec, training, cfg, count) for spec, training, count in zip(specs, trainings, real_counts, strict=True)]
        stacks: dict[Hashable, list[tuple[int, SingleFit]]] = {}
        alone = []
        for i, single in enumerate(singles):
            if single is None:
                alone.append(i)
            else:
                stacks.setdefault(stack_signature(single.run, single.train_cfg), []).append((i, single))
        alone += [members[0][0] for members in stacks.values() if len(members) == 1]
        rows: list[dict[str, Any]] = [{} for _ in specs]
        for i in alone:
            started = time.perf_counter()
            rows[i] = protocol_row(specs[i], data, trainings[i], train_run(specs[i], trainings[i], data, cfg, real_counts[i]), started)
        val = validation_tensors(data)
        for members in (members for members in stacks.values() if len(members) > 1):
            trained = train_stacked(cfg.arch, [single.run for _, single in members], val, data.num_classes,
                                    members[0][1].train_cfg)
            for (i, single), classifier in zip(members, trained, strict=True):
                rows[i] = protocol_row(specs[i], data, trainings[i], (classifier, single.synthetic),
                                       time.perf_counter() - classifier.seconds)
    return rows
