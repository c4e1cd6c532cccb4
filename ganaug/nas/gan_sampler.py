"""A GAN over genomes as an Optuna sampler: a generator learns to propose genomes like the best found so far.

The genome is one-hot encoded gene by gene. A small generator maps noise to a categorical
distribution over every gene (one softmax head per gene); a small discriminator separates the
`top_k` best finished trials (the real genomes) from generated ones. The generator is trained
through straight-through Gumbel-softmax samples, so the discriminator always sees one-hot genomes.

Proposals are a pure function of the seed and the study's stored trials: the networks are
retrained from scratch every `retrain_every` finished trials, from weights and batches drawn from
generators seeded with `(seed, trials the round saw)`, on the best of those trials; a proposal's
noise comes from `(seed, trial number)`. A resumed study therefore rebuilds the same networks from
its stored trials and proposes what the uninterrupted one would have. No global random state is
read or changed, and training runs on the CPU with one thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from optuna.study import Study
from optuna.trial import FrozenTrial
from torch import nn
from torch.nn import functional as F

from ganaug.classifier.train import cpu_threads
from ganaug.nas.proposals import ProposingSampler, rank_trials
from ganaug.nas.space import Genome, SearchSpace

NOISE_DIM = 16
HIDDEN = 64
BATCH = 32
LEARNING_RATE = 0.01
PROPOSAL_TRIES = 20  # draws per proposal before accepting a genome that was already tried


def _torch_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of non-negative ints."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def _mlp(sizes: Sequence[int], rng: torch.Generator) -> nn.Sequential:
    """Linear layers with LeakyReLU between, initialised from `rng` (nn.Linear's own init would use the global RNG)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = torch.nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        bound = 1.0 / fan_in**0.5
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=rng)
            linear.bias.uniform_(-bound, bound, generator=rng)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class GenomeCoding:
    """One-hot coding of a space's genome, padded so every gene has `depth` columns.

    A batch of genomes is a (N, genes, depth) tensor; gene g's choices take columns 0..sizes[g]-1
    and the padding columns are always zero (their logits are masked to -inf).
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, space: SearchSpace) -> GenomeCoding:
        return cls(tuple(space.choices), tuple(len(v) for v in space.choices.values()))

    @property
    def depth(self) -> int:
        return max(self.sizes)

    @property
    def width(self) -> int:
        return len(self.sizes) * self.depth

    def mask(self) -> torch.Tensor:
        """(genes, depth): 0 where a choice exists, -inf on the padding."""
        columns = torch.arange(self.depth)[None, :]
        return torch.where(columns < torch.tensor(self.sizes)[:, None], 0.0, float("-inf"))

    def encode(self, genomes: Sequence[Genome], space: SearchSpace) -> torch.Tensor:
        """(N, genes, depth) one-hot genomes."""
        picks = torch.tensor([[space.choices[name].index(g[name]) for name in self.names] for g in genomes])
        return F.one_hot(picks, self.depth).float()

    def decode(self, one_hot: torch.Tensor, space: SearchSpace) -> Genome:
        """The genome of one (genes, depth) one-hot row."""
        return {name: space.choices[name][int(i)] for name, i in zip(self.names, one_hot.argmax(dim=1))}


def straight_through_sample(logits: torch.Tensor, mask: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Gumbel-softmax per gene: one-hot (N, genes, depth) forward, the softmax's gradient backward."""
    uniform = torch.rand(logits.shape, generator=rng).clamp_(1e-9, 1.0 - 1e-9)
    perturbed = logits + mask - torch.log(-torch.log(uniform))
    soft = F.softmax(perturbed, dim=2)
    hard = F.one_hot(perturbed.argmax(dim=2), logits.shape[2]).to(soft.dtype)
    return hard + soft - soft.detach()


def train_gan(real: torch.Tensor, coding: GenomeCoding, steps: int, rng: torch.Generator) -> nn.Sequential:
    """The generator (noise -> (N, genes, depth) logits) after `steps` rounds of d_step / g_step against the
    real one-hot genomes (K, genes, depth)."""
    generator = nn.Sequential(_mlp([NOISE_DIM, HIDDEN, coding.width], rng), nn.Unflatten(1, (len(coding.sizes), coding.depth)))
    discriminator = nn.Sequential(nn.Flatten(), _mlp([coding.width, HIDDEN, 1], rng))
    mask = coding.mask()
    g_opt = torch.optim.Adam(generator.parameters(), lr=LEARNING_RATE, betas=(0.5, 0.9), foreach=True)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=LEARNING_RATE, betas=(0.5, 0.9), foreach=True)
    ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
    for _ in range(steps):
        # d_step: best genomes against generated ones
        picks = torch.randint(len(real), (BATCH,), generator=rng)
        fake = straight_through_sample(generator(torch.randn(BATCH, NOISE_DIM, generator=rng)), mask, rng)
        d_loss = (F.binary_cross_entropy_with_logits(discriminator(real[picks]), ones)
                  + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        # g_step: non-saturating loss through the straight-through samples
        fake = straight_through_sample(generator(torch.randn(BATCH, NOISE_DIM, generator=rng)), mask, rng)
        g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
    return generator.eval()


class GanSampler(ProposingSampler):
    """Genomes proposed by a GAN trained on the best trials so far (see the module's docstring).

    The first `start_size` trials are random, drawn by `ResumableRandomSampler(seed)`: the very
    draws random search and the other strategies' random starts make with the same seed.
    `lineage` maps a trial number to (retraining round, trial numbers the discriminator took as
    real); the random start is round 0 with no parents.
    """

    def __init__(self, space: SearchSpace, start_size: int = 6, top_k: int = 5, retrain_every: int = 4,
                 steps: int = 30, seed: int = 0) -> None:
        super().__init__(space, seed)
        self.start_size = start_size
        self.top_k = top_k
        self.retrain_every = retrain_every
        self.steps = steps
        self.coding = GenomeCoding.of(space)
        self.mask = self.coding.mask()
        self._trained: dict[tuple[int, tuple[int, ...]], nn.Sequential] = {}

    def propose(self, study: Study, number: int) -> tuple[Genome, int, list[int]] | None:
        """Trial `number`'s genome, its retraining round and the elite trials; None during the random start."""
        genes = set(self.space.choices)
        done = self.finished(study)
        if len(done) < self.start_size:
            return None
        seen = self.start_size + (len(done) - self.start_size) // self.retrain_every * self.retrain_every
        elite = rank_trials(done[:seen], study.directions)[: self.top_k]
        generator = self._generator(seen, elite)
        tried = {self._key(t.params) for t in study.get_trials(deepcopy=False) if genes <= set(t.params)}
        rng = _torch_generator(self.seed, number)
        with cpu_threads(1), torch.no_grad():
            for _ in range(PROPOSAL_TRIES):
                logits = generator(torch.randn(1, NOISE_DIM, generator=rng))  # (1, genes, depth)
                genome = self.coding.decode(straight_through_sample(logits, self.mask, rng)[0], self.space)
                if self._key(genome) not in tried:
                    break
        generation = 1 + (seen - self.start_size) // self.retrain_every
        return genome, generation, sorted(t.number for t in elite)

    def _generator(self, seen: int, elite: Sequence[FrozenTrial]) -> nn.Sequential:
        key = (seen, tuple(t.number for t in elite))
        if key not in self._trained:
            real = self.coding.encode([t.params for t in elite], self.space)
            with cpu_threads(1), torch.enable_grad():
                self._trained = {key: train_gan(real, self.coding, self.steps, _torch_generator(self.seed, seen))}
        return self._trained[key]

    def _key(self, genome: Genome) -> tuple[str, float]:
        """What a trial evaluates: genomes differing only in inactive blocks are the same candidate."""
        return self.space.decode(genome).to_json(), self.space.augment_strength(genome)
