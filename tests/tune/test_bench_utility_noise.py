"""bench/utility_noise.py: the same config's trial rescored in several studies; the study's own seed reproduces it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tunehelpers import TINY_GAN, bench_script, make_dataset

from ganaug.tune.config import TuneConfig
from ganaug.tune.study import tune_gan

TINY = {"min_steps": 2, "max_steps": 8, "reduction_factor": 2, "synthetic_per_class": 8, "classifier_steps": 20,
        "base": TINY_GAN, "pruner": "none"}


@pytest.fixture()
def noise():
    with bench_script("utility_noise") as module:
        yield module


def test_rescoring_reproduces_each_studys_utility_and_splits_the_spread(tmp_path: Path, noise, capsys) -> None:
    past = make_dataset(tmp_path / "past.parquet", seed=1)
    tune_gan(past, TuneConfig.model_validate({**TINY, "n_trials": 1, "history": str(tmp_path / "history.parquet")}), tmp_path / "past")
    new = make_dataset(tmp_path / "new.parquet", seed=3)
    studies = []
    for seed in (0, 1):  # warm studies from the same frozen history: trial 0 is the same learned-schedule config
        frozen = tmp_path / f"history{seed}.parquet"
        shutil.copy(tmp_path / "history.parquet", frozen)
        tune_gan(new, TuneConfig.model_validate({**TINY, "n_trials": 1, "seed": seed, "history": str(frozen)}), tmp_path / f"warm{seed}")
        studies.append(str(tmp_path / f"warm{seed}"))
    found = noise.main([*studies, "--dataset", str(new.file), "--repeats", "3", "--out", str(tmp_path / "noise.json")])
    assert [len(r["repeats"]) for r in found["rows"]] == [3, 3]
    assert found["summary"]["reproduced_all"], found["rows"]  # seed, samples and EMA as the study scored them
    assert found["summary"]["sd_within"] >= 0 and (tmp_path / "noise.json").is_file()
    cold = tmp_path / "cold"
    tune_gan(new, TuneConfig.model_validate({**TINY, "n_trials": 1, "warm_start": False, "history": None}), cold)
    with pytest.raises(SystemExit, match="another config"):
        noise.main([studies[0], str(cold), "--dataset", str(new.file)])
    with pytest.raises(SystemExit):
        noise.main([*studies, "--dataset", str(new.file), "--repeats", "1"])
    assert "must be at least 2" in capsys.readouterr().err
