"""A fixed test set from a separate source: IDX t10k files, a test/ image folder, a split column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ingest_inputs import files_under, tiny_images, write_idx
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.errors import DataError
from ganaug.store import read_dataset


def _idx_pair(folder: Path, stem: str, n_per_class: int, classes: int = 3, size: int = 8, seed: int = 0) -> tuple[Path, Path]:
    images, labels = tiny_images(n_per_class=n_per_class, classes=classes, size=size, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    return write_idx(folder / f"{stem}-images", images), write_idx(folder / f"{stem}-labels", labels)


def test_idx_test_files_form_the_test_split_and_val_comes_from_train(tmp_path: Path) -> None:
    train_images, train_labels = _idx_pair(tmp_path, "train", n_per_class=20)
    test_images, test_labels = _idx_pair(tmp_path, "t10k", n_per_class=4, seed=1)
    cfg = IngestConfig(source="idx", path=train_images, labels_path=train_labels, test_path=test_images,
                       test_labels_path=test_labels, train_per_class=5)
    loaded = read_dataset(ingest(cfg, tmp_path / "out"))
    test_rows = loaded.splits == "test"
    expected, expected_labels = tiny_images(n_per_class=4, seed=1)
    assert test_rows.sum() == 12 and (loaded.labels[test_rows] == expected_labels).all()
    assert (loaded.images[test_rows][:, 0] == expected).all()  # the test file's images, untouched
    assert all(sample.startswith("test:") for sample in np.asarray(loaded.sample_ids)[test_rows])
    assert (loaded.splits == "val").sum() == 9  # 15% of each class's 20 training-file images
    assert np.bincount(loaded.labels[loaded.splits == "train"]).tolist() == [5, 5, 5]
    assert loaded.meta.extra["test_source"].startswith("separate")


def test_a_test_subfolder_of_an_image_folder_is_the_test_split(tmp_path: Path, rgb_folder: Path) -> None:
    from PIL import Image

    images, labels = tiny_images(n_per_class=2, channels=3, seed=5)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = rgb_folder / "test" / ["cat", "dog", "owl"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "RGB").save(folder / f"t{i}.png")
    loaded = read_dataset(ingest(IngestConfig(source="folder", path=rgb_folder, test_path=rgb_folder / "test"), tmp_path / "o"))
    assert loaded.meta.class_names == ["cat", "dog", "owl"]  # 'test' is not a class
    assert np.bincount(loaded.labels[loaded.splits == "test"]).tolist() == [2, 2, 2]
    assert (loaded.splits != "test").sum() == 18
    # The same folder without test_path: one line naming the folder and the option, nothing written.
    with pytest.raises(DataError, match=r"test.* holds class sub-folders \(cat, dog, owl\).*--test-path"):
        ingest(IngestConfig(source="folder", path=rgb_folder), tmp_path / "p")
    assert files_under(tmp_path / "p") == []
    result = CliRunner().invoke(app, ["ingest", "--source", "folder", "--path", str(rgb_folder),
                                      "--runs-root", str(tmp_path / "runs"), "--run-id", "r"])
    assert result.exit_code == 2 and "--test-path" in result.output


def test_table_split_column_marks_the_test_rows(tmp_path: Path) -> None:
    images, labels = tiny_images(n_per_class=10)
    frame = pd.DataFrame(images.reshape(len(images), -1), columns=[f"p{i}" for i in range(64)])
    frame["label"] = labels
    frame["part"] = np.where(np.arange(len(frame)) % 10 < 2, "test", "train")
    frame.to_csv(tmp_path / "t.csv", index=False)
    loaded = read_dataset(ingest(IngestConfig(source="table", path=tmp_path / "t.csv", split_column="part"), tmp_path / "o"))
    assert (loaded.splits == "test").sum() == 6 and loaded.meta.height == 8  # 'part' is no pixel column


def test_test_set_with_a_class_the_training_data_lacks_is_refused(tmp_path: Path) -> None:
    train_images, train_labels = _idx_pair(tmp_path, "train", n_per_class=6, classes=3)
    test_images, test_labels = _idx_pair(tmp_path, "t10k", n_per_class=2, classes=4)
    cfg = IngestConfig(source="idx", path=train_images, labels_path=train_labels, test_path=test_images, test_labels_path=test_labels)
    with pytest.raises(DataError, match=r"test set .*t10k-images has classes \['3'\]"):
        ingest(cfg, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_test_set_of_another_image_size_is_refused(tmp_path: Path) -> None:
    train_images, train_labels = _idx_pair(tmp_path, "train", n_per_class=6)
    test_images, test_labels = _idx_pair(tmp_path, "t10k", n_per_class=2, size=10)
    cfg = IngestConfig(source="idx", path=train_images, labels_path=train_labels, test_path=test_images, test_labels_path=test_labels)
    with pytest.raises(DataError, match="t10k-images holds 10x10 images but .*train-images holds 8x8"):
        ingest(cfg, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize(("options", "fragment"), [
    ({"test_path": "t"}, "test_path and test_labels_path together"),
    ({"test_path": "t", "test_labels_path": "l", "test_fraction": 0.1}, "test_fraction does not apply"),
    ({"split_column": "part"}, "split_column applies only to source 'table'"),
])
def test_inconsistent_test_options_are_refused(options: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        IngestConfig(source="idx", path="x", labels_path="y", **options)


def test_cli_reports_a_bad_test_set_in_one_line_with_exit_2(tmp_path: Path) -> None:
    train_images, train_labels = _idx_pair(tmp_path, "train", n_per_class=6)
    test_images, test_labels = _idx_pair(tmp_path, "t10k", n_per_class=2, size=10)
    result = CliRunner().invoke(app, ["ingest", "--source", "idx", "--path", str(train_images), "--labels", str(train_labels),
                                      "--test-path", str(test_images), "--test-labels", str(test_labels),
                                      "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "10x10 images" in result.output and "Traceback" not in result.output
    assert files_under(tmp_path / "runs") == []
