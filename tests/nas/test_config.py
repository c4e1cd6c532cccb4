"""Bad search configs raise `ConfigError` naming the option, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from nas_helpers import tiny_config, tiny_data  # noqa: F401  (fixture)

from ganaug.configbase import load_config
from ganaug.errors import ConfigError
from ganaug.nas.config import SearchConfig
from ganaug.nas.stage import search


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"space": {"channels": []}}, "space.channels"),
        ({"space": {"kernels": []}}, "space.kernels"),
        ({"space": {"min_blocks": 3, "max_blocks": 2}}, "min_blocks"),
        ({"space": {"channels": [8, 8]}}, "channels lists a value twice"),
        ({"space": {"channels": [2]}}, "channels must lie in 4..512"),
        ({"steps": 0}, "steps"),
        ({"strategy": "hillclimb"}, "strategy"),
        ({"gan_top_k": 0}, "gan_top_k"),
        ({"gan_steps": 0}, "gan_steps"),
        ({"space": "huge"}, "space preset must be one of default, wide"),
        ({"space": {"preset": "wide", "kernels": [9]}}, "space.kernels"),
        ({"mode": "proxy"}, "needs correlation_sample"),
        ({"objectives": ["params"], "pruner": "median"}, "pruner"),
        ({"tournament_size": 9, "population_size": 4}, "tournament_size"),
        ({"n_trails": 5}, "n_trails: unknown option"),
    ],
)
def test_bad_config_raises_config_error(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(SearchConfig, overrides=overrides)


def test_bad_config_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "search.yaml"
    path.write_text("n_trials: 0\n")
    with pytest.raises(ConfigError, match=r"search\.yaml.*n_trials"):
        load_config(SearchConfig, path)


def test_search_revalidates_and_writes_nothing(tmp_path: Path, tiny_data) -> None:
    dataset, synthetic = tiny_data
    bad = tiny_config(storage="journal")
    bad.__dict__["n_trials"] = 0  # bypasses validation, as a hand-built object might
    with pytest.raises(ConfigError, match="n_trials"):
        search(dataset, synthetic, bad, tmp_path)
    empty = tiny_config(storage="journal")
    empty.space.__dict__["channels"] = []  # bypasses validation, as a hand-built object might
    with pytest.raises(ConfigError, match="channels"):
        search(dataset, synthetic, empty, tmp_path)
    assert not (tmp_path / "nas").exists()


def test_augmented_search_without_synthetic_data_is_a_config_error(tmp_path: Path, tiny_data) -> None:
    dataset, _ = tiny_data
    with pytest.raises(ConfigError, match="train_data='augmented' needs synthetic data"):
        search(dataset, None, tiny_config(), tmp_path)
    assert not (tmp_path / "nas").exists()


def test_proxy_subset_larger_than_a_class_is_a_config_error(tmp_path: Path, tiny_data) -> None:
    dataset, synthetic = tiny_data
    cfg = tiny_config(mode="proxy", correlation_sample=3, proxy_per_class=50, storage="journal")
    with pytest.raises(ConfigError, match="proxy_per_class=50"):
        search(dataset, synthetic, cfg, tmp_path)
    assert not (tmp_path / "nas").exists()


def test_search_follows_the_evaluations_choice_of_data() -> None:
    from ganaug.nas.config import SearchConfig

    base = SearchConfig()
    assert base.following("weighted", 0.5, helped=True).model_dump(include={"train_data", "synthetic_ratio"}) == {
        "train_data": "augmented", "synthetic_ratio": 0.5}
    assert base.following("balanced", None, helped=True).train_data == "balanced"
    assert base.following("balanced_classic", None, helped=True).train_data == "balanced"
    assert base.following("augmented", 1.0, helped=False).train_data == "real"  # nothing helped: real data
    fixed = SearchConfig(follow_evaluation=False, train_data="augmented")
    assert fixed.following("balanced", None, helped=True) == fixed


def test_balanced_and_ratio_training_sets_for_trials(tiny_data) -> None:
    from ganaug.nas.config import SearchConfig
    from ganaug.nas.data import load_search_data

    dataset, synthetic = tiny_data
    data = load_search_data(dataset, synthetic, SearchConfig())
    real_counts = data.real_train[1].bincount(minlength=10)
    half = data.full(SearchConfig(synthetic_ratio=0.5)).train_y.bincount(minlength=10)
    assert (half == real_counts + (real_counts.double() * 0.5).round().long()).all()
    balanced = data.full(SearchConfig(train_data="balanced")).train_y.bincount(minlength=10)
    assert (balanced == real_counts.max()).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"proxy": "auto"}, "proxy 'auto' needs correlation_sample"),
        ({"proxy": "jacob"}, "proxy"),
        ({"proxy_min_speedup": 0.5}, "proxy_min_speedup"),
        ({"space": {"augment_strengths": [0.0, 5.0]}}, "augment_strengths must lie in 0..3"),
        ({"space": {"residual": [True, True]}}, "residual lists a value twice"),
        ({"proxy_selection": "confident", "proxy_source": "real"}, "proxy_selection 'confident' ranks synthetic images"),
    ],
)
def test_bad_proxy_and_space_options(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(SearchConfig, overrides=overrides)


def test_default_space_is_unchanged_and_wide_is_a_named_preset() -> None:
    default = {"min_blocks": 1, "max_blocks": 3, "channels": [8, 16, 32, 64], "kernels": [3, 5],
               "pools": ["max", "avg", "none"], "norms": ["batch", "none"], "activations": ["relu", "silu"],
               "residual": [False, True], "dropouts": [0.0, 0.25, 0.5], "head_widths": [0, 64, 128],
               "head_inputs": ["flatten"], "augment_strengths": [0.0, 0.5, 1.0]}
    assert SearchConfig().space.model_dump() == default
    assert load_config(SearchConfig, overrides={"space": "default"}).space.model_dump() == default
    wide = load_config(SearchConfig, overrides={"space": "wide"}).space
    assert wide.max_blocks == 6 and wide.kernels == [1, 3, 5, 7] and min(wide.channels) == 8 and max(wide.channels) == 128
    assert "preset" not in wide.model_dump()  # the stored config holds the lists the preset stands for
    tweaked = load_config(SearchConfig, overrides={"space": {"preset": "wide", "max_blocks": 4}}).space
    assert tweaked.max_blocks == 4 and tweaked.kernels == wide.kernels
