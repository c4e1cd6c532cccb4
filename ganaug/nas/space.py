"""The search space: a flat genome of choices that decodes into an `ArchSpec`.

A genome is a plain dict with the same keys for every candidate (`n_blocks`, `b{i}_channels`,
`b{i}_kernel`, `b{i}_pool`, `b{i}_residual` for every possible block, the global choices, and
`augment`: the affine augmentation strength the candidate trains with), so Optuna's samplers,
mutation and crossover all work on one fixed set of parameters. Blocks at index >= `n_blocks` are
inactive. Pooling is budgeted while decoding: once the image has been halved as often as its size
allows (`max_pools`), further pools decode to 'none', so every genome builds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from ganaug.classifier.spec import ArchSpec, ConvBlockSpec, max_pools
from ganaug.errors import ConfigError
from ganaug.nas.config import SpaceConfig

Genome = dict[str, Any]
GLOBAL_GENES = {"norm": "norms", "activation": "activations", "dropout": "dropouts", "head_width": "head_widths",
                "head_input": "head_inputs"}
BLOCK_GENES = {"channels": "channels", "kernel": "kernels", "pool": "pools", "residual": "residual"}
TRAINING_GENES = {"augment": "augment_strengths"}  # how the candidate trains, not part of its ArchSpec


class SearchSpace:
    """Choices from a `SpaceConfig` for images of a given size."""

    def __init__(self, cfg: SpaceConfig, height: int, width: int) -> None:
        self.cfg = cfg
        self.pool_budget = max_pools(height, width)
        self.choices: dict[str, list[Any]] = {"n_blocks": list(range(cfg.min_blocks, cfg.max_blocks + 1))}
        for i in range(cfg.max_blocks):
            for gene, field in BLOCK_GENES.items():
                self.choices[f"b{i}_{gene}"] = list(getattr(cfg, field))
        for gene, field in {**GLOBAL_GENES, **TRAINING_GENES}.items():
            self.choices[gene] = list(getattr(cfg, field))

    def distributions(self) -> dict[str, BaseDistribution]:
        """The genome as Optuna distributions (n_blocks ordinal, the rest categorical)."""
        dists: dict[str, BaseDistribution] = {}
        for name, values in self.choices.items():
            if name == "n_blocks":
                dists[name] = IntDistribution(self.cfg.min_blocks, self.cfg.max_blocks)
            else:
                dists[name] = CategoricalDistribution(values)
        return dists

    def sample(self, rng: np.random.Generator) -> Genome:
        """A uniformly random genome."""
        return {name: values[int(rng.integers(len(values)))] for name, values in self.choices.items()}

    def active_genes(self, genome: Genome) -> list[str]:
        """Genes that influence the decoded architecture (blocks beyond n_blocks do not)."""
        n_blocks = int(genome["n_blocks"])
        return [
            name
            for name in self.choices
            if not (name.startswith("b") and name[1].isdigit() and int(name[1 : name.index("_")]) >= n_blocks)
        ]

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """Copy of `genome` with one active gene changed to a different allowed value."""
        mutable = [name for name in self.active_genes(genome) if len(self.choices[name]) > 1]
        child = dict(genome)
        if not mutable:  # a space of one point has nothing to mutate
            return child
        gene = mutable[int(rng.integers(len(mutable)))]
        others = [v for v in self.choices[gene] if v != genome[gene]]
        child[gene] = others[int(rng.integers(len(others)))]
        return child

    def crossover(self, first: Genome, second: Genome, rng: np.random.Generator) -> Genome:
        """Uniform crossover: each gene comes from either parent with equal chance."""
        return {name: (first if rng.random() < 0.5 else second)[name] for name in self.choices}

    def decode(self, genome: Genome) -> ArchSpec:
        """The `ArchSpec` a genome stands for; pools beyond the image's budget become 'none'."""
        blocks, pools_used = [], 0
        for i in range(int(genome["n_blocks"])):
            pool = genome[f"b{i}_pool"]
            if pool != "none":
                if pools_used >= self.pool_budget:
                    pool = "none"
                else:
                    pools_used += 1
            blocks.append(ConvBlockSpec(channels=int(genome[f"b{i}_channels"]), kernel=int(genome[f"b{i}_kernel"]), pool=pool,
                                        residual=bool(genome[f"b{i}_residual"])))
        return ArchSpec(
            blocks=tuple(blocks),
            norm=genome["norm"],
            activation=genome["activation"],
            dropout=float(genome["dropout"]),
            head_width=int(genome["head_width"]),
            head_input=genome["head_input"],
        )

    def augment_strength(self, genome: Genome) -> float:
        """The affine augmentation strength the candidate trains with (0 = none)."""
        return float(genome["augment"])

    def encode(self, arch: ArchSpec, augment: float = 0.0) -> Genome:
        """The genome of `arch` (inactive block slots copy the first choice); ConfigError when it lies outside the space."""
        genome: Genome = {"n_blocks": len(arch.blocks), "augment": augment}
        for gene in GLOBAL_GENES:
            genome[gene] = getattr(arch, gene)
        for i in range(self.cfg.max_blocks):
            block = arch.blocks[i] if i < len(arch.blocks) else None
            for gene in BLOCK_GENES:
                genome[f"b{i}_{gene}"] = getattr(block, gene) if block is not None else self.choices[f"b{i}_{gene}"][0]
        outside = [f"{name}={genome.get(name)!r}" for name, values in self.choices.items() if genome.get(name) not in values]
        if outside:
            raise ConfigError(f"architecture {arch.to_json()} lies outside the search space: {', '.join(outside)}")
        if self.decode(genome) != arch:
            raise ConfigError(f"architecture {arch.to_json()} pools more often than {self.pool_budget} times")
        return genome
