"""Tensors a search trains on: full-fidelity, proxy (small class-balanced subset) and the final protocols."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganaug.data.tensors import load_tensors
from ganaug.errors import ConfigError, DataError
from ganaug.nas.config import SearchConfig
from ganaug.nas.evaluator import TrialData
from ganaug.store import SYNTHETIC_SCHEMA, DatasetRef, LoadedDataset, SyntheticRef, read_dataset

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SearchData:
    """Real train/val/test and synthetic train tensors of one dataset."""

    real_train: Pair
    val: Pair
    test: Pair
    synthetic: Pair | None
    num_classes: int
    height: int
    width: int
    hashes: tuple[str, ...]
    synthetic_quality: torch.Tensor | None = None  # (N_synthetic,) quality_score per synthetic image, NaN = none

    def trial_data(self, train: Pair) -> TrialData:
        return TrialData(train[0], train[1], self.val[0], self.val[1], self.num_classes)

    def augmented(self, per_class: np.ndarray | None = None, seed: int = 0) -> Pair:
        """Real train images plus synthetic ones: `per_class` of each class (seeded draw), or all of them."""
        if self.synthetic is None:
            return self.real_train
        x, y = self.synthetic
        if per_class is not None:
            order = torch.from_numpy(np.random.default_rng([seed, 31]).permutation(len(y)))
            index = torch.cat([order[y[order] == label][: int(count)] for label, count in enumerate(per_class)])
            x, y = x[index], y[index]
        return torch.cat([self.real_train[0], x]), torch.cat([self.real_train[1], y])

    def full(self, cfg: SearchConfig) -> TrialData:
        """Full fidelity: the real training split, with synthetic images as `train_data` says."""
        if cfg.train_data == "real":
            return self.trial_data(self.real_train)
        counts = np.bincount(self.real_train[1].numpy(), minlength=self.num_classes)
        if cfg.train_data == "balanced":
            return self.trial_data(self.augmented((counts.max() - counts) * (counts > 0), cfg.seed))
        if cfg.synthetic_ratio is None:
            return self.trial_data(self.augmented())
        return self.trial_data(self.augmented(np.round(counts * cfg.synthetic_ratio).astype(np.int64), cfg.seed))

    def _by_quality(self, order: torch.Tensor) -> torch.Tensor:
        """`order` re-sorted by quality_score, highest first (ties keep the seeded order)."""
        quality = self.synthetic_quality
        if quality is None or bool(torch.isnan(quality).all()):
            raise DataError("proxy_selection='confident' needs synthetic.parquet's quality_score, but it holds no scores; "
                            "generate with rank_by or min_confidence, or use proxy_selection='random'")
        scores = torch.nan_to_num(quality[order], nan=float("-inf"))
        return order[torch.sort(scores, descending=True, stable=True).indices]

    def proxy(self, cfg: SearchConfig) -> TrialData:
        """Proxy fidelity: `proxy_per_class` images per class drawn (seeded) from `proxy_source`."""
        pool = {"synthetic": self.synthetic, "real": self.real_train, "augmented": self.augmented()}[cfg.proxy_source]
        if pool is None:
            raise ConfigError(f"proxy_source='{cfg.proxy_source}' needs synthetic data, but none was given")
        x, y = pool
        order = torch.from_numpy(np.random.default_rng(cfg.seed).permutation(len(y)))
        if cfg.proxy_selection == "confident":
            order = self._by_quality(order)
        picks = []
        for label in range(self.num_classes):
            members = order[y[order] == label]
            if len(members) < cfg.proxy_per_class:
                raise ConfigError(
                    f"proxy_per_class={cfg.proxy_per_class} but the {cfg.proxy_source} training data has only "
                    f"{len(members)} images of class {label}; lower proxy_per_class"
                )
            picks.append(members[: cfg.proxy_per_class])
        index = torch.cat(picks)
        return self.trial_data((x[index], y[index]))


def needs_synthetic(cfg: SearchConfig) -> str | None:
    """The option that needs synthetic data, if any."""
    if cfg.train_data in ("augmented", "balanced"):
        return f"train_data='{cfg.train_data}'"
    uses_proxy = cfg.mode != "full" or cfg.correlation_sample is not None
    if uses_proxy and cfg.proxy_source in ("synthetic", "augmented"):
        return f"proxy_source='{cfg.proxy_source}'"
    return None


def _check_synthetic(real: LoadedDataset, synthetic: LoadedDataset) -> None:
    a, b = real.meta, synthetic.meta
    if (a.channels, a.height, a.width) != (b.channels, b.height, b.width) or a.num_classes != b.num_classes:
        raise DataError(
            f"{synthetic.path}: images are {b.channels}x{b.height}x{b.width} with {b.num_classes} classes but "
            f"{real.path} has {a.channels}x{a.height}x{a.width} with {a.num_classes}"
        )


def load_search_data(dataset: DatasetRef, synthetic: SyntheticRef | None, cfg: SearchConfig) -> SearchData:
    """Read the dataset (train/val/test, real rows) and the synthetic training rows the config needs."""
    needed = needs_synthetic(cfg)
    if needed and synthetic is None:
        raise ConfigError(f"{needed} needs synthetic data (synthetic.parquet), but none was given; "
                          "generate it first or choose real data for that option")
    real = read_dataset(dataset)
    splits = {split: load_tensors(real, split, source="real") for split in ("train", "val", "test")}
    for split, (x, _) in splits.items():
        if len(x) == 0:
            raise DataError(f"{real.path}: the '{split}' split has no real rows; architecture search needs train, val and test")
    synthetic_pair, synthetic_quality, hashes = None, None, [real.content_hash]
    if synthetic is not None:
        loaded = read_dataset(synthetic, expected_schema=SYNTHETIC_SCHEMA)
        _check_synthetic(real, loaded)
        synthetic_pair = load_tensors(loaded, "train", source="synthetic")
        quality = loaded.extra_columns.get("quality_score")
        if quality is not None:
            synthetic_quality = torch.from_numpy(quality[loaded.select("train", "synthetic")].astype(np.float32))
        if len(synthetic_pair[0]) == 0:
            raise DataError(f"{loaded.path}: no rows with split='train' and source='synthetic'")
        hashes.append(loaded.content_hash)
    return SearchData(splits["train"], splits["val"], splits["test"], synthetic_pair, real.meta.num_classes,
                      real.meta.height, real.meta.width, tuple(hashes), synthetic_quality)
