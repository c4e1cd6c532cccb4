"""Sample labelled synthetic images from a trained conditional generator into synthetic.parquet.

Counts per class come from one of three modes (fixed count, balance, ratio to real). An optional
quality filter keeps samples that a classifier trained on the real train split assigns to their
conditioned class with confidence >= a threshold, and/or ranks candidates by that confidence or
by the discriminator's score; the score is stored per sample.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import torch
from pydantic import Field, model_validator

from ganaug.classifier import ArchSpec, TrainConfig, predict_logits, train_classifier
from ganaug.configbase import StrictModel
from ganaug.data.splits import minority_classes
from ganaug.data.tensors import load_tensors, tensor_to_images
from ganaug.device import DeviceChoice, select_device
from ganaug.errors import CheckpointError, ConfigError, DataError
from ganaug.runs import SYNTHETIC_FILE
from ganaug.store import (DatasetMeta, DatasetRef, LoadedDataset, SyntheticRef, build_dataset_table, read_dataset,
                          with_origin, write_table)

if TYPE_CHECKING:
    from ganaug.gan import GanResult

log = logging.getLogger(__name__)

GenerateMode = Literal["per_class", "balance", "ratio"]
RankBy = Literal["none", "confidence", "discriminator"]
CheckpointChoice = Literal["best", "last"]
AverageChoice = Literal["none", "weights", "ensemble"]


class GenerateConfig(StrictModel):
    """How many synthetic images of each class to sample, and which to keep."""

    mode: GenerateMode = Field("ratio", description="per_class: a fixed count per class; balance: top every class up to a target; ratio: synthetic per real image of each class.")
    per_class: int = Field(100, ge=1, le=1_000_000, description="Images per class (mode=per_class).")
    target_per_class: int | None = Field(None, ge=1, le=1_000_000, description="Real + synthetic count every class reaches (mode=balance); None = the largest class's real count.")
    ratio: float = Field(1.0, gt=0.0, le=100.0, description="Synthetic images per real training image of the same class (mode=ratio).")
    fill_minority: bool = Field(
        True,
        description="mode=ratio on a dataset with minority classes (fewer than half the training images of the largest "
                    "class): sample at least each class's gap to the largest class too, so that balanced_mixed, which the "
                    "evaluation adds to its default protocols there, has images. Default: on unless mode or ratio is given.",
    )
    checkpoint: CheckpointChoice = Field("best", description="Which checkpoint of the GAN training to sample: best = the one with the best validation score (gan/checkpoints/best.pt, chosen by the collapse monitor), last = the final one.")
    use_ema: bool = Field(True, description="Sample from the generator's exponential moving average (False: the raw generator).")
    average: AverageChoice = Field("none", description="Sample from several kept checkpoints instead of one: none = the one `checkpoint` picks; weights = one generator with the uniform mean of the newest `average_checkpoints` periodic checkpoints' (EMA) weights, batch-norm statistics recomputed; ensemble = those generators in turn (image i of a batch from generator i mod k). `checkpoint` does not apply then.")
    average_checkpoints: int = Field(3, ge=2, le=100, description="How many of the newest kept periodic checkpoints (gan/checkpoints/step_<n>.pt) average/ensemble combine; the training must keep at least this many (keep_checkpoints).")
    min_confidence: float | None = Field(None, gt=0.0, le=1.0, description="Keep only samples a real-trained classifier assigns to their class with at least this probability; None = off.")
    rank_by: RankBy = Field("none", description="Keep the best candidates by classifier confidence or discriminator score; none = keep in sampling order.")
    oversample: float = Field(2.0, ge=1.0, le=100.0, description="Candidates drawn per kept image in each filtering round.")
    max_candidates: float = Field(20.0, ge=1.0, le=1000.0, description="Give up (error) after this many candidates per requested image fail the filter.")
    filter_arch: ArchSpec = Field(default_factory=ArchSpec, description="Architecture of the confidence classifier.")
    filter_train: TrainConfig = Field(default_factory=TrainConfig, description="Training of the confidence classifier (step budget, best val checkpoint).")
    batch_size: int = Field(1024, ge=1, le=65536, description="Samples per generator forward pass.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the noise (and of the confidence classifier).")
    device: DeviceChoice = Field("auto", description="Device: auto (cuda, mps, cpu), cpu, cuda or mps.")

    @model_validator(mode="before")
    @classmethod
    def _fill_minority_by_default(cls, data: Any) -> Any:
        """Fill minority gaps when the sampling is left at its defaults; an explicit mode or ratio gets exactly that."""
        if isinstance(data, dict) and "fill_minority" not in data:
            return {**data, "fill_minority": not {"mode", "ratio"} & data.keys()}
        return data

    @model_validator(mode="after")
    def _check(self) -> GenerateConfig:
        if self.target_per_class is not None and self.mode != "balance":
            raise ValueError("target_per_class only applies to mode 'balance'")
        return self

    def uses_classifier(self) -> bool:
        return self.min_confidence is not None or self.rank_by == "confidence"

    def score_kind(self) -> str | None:
        """What the quality_score column holds: confidence, discriminator, or nothing."""
        if self.rank_by != "none":
            return self.rank_by
        return "confidence" if self.min_confidence is not None else None


def requested_counts(train_labels: np.ndarray, num_classes: int, cfg: GenerateConfig) -> np.ndarray:
    """Synthetic images to produce per class, from the real train split's class counts."""
    real = np.bincount(train_labels, minlength=num_classes)
    if cfg.mode == "per_class":
        return np.full(num_classes, cfg.per_class, dtype=np.int64)
    if cfg.mode == "ratio":
        counts = np.array([round(cfg.ratio * n) for n in real], dtype=np.int64)
        return np.maximum(counts, minority_gaps(real)) if cfg.fill_minority else counts
    target = cfg.target_per_class if cfg.target_per_class is not None else int(real.max())
    return np.maximum(target - real, 0).astype(np.int64)


def minority_gaps(real_counts: np.ndarray) -> np.ndarray:
    """Each class's gap to the largest class when some class is a minority (`minority_classes`), else zeros."""
    if not any(minority_classes(real_counts.tolist())):
        return np.zeros(len(real_counts), dtype=np.int64)
    return ((real_counts.max() - real_counts) * (real_counts > 0)).astype(np.int64)


def _class_seed(seed: int, label: int, round_index: int) -> int:
    return int(np.random.SeedSequence([seed, label, round_index]).generate_state(1)[0])


class _Scorer:
    """Scores candidates: classifier confidence for their class and/or discriminator output."""

    def __init__(self, cfg: GenerateConfig, dataset: LoadedDataset, checkpoint: Path) -> None:
        self.cfg, self.checkpoint, self.classifier = cfg, checkpoint, None
        if cfg.uses_classifier():
            train_cfg = cfg.filter_train
            if train_cfg.device == "auto":  # follow the stage's device unless the filter names its own
                train_cfg = train_cfg.model_copy(update={"device": cfg.device})
            trained = train_classifier(
                cfg.filter_arch, load_tensors(dataset, "train", "real"), load_tensors(dataset, "val", "real"),
                dataset.meta.num_classes, train_cfg, seed=cfg.seed,
            )
            self.classifier = trained.model
            log.info("confidence classifier: val accuracy %.4f", trained.best_val_accuracy)

    def confidence(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probabilities = predict_logits(self.classifier, images).softmax(1)  # (N, K)
        return probabilities.gather(1, labels[:, None]).squeeze(1)

    def score(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mask of kept candidates, ranking/quality score or None)."""
        confidence = self.confidence(images, labels) if self.classifier is not None else None
        keep = torch.ones(len(images), dtype=torch.bool)
        if self.cfg.min_confidence is not None and confidence is not None:
            keep = confidence >= self.cfg.min_confidence
        if self.cfg.rank_by == "discriminator":
            from ganaug.gan import discriminator_scores

            return keep, discriminator_scores(self.checkpoint, images, labels, device=self.cfg.device)
        return keep, confidence


def _sample_class(generator: torch.nn.Module, label: int, count: int, scorer: _Scorer | None,
                  cfg: GenerateConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`count` images (and scores) of one class, filtered and ranked as configured."""
    from ganaug.gan import sample

    if scorer is None:
        return sample(generator, torch.full((count,), label), _class_seed(cfg.seed, label, 0), cfg.batch_size), None
    kept_images, kept_scores, accepted, drawn, round_index = [], [], 0, 0, 0
    per_round = math.ceil(count * cfg.oversample)
    while accepted < count:
        if drawn >= cfg.max_candidates * count:
            raise DataError(
                f"only {accepted} of {count} samples of class {label} passed min_confidence={cfg.min_confidence} "
                f"after {drawn} candidates; lower min_confidence, raise max_candidates or train the GAN longer"
            )
        labels = torch.full((per_round,), label)
        images = sample(generator, labels, _class_seed(cfg.seed, label, round_index), cfg.batch_size)
        keep, scores = scorer.score(images, labels)
        kept_images.append(images[keep])
        kept_scores.append(scores[keep] if scores is not None else torch.full((int(keep.sum()),), float("nan")))
        accepted += int(keep.sum())
        drawn += per_round
        round_index += 1
    images, scores = torch.cat(kept_images), torch.cat(kept_scores)
    if cfg.rank_by != "none":
        order = torch.sort(scores, descending=True, stable=True).indices
        images, scores = images[order], scores[order]
    return images[:count], (scores[:count] if cfg.score_kind() is not None else None)


def _check_generator(info: dict[str, Any], meta: DatasetMeta, checkpoint: Path, dataset: Path) -> None:
    got = (int(info["channels"]), int(info["height"]), int(info["width"]), int(info["num_classes"]))
    want = (meta.channels, meta.height, meta.width, meta.num_classes)
    if got != want:
        raise CheckpointError(
            f"checkpoint {checkpoint} generates {got[0]}x{got[1]}x{got[2]} images of {got[3]} classes but {dataset} "
            f"holds {want[0]}x{want[1]}x{want[2]} images of {want[3]} classes; train the GAN on this dataset"
        )
    names = info.get("class_names")
    if names is not None and list(names) != list(meta.class_names):
        raise CheckpointError(
            f"checkpoint {checkpoint} was trained on classes {list(names)} but {dataset} has {meta.class_names}"
        )


def _check_trained_on(info: dict[str, Any], real: LoadedDataset, checkpoint: Path) -> None:
    """Refuse a generator trained on another dataset: its label ids may stand for other classes."""
    trained_on = str(info.get("dataset_hash") or "")
    if trained_on != real.content_hash:
        raise CheckpointError(
            f"checkpoint {checkpoint} was trained on a dataset with content hash {trained_on[:12]}, not on {real.path} "
            f"({real.content_hash[:12]}); its labels may mean other classes. Train the GAN on this dataset "
            "(`ganaug train`), or generate with the dataset it was trained on"
        )


def write_synthetic(path: Path, images: np.ndarray, labels: np.ndarray, meta: DatasetMeta, checkpoint_id: str,
                    quality_score: np.ndarray | None, origin: dict[str, Any] | None = None) -> SyntheticRef:
    """Write synthetic.parquet atomically (quality_score null where no score was computed).

    `origin` (e.g. the run folder it was sampled in) is kept in the file but outside the content hash.
    """
    n = len(images)
    scores = np.full(n, np.nan, dtype=np.float32) if quality_score is None else quality_score.astype(np.float32)
    table, content_hash = build_dataset_table(
        images, labels, np.full(n, "train"), np.full(n, "synthetic"), np.array([f"syn-{i:06d}" for i in range(n)]),
        meta, extra_columns={"checkpoint_id": np.full(n, checkpoint_id), "quality_score": scores},
    )
    column = pa.array(scores, type=pa.float32(), mask=np.isnan(scores))
    table = table.set_column(table.schema.get_field_index("quality_score"), table.schema.field("quality_score"), column)
    write_table(with_origin(table, origin) if origin else table, path)
    return SyntheticRef(path=str(path), content_hash=content_hash, rows=n)


def generate(gan: GanResult, dataset: DatasetRef, cfg: GenerateConfig, out: Path) -> SyntheticRef:
    """Sample the configured counts per class from `gan`'s best (or last) checkpoint into out/synthetic.parquet."""
    if cfg.average == "none" and cfg.checkpoint == "best" and gan.best_checkpoint_path is None:
        raise ConfigError(
            f"checkpoint='best' but the GAN result for {gan.checkpoint_path} names no best checkpoint (it was trained "
            "by an older ganaug); retrain the GAN, or set checkpoint='last'"
        )
    return generate_from_checkpoint(Path(gan.checkpoint_path), dataset, cfg, out)


def chosen_checkpoint(checkpoint: Path, choice: str) -> Path:
    """The file to sample: with choice 'best', the best.pt beside a training's last.pt; otherwise `checkpoint` itself.

    Callers that name a last.pt to be sampled as it is (`ganaug generate --checkpoint .../last.pt`) pass 'last'.
    """
    from ganaug.gan.checkpoint import BEST, LAST

    if choice != "best" or checkpoint.name != LAST:
        return checkpoint
    best = checkpoint.with_name(BEST)
    if not best.is_file():
        raise ConfigError(
            f"checkpoint='best' but {best} does not exist (the GAN was trained by an older ganaug, or the file was "
            f"removed); retrain the GAN, or set checkpoint='last' to sample {checkpoint}"
        )
    return best


def checkpoint_choice(synthetic: SyntheticRef | str | Path) -> dict[str, Any]:
    """Which checkpoint a synthetic.parquet was sampled from and why (its `checkpoint_selection` metadata)."""
    from ganaug.store import read_dataset_meta

    path = synthetic.path if isinstance(synthetic, SyntheticRef) else synthetic
    return dict(read_dataset_meta(path).extra.get("checkpoint_selection") or {})


def _combined_generator(folder: Path, cfg: GenerateConfig) -> tuple[torch.nn.Module, dict[str, Any], Path, dict[str, Any]]:
    """The weight average or ensemble `cfg.average` asks for, its info, newest member file and selection record."""
    from ganaug.gan.averaging import combined_generator

    generator, info = combined_generator(folder, cfg.average, cfg.average_checkpoints, use_ema=cfg.use_ema, seed=cfg.seed,
                                         device=select_device(cfg.device))
    files = [Path(path) for path in info["averaged_checkpoints"]]
    how = "uniform weight average" if cfg.average == "weights" else "ensemble (in turn)"
    selection = {
        "file": files[-1].name, "step": info["step"], "checkpoint_id": str(info["checkpoint_id"]), "average": cfg.average,
        "rule": f"{how} of the newest {len(files)} kept checkpoints (steps {', '.join(map(str, info['averaged_steps']))})",
        "checkpoints": [{"file": path.name, "step": step, "checkpoint_id": member}
                        for path, step, member in zip(files, info["averaged_steps"], info["averaged_ids"])],
    }
    return generator, info, files[-1], selection


def _single_generator(checkpoint: Path, cfg: GenerateConfig) -> tuple[torch.nn.Module, dict[str, Any], Path, dict[str, Any]]:
    """The verified generator of the checkpoint `cfg.checkpoint` picks, the file read and its selection record.

    A damaged best.pt or last.pt gives way, with a warning, to the newest verifiable checkpoint beside it.
    """
    from ganaug.gan import load_generator

    chosen = chosen_checkpoint(checkpoint, cfg.checkpoint)
    generator, info = load_generator(chosen, use_ema=cfg.use_ema, device=select_device(cfg.device), fallback=True)
    source = Path(info["path"])
    how = info.get("selection") or {"rule": f"the given checkpoint {source.name}"}
    if source != chosen:
        how = {"rule": f"the newest verifiable checkpoint ({chosen.name} failed verification)", "fallback_from": chosen.name}
    selection = {"file": source.name, "step": info["step"], "checkpoint_id": str(info["checkpoint_id"]), **how}
    return generator, info, source, selection


def generate_from_checkpoint(checkpoint: Path, dataset: DatasetRef, cfg: GenerateConfig, out: Path) -> SyntheticRef:
    """Like `generate`, from a checkpoint file; given a training's last.pt, `cfg.checkpoint` picks best.pt or it.

    With `cfg.average` set, the newest `cfg.average_checkpoints` periodic checkpoints in the file's
    folder are combined instead (the file itself is not read).
    """
    real = read_dataset(dataset)
    train_labels = real.labels[real.select(split="train", source="real")]
    counts = requested_counts(train_labels, real.meta.num_classes, cfg)
    if counts.sum() == 0:
        raise ConfigError(
            f"nothing to generate: mode '{cfg.mode}' asks for 0 images (the train split of {real.path} is already "
            "balanced); set target_per_class or use mode per_class"
        )
    if cfg.average != "none":
        generator, info, checkpoint, selection = _combined_generator(Path(checkpoint).parent, cfg)
    else:
        generator, info, checkpoint, selection = _single_generator(Path(checkpoint), cfg)
    log.info("sampling %s (step %s): %s", checkpoint, info["step"], selection.get("rule"))
    _check_generator(info, real.meta, checkpoint, real.path)
    _check_trained_on(info, real, checkpoint)
    scorer = _Scorer(cfg, real, checkpoint) if cfg.score_kind() is not None else None
    images, labels, scores = [], [], []
    for label, count in enumerate(counts.tolist()):
        if count == 0:
            continue
        class_images, class_scores = _sample_class(generator, label, count, scorer, cfg)
        images.append(tensor_to_images(class_images))
        labels.append(np.full(count, label, dtype=np.int64))
        scores.append(class_scores.numpy() if class_scores is not None else np.full(count, np.nan, dtype=np.float32))
    checkpoint_id = str(info["checkpoint_id"])
    meta = DatasetMeta(
        height=real.meta.height, width=real.meta.width, channels=real.meta.channels,
        class_names=list(real.meta.class_names), ingestion_source="synthetic", pixel_scaling=real.meta.pixel_scaling,
        extra={"checkpoint_id": checkpoint_id, "checkpoint_step": info.get("step"), "dataset_hash": real.content_hash,
               "gan_dataset_hash": info.get("dataset_hash"), "quality_score": cfg.score_kind(),
               "checkpoint_selection": selection,
               "generate_config": cfg.model_dump(mode="json")},
    )
    ref = write_synthetic(Path(out) / SYNTHETIC_FILE, np.concatenate(images), np.concatenate(labels), meta,
                          checkpoint_id, np.concatenate(scores) if cfg.score_kind() is not None else None,
                          origin={"run_id": Path(out).resolve().name})
    log.info("wrote %d synthetic images to %s", ref.rows, ref.path)
    return ref
