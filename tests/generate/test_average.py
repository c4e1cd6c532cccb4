"""generate with `average`: the weight average or ensemble of a training's newest kept checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from genhelpers import tiny_gan_config, write_bar_dataset
from pydantic import ValidationError

from ganaug.data.tensors import tensor_to_images
from ganaug.errors import CheckpointError, ConfigError, DataError
from ganaug.gan import GanResult, load_generator, sample, train_gan
from ganaug.gan.averaging import EnsembleGenerator, combined_generator, ensemble_generators
from ganaug.gan.checkpoint import read_checkpoint, write_payload
from ganaug.generate import GenerateConfig, _class_seed, checkpoint_choice, generate, generate_from_checkpoint
from ganaug.runner import check_synthetic_fresh, run_generate
from ganaug.runs import RunFolder
from ganaug.store import SYNTHETIC_SCHEMA, DatasetRef, read_dataset

PER_CLASS = 6


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory) -> tuple[DatasetRef, GanResult, Path]:
    """A 10-step GAN keeping step_6, step_8 and step_10 (checkpoint_every=2, keep_checkpoints=3)."""
    root: Path = tmp_path_factory.mktemp("avg")
    with torch.random.fork_rng(devices=[]):
        dataset = write_bar_dataset(root / "dataset.parquet", train_counts=[12, 8, 4])
        gan = train_gan(dataset, tiny_gan_config(checkpoint_every=2, keep_checkpoints=3), root)
    return dataset, gan, Path(gan.checkpoint_path).parent


def _config(**overrides) -> GenerateConfig:
    return GenerateConfig(mode="per_class", per_class=PER_CLASS, device="cpu", **overrides)


def _images_by_class(ref) -> dict[int, np.ndarray]:
    loaded = read_dataset(ref, SYNTHETIC_SCHEMA)
    return {label: loaded.images[loaded.labels == label] for label in range(3)}


def _expected(generator: torch.nn.Module, seed: int = 0) -> dict[int, np.ndarray]:
    """What generate samples from `generator`: PER_CLASS images per class from the class's own noise seed."""
    return {label: tensor_to_images(sample(generator, torch.full((PER_CLASS,), label), _class_seed(seed, label, 0)))
            for label in range(3)}


def test_none_reproduces_sampling_the_chosen_checkpoint_exactly(tmp_path: Path, kept_run) -> None:
    dataset, gan, folder = kept_run
    for choice in ("best", "last"):
        ref = generate(gan, dataset, _config(checkpoint=choice, average_checkpoints=2), tmp_path / choice)
        generator, info = load_generator(folder / f"{choice}.pt", device="cpu")
        got, want = _images_by_class(ref), _expected(generator)
        for label in range(3):
            np.testing.assert_array_equal(got[label], want[label])
        selection = checkpoint_choice(ref)
        assert selection["file"] == f"{choice}.pt" and "checkpoints" not in selection and "average" not in selection
        assert set(read_dataset(ref, SYNTHETIC_SCHEMA).extra_columns["checkpoint_id"]) == {info["checkpoint_id"]}


def _rewrite_with_constant_weights(source: Path, target: Path, value: float) -> None:
    """Copy a checkpoint with every EMA generator parameter set to `value` and its batch-norm statistics spoiled."""
    payload = read_checkpoint(source)
    state = payload["generator_ema"]["module"]
    for name, tensor in state.items():
        if name.endswith("running_mean"):
            tensor.fill_(100.0)
        elif tensor.is_floating_point() and not name.endswith("running_var"):
            tensor.fill_(value)
    write_payload(payload, target)  # a deliberate change: stored with its new content id


def test_weights_average_of_known_weights_is_their_mean_with_fresh_batch_norm_statistics(tmp_path: Path, kept_run) -> None:
    _, _, folder = kept_run
    copy = tmp_path / "checkpoints"
    copy.mkdir()
    for (step, value) in ((6, 0.01), (8, 0.02), (10, 0.06)):
        _rewrite_with_constant_weights(folder / f"step_{step:07d}.pt", copy / f"step_{step:07d}.pt", value)
    averaged, info = combined_generator(copy, "weights", 3, seed=0)
    assert info["averaged_steps"] == [6, 8, 10] and info["step"] == 10 and info["average"] == "weights"
    for name, parameter in averaged.named_parameters():
        assert torch.allclose(parameter, torch.full_like(parameter, 0.03), atol=1e-7), name
    norms = [m for m in averaged.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not torch.allclose(norm.running_mean, torch.full_like(norm.running_mean, 100.0)) for norm in norms)
    two, info_two = combined_generator(copy, "weights", 2, seed=0)  # the newest two: (0.02 + 0.06) / 2
    assert info_two["averaged_steps"] == [8, 10]
    assert all(torch.allclose(p, torch.full_like(p, 0.04), atol=1e-7) for p in two.parameters())


def test_ensemble_draws_image_i_from_generator_i_mod_k(kept_run) -> None:
    _, _, folder = kept_run
    steps = (6, 8, 10)
    ensemble, info = ensemble_generators([folder / f"step_{s:07d}.pt" for s in steps])
    assert isinstance(ensemble, EnsembleGenerator) and info["averaged_steps"] == list(steps)
    members = [load_generator(folder / f"step_{s:07d}.pt", device="cpu")[0] for s in steps]
    labels = torch.arange(3).repeat(3)  # 9 images: 3 per member
    images = sample(ensemble, labels, seed=4)
    noise = torch.randn(9, ensemble.latent_dim, generator=torch.Generator().manual_seed(4))
    for index, member in enumerate(members):
        with torch.no_grad():
            own = member(noise[index::3], labels[index::3]).clamp(-1, 1)
        torch.testing.assert_close(images[index::3], own, rtol=0, atol=1e-6)
        other = members[(index + 1) % 3]
        with torch.no_grad():
            assert not torch.allclose(images[index::3], other(noise[index::3], labels[index::3]).clamp(-1, 1))


def test_generate_with_ensemble_samples_the_members_in_turn_and_records_them(tmp_path: Path, kept_run) -> None:
    dataset, gan, folder = kept_run
    ref = generate(gan, dataset, _config(average="ensemble"), tmp_path / "ens")
    ensemble, info = combined_generator(folder, "ensemble", 3)
    got, want = _images_by_class(ref), _expected(ensemble)
    for label in range(3):
        np.testing.assert_array_equal(got[label], want[label])
    selection = checkpoint_choice(ref)
    assert selection["average"] == "ensemble" and selection["file"] == "step_0000010.pt" and selection["step"] == 10
    assert [m["file"] for m in selection["checkpoints"]] == ["step_0000006.pt", "step_0000008.pt", "step_0000010.pt"]
    assert [m["checkpoint_id"] for m in selection["checkpoints"]] == [
        load_generator(folder / m["file"], device="cpu")[1]["checkpoint_id"] for m in selection["checkpoints"]]
    assert set(read_dataset(ref, SYNTHETIC_SCHEMA).extra_columns["checkpoint_id"]) == {info["checkpoint_id"]}
    assert read_dataset(ref, SYNTHETIC_SCHEMA).meta.extra["generate_config"]["average"] == "ensemble"


def test_averaged_generation_is_deterministic_with_the_seed(tmp_path: Path, kept_run) -> None:
    dataset, gan, _ = kept_run
    for mode in ("weights", "ensemble"):
        first = generate(gan, dataset, _config(average=mode, seed=3), tmp_path / f"{mode}1")
        again = generate(gan, dataset, _config(average=mode, seed=3), tmp_path / f"{mode}2")
        other = generate(gan, dataset, _config(average=mode, seed=4), tmp_path / f"{mode}3")
        assert first.content_hash == again.content_hash
        assert not np.array_equal(read_dataset(first, SYNTHETIC_SCHEMA).images, read_dataset(other, SYNTHETIC_SCHEMA).images)
    weights = read_dataset(generate(gan, dataset, _config(average="weights"), tmp_path / "w"), SYNTHETIC_SCHEMA).images
    ensemble = read_dataset(generate(gan, dataset, _config(average="ensemble"), tmp_path / "e"), SYNTHETIC_SCHEMA).images
    last = read_dataset(generate(gan, dataset, _config(checkpoint="last"), tmp_path / "l"), SYNTHETIC_SCHEMA).images
    assert not np.array_equal(weights, ensemble) and not np.array_equal(weights, last) and not np.array_equal(ensemble, last)


def test_more_checkpoints_than_kept_is_a_clear_error_and_writes_nothing(tmp_path: Path, kept_run) -> None:
    dataset, gan, _ = kept_run
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"average_checkpoints=4 but .*checkpoints keeps only 3 periodic checkpoints "
                                          r"\(step_<n>.pt: step_0000006.pt, step_0000008.pt, step_0000010.pt\)"):
        generate(gan, dataset, _config(average="weights", average_checkpoints=4), out)
    assert not out.exists()


def test_a_training_without_periodic_checkpoints_or_folder_is_a_clear_error(tmp_path: Path, kept_run) -> None:
    dataset, _, _ = kept_run
    with torch.random.fork_rng(devices=[]):
        plain = train_gan(dataset, tiny_gan_config(), tmp_path / "plain")  # checkpoint_every=None: last.pt and best.pt only
    with pytest.raises(ConfigError, match=r"average_checkpoints=3 but .*plain/gan/checkpoints keeps only 0 periodic .*none"):
        generate(plain, dataset, _config(average="ensemble"), tmp_path / "out")
    with pytest.raises(ConfigError, match=r"average_checkpoints=3: the checkpoint folder .*nowhere does not exist"):
        generate_from_checkpoint(tmp_path / "nowhere" / "last.pt", dataset, _config(average="weights"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_member_checkpoint_is_named(tmp_path: Path, kept_run) -> None:
    dataset, _, folder = kept_run
    copy = tmp_path / "checkpoints"
    shutil.copytree(folder, copy)
    member = copy / "step_0000008.pt"
    member.write_bytes(member.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="step_0000008.pt is corrupt"):
        generate_from_checkpoint(copy / "last.pt", dataset, _config(average="weights"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_option_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="average_checkpoints"):
        GenerateConfig(average="weights", average_checkpoints=1)
    with pytest.raises(ValidationError, match="average"):
        GenerateConfig(average="mean")


def test_freshness_checks_every_combined_checkpoint(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "run")
    with torch.random.fork_rng(devices=[]):
        dataset = write_bar_dataset(run.dataset, train_counts=[12, 8, 4])
        train_gan(dataset, tiny_gan_config(checkpoint_every=2, keep_checkpoints=3), run.root)
    ref = run_generate(run, _config(average="weights"), dataset=dataset)
    check_synthetic_fresh(run, dataset, Path(ref.path))
    inputs = run.read_manifest()["stages"]["generate"]["inputs"]
    assert {"checkpoint", "checkpoint_step_0000006", "checkpoint_step_0000008"} <= set(inputs)
    checkpoints = run.root / "gan" / "checkpoints"
    shutil.copy(checkpoints / "step_0000008.pt", checkpoints / "step_0000006.pt")  # an older member replaced
    with pytest.raises(DataError, match="step_0000006.pt is now another one"):
        check_synthetic_fresh(run, dataset, Path(ref.path))


def test_cli_average_options(tmp_path: Path, kept_run) -> None:
    from typer.testing import CliRunner

    from ganaug.cli import app

    dataset, _, _ = kept_run
    run = tmp_path / "run"
    shutil.copytree(Path(dataset.path).parent, run)
    runner = CliRunner(env={"COLUMNS": "200"})
    base = ["generate", "--run-dir", str(run), "--mode", "per_class", "--per-class", "3", "--device", "cpu"]
    result = runner.invoke(app, [*base, "--average", "ensemble", "--average-checkpoints", "2"])
    assert result.exit_code == 0, result.output
    selection = checkpoint_choice(run / "synthetic.parquet")
    assert selection["average"] == "ensemble" and [m["step"] for m in selection["checkpoints"]] == [8, 10]
    (run / "synthetic.parquet").unlink()
    result = runner.invoke(app, [*base, "--average", "weights", "--average-checkpoints", "9"])
    assert result.exit_code == 2 and "average_checkpoints=9 but" in result.output and "Traceback" not in result.output
    assert not (run / "synthetic.parquet").exists()
