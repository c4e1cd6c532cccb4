"""Model averaging beyond the EMA: sample from several of a training's kept checkpoints at once.

The EMA already averages the weights of the last ~1/(1 - decay) steps. Averaging the EMA generators
of the periodic checkpoints a training keeps (`keep_checkpoints`, `checkpoint_every` apart) reaches
further back, like stochastic weight averaging over the end of training. Two ways:

- `weights`: one generator whose weights are the uniform mean of the checkpoints' generators. The
  generator has batch norms with running statistics (`ConditionalBatchNorm2d`); they are recomputed
  for the averaged weights (standing statistics), as for the EMA generator.
- `ensemble`: the checkpoints' generators kept side by side; image i of each forward batch comes
  from generator i mod k, each with its own weights and statistics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ganaug.errors import CheckpointError, ConfigError
from ganaug.runs import CHECKPOINTS_DIR
from ganaug.gan.checkpoint import load_generator, periodic_checkpoints
from ganaug.gan.optim import standing_statistics


def kept_checkpoints(gan_dir: str | Path, last: int | None = None) -> list[Path]:
    """The periodic checkpoints a training kept under `<gan_dir>/checkpoints`, oldest first (the newest `last`)."""
    found = [path for _, path in periodic_checkpoints(Path(gan_dir) / CHECKPOINTS_DIR)]
    return found[-last:] if last else found


AverageMode = Literal["none", "weights", "ensemble"]


def _load_members(checkpoints: Sequence[str | Path], use_ema: bool,
                  device: str | torch.device) -> list[tuple[nn.Module, dict[str, Any]]]:
    """The checkpoints' (EMA) generators with their info; all must come from one training setup."""
    if not checkpoints:
        raise CheckpointError("no checkpoints to average; the training kept no periodic checkpoints (checkpoint_every)")
    loaded = [load_generator(path, use_ema=use_ema, device=device) for path in checkpoints]
    info = loaded[0][1]
    for path, (_, other) in zip(checkpoints[1:], loaded[1:]):
        for key in ("dataset_hash", "latent_dim", "num_classes", "channels", "height", "width"):
            if other[key] != info[key]:
                raise CheckpointError(f"checkpoint {path} differs from {checkpoints[0]} in {key} ({other[key]} vs {info[key]}); "
                                      "only checkpoints of one training setup can be averaged")
    return loaded


def _members_info(checkpoints: Sequence[str | Path], loaded: list[tuple[nn.Module, dict[str, Any]]]) -> dict[str, Any]:
    return {"averaged_steps": [other["step"] for _, other in loaded],
            "averaged_checkpoints": [str(path) for path in checkpoints],
            "averaged_ids": [str(other["checkpoint_id"]) for _, other in loaded]}


@torch.no_grad()
def average_generators(checkpoints: Sequence[str | Path], use_ema: bool = True, seed: int = 0,
                       device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The uniform weight average of the checkpoints' (EMA) generators, in eval mode, with its info.

    Every checkpoint must come from one training setup: same dataset and network shapes. `seed`
    fixes the noise of the recomputed batch-norm statistics.
    """
    loaded = _load_members(checkpoints, use_ema, device)
    averaged, info = loaded[0]
    parameters = [dict(generator.named_parameters()) for generator, _ in loaded]
    for name, parameter in parameters[0].items():
        shapes = {tuple(p[name].shape) for p in parameters}
        if len(shapes) > 1:
            raise CheckpointError(f"checkpoints {', '.join(map(str, checkpoints))} have generators of different widths ({name}: {sorted(shapes)})")
        parameter.copy_(torch.stack([p[name] for p in parameters]).mean(dim=0))
    standing_statistics(averaged, seed)
    return averaged, {**info, **_members_info(checkpoints, loaded)}


class EnsembleGenerator(nn.Module):
    """Several generators of one training setup taken in turn: image i of a batch comes from member i mod k.

    Members are in eval mode (running batch-norm statistics), so each image depends only on its own
    noise, label and member; `sample` then gives the same images for the same seed and batch size.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.latent_dim = members[0].latent_dim
        self.shape = members[0].shape

    def member_of(self, count: int) -> torch.Tensor:
        """(count,) index of the member that draws each image of a batch of `count`."""
        return torch.arange(count) % len(self.members)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        member = self.member_of(len(z)).to(z.device)
        shape = self.shape
        images = z.new_empty(len(z), shape.channels, shape.height, shape.width)  # (B, C, H, W)
        for index, generator in enumerate(self.members):
            chosen = member == index
            if bool(chosen.any()):
                images[chosen] = generator(z[chosen], labels[chosen])
        return images


@torch.no_grad()
def ensemble_generators(checkpoints: Sequence[str | Path], use_ema: bool = True,
                        device: str | torch.device = "cpu") -> tuple[EnsembleGenerator, dict[str, Any]]:
    """The checkpoints' (EMA) generators as one `EnsembleGenerator` in eval mode, with its info."""
    loaded = _load_members(checkpoints, use_ema, device)
    ensemble = EnsembleGenerator([generator for generator, _ in loaded]).eval().requires_grad_(False)
    return ensemble, {**loaded[0][1], **_members_info(checkpoints, loaded)}


def combined_id(mode: str, member_ids: Sequence[str]) -> str:
    """A content id for an averaged or ensembled generator: sha256 over the mode and its members' ids."""
    return hashlib.sha256(":".join([mode, *member_ids]).encode()).hexdigest()


def checkpoints_to_average(folder: str | Path, count: int) -> list[Path]:
    """The newest `count` periodic checkpoints (step_<n>.pt) in a training's checkpoint folder, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"average_checkpoints={count}: the checkpoint folder {folder} does not exist; "
                          "train the GAN first, or set average='none'")
    found = [path for _, path in periodic_checkpoints(folder)]
    if len(found) < count:
        names = ", ".join(path.name for path in found) or "none"
        raise ConfigError(
            f"average_checkpoints={count} but {folder} keeps only {len(found)} periodic checkpoints (step_<n>.pt: {names}); "
            "lower average_checkpoints, or train with checkpoint_every set and keep_checkpoints >= average_checkpoints"
        )
    return found[-count:]


def combined_generator(folder: str | Path, mode: AverageMode, count: int, use_ema: bool = True, seed: int = 0,
                       device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The weight average (`weights`) or ensemble (`ensemble`) of the newest `count` checkpoints in `folder`.

    Its info is that of the newest checkpoint, with `averaged_*` lists and a `checkpoint_id` combined
    from the members' ids.
    """
    if mode not in ("weights", "ensemble"):
        raise ConfigError(f"average must be 'weights' or 'ensemble' to combine checkpoints, got '{mode}'")
    checkpoints = checkpoints_to_average(folder, count)
    if mode == "weights":
        generator, info = average_generators(checkpoints, use_ema=use_ema, seed=seed, device=device)
    else:
        generator, info = ensemble_generators(checkpoints, use_ema=use_ema, device=device)
    return generator, {**info, "step": info["averaged_steps"][-1], "selection": None,
                       "checkpoint_id": combined_id(mode, info["averaged_ids"]), "average": mode}
