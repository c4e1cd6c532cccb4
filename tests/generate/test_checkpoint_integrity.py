"""Checkpoints are verified against the content id stored in them whenever they are loaded.

A bit flip in best.pt never changes the sampled images silently: the file fails verification and the
newest verifiable checkpoint is sampled instead (with a warning), or, with none left, a
`CheckpointError` names the file.
"""

from __future__ import annotations

import logging
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from genhelpers import tiny_gan_config, write_bar_dataset

from ganaug.errors import CheckpointError
from ganaug.gan import GanResult, load_generator, train_gan
from ganaug.gan.checkpoint import CONTENT_ID, DamagedCheckpointError, content_hash, read_checkpoint
from ganaug.generate import GenerateConfig, checkpoint_choice, generate, generate_from_checkpoint
from ganaug.store import SYNTHETIC_SCHEMA, DatasetRef, read_dataset

CFG = GenerateConfig(mode="per_class", per_class=2, device="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetRef, GanResult]:
    root = tmp_path_factory.mktemp("verified")
    with torch.random.fork_rng(devices=[]):
        dataset = write_bar_dataset(root / "dataset.parquet", train_counts=[8, 8, 8])
        return dataset, train_gan(dataset, tiny_gan_config(monitor_every=None, checkpoint_every=5), root / "run")


def _flip(path: Path, position: int, bit: int) -> bytes:
    """Flip one bit of `path` in place; returns the intact bytes."""
    intact = path.read_bytes()
    flipped = bytearray(intact)
    flipped[position] ^= 1 << bit
    path.write_bytes(bytes(flipped))
    return intact


def _damage(path: Path) -> bytes:
    """Flip a bit in the middle of the largest tensor stored in `path` (a zip archive); returns the intact bytes."""
    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    with open(path, "rb") as handle:
        handle.seek(entry.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
    start = entry.header_offset + 30 + name_length + extra_length
    return _flip(path, start + entry.file_size // 2, 2)


def test_a_checkpoint_stores_its_content_id_and_reads_back_without_it(trained: tuple[DatasetRef, GanResult]) -> None:
    _, gan = trained
    raw = torch.load(gan.best_checkpoint_path, map_location="cpu", weights_only=True)
    assert raw[CONTENT_ID] == gan.best_checkpoint_id
    payload = read_checkpoint(gan.best_checkpoint_path)
    assert CONTENT_ID not in payload and content_hash(payload) == gan.best_checkpoint_id  # the id run.json records


def test_bit_flips_in_best_pt_never_change_the_sampled_images_silently(
    trained: tuple[DatasetRef, GanResult], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset, gan = trained
    best = Path(gan.best_checkpoint_path)
    intact_images = read_dataset(generate(gan, dataset, CFG, tmp_path / "intact"), SYNTHETIC_SCHEMA).images
    size = best.stat().st_size
    outcomes = []
    for index, position in enumerate(np.linspace(0, size - 1, 20).astype(int)):
        intact = _flip(best, int(position), index % 8)
        try:
            with caplog.at_level(logging.WARNING, logger="ganaug.gan.checkpoint"):
                caplog.clear()
                ref = generate(gan, dataset, CFG, tmp_path / f"flip{index}")
        finally:
            best.write_bytes(intact)
        choice = checkpoint_choice(ref)
        if choice["file"] == "best.pt":  # a flip that leaves the content as it was (zip padding, a spare header)
            assert choice["checkpoint_id"] == gan.best_checkpoint_id
            assert np.array_equal(read_dataset(ref, SYNTHETIC_SCHEMA).images, intact_images)
            outcomes.append("unchanged")
        else:
            assert (choice["file"], choice["checkpoint_id"]) == ("last.pt", gan.checkpoint_id)
            assert choice["fallback_from"] == "best.pt" and "falling back to the newest valid checkpoint" in caplog.text
            assert str(best) in caplog.text
            outcomes.append("fell back")
    assert outcomes.count("fell back") >= 15, outcomes  # the weights fill most of the file


def test_a_flip_in_the_weights_fails_verification_naming_the_file(trained: tuple[DatasetRef, GanResult],
                                                                  tmp_path: Path) -> None:
    _, gan = trained
    copy = tmp_path / "copy.pt"
    copy.write_bytes(Path(gan.best_checkpoint_path).read_bytes())
    _damage(copy)
    with pytest.raises(DamagedCheckpointError, match=f"checkpoint {copy} "):
        load_generator(copy, device="cpu")
    with pytest.raises(DamagedCheckpointError, match=f"checkpoint {copy} "):
        load_generator(copy, device="cpu", fallback=True)  # a file that is not a training's best.pt/last.pt: no stand-in


def test_with_nothing_verifiable_left_the_error_names_best_pt_and_nothing_is_written(
    trained: tuple[DatasetRef, GanResult], tmp_path: Path
) -> None:
    dataset, gan = trained
    folder = Path(gan.best_checkpoint_path).parent
    saved = {path: path.read_bytes() for path in folder.glob("*.pt")}
    out = tmp_path / "out"
    try:
        for path in saved:
            _damage(path)
        with pytest.raises(CheckpointError, match=f"checkpoint {folder / 'best.pt'} .*no readable last.pt or periodic"):
            generate_from_checkpoint(Path(gan.checkpoint_path), dataset, CFG, out)
        assert not out.exists()
    finally:
        for path, data in saved.items():
            path.write_bytes(data)


def test_a_damaged_best_pt_falls_back_past_a_damaged_last_pt_to_the_newest_periodic_one(
    trained: tuple[DatasetRef, GanResult], tmp_path: Path
) -> None:
    dataset, gan = trained
    folder = Path(gan.best_checkpoint_path).parent
    saved = {name: (folder / name).read_bytes() for name in ("best.pt", "last.pt")}
    try:
        for name in saved:
            _damage(folder / name)
        choice = checkpoint_choice(generate(gan, dataset, CFG, tmp_path / "out"))
    finally:
        for name, data in saved.items():
            (folder / name).write_bytes(data)
    assert (choice["file"], choice["step"]) == ("step_0000010.pt", 10)
    assert choice["checkpoint_id"] == content_hash(read_checkpoint(folder / "step_0000010.pt"))
