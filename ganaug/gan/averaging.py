"""Model averaging beyond the EMA: one generator whose weights are the mean of several checkpoints' generators.

The EMA already averages the weights of the last ~1/(1 - decay) steps. Averaging the EMA generators
of the periodic checkpoints a training keeps (`keep_checkpoints`, `checkpoint_every` apart) reaches
further back, like stochastic weight averaging over the end of training. Batch-norm statistics are
recomputed for the averaged weights (standing statistics), as for the EMA generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganaug.errors import CheckpointError
from ganaug.gan.checkpoint import load_generator, periodic_checkpoints
from ganaug.gan.optim import standing_statistics


def kept_checkpoints(gan_dir: str | Path, last: int | None = None) -> list[Path]:
    """The periodic checkpoints a training kept under `<gan_dir>/checkpoints`, oldest first (the newest `last`)."""
    found = [path for _, path in periodic_checkpoints(Path(gan_dir) / "checkpoints")]
    return found[-last:] if last else found


@torch.no_grad()
def average_generators(checkpoints: Sequence[str | Path], use_ema: bool = True, seed: int = 0,
                       device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The uniform weight average of the checkpoints' (EMA) generators, in eval mode, with its info.

    Every checkpoint must come from one training setup: same dataset and network shapes.
    """
    if not checkpoints:
        raise CheckpointError("no checkpoints to average; the training kept no periodic checkpoints (checkpoint_every)")
    loaded = [load_generator(path, use_ema=use_ema, device=device) for path in checkpoints]
    averaged, info = loaded[0]
    for path, (_, other) in zip(checkpoints[1:], loaded[1:]):
        for key in ("dataset_hash", "latent_dim", "num_classes", "channels", "height", "width"):
            if other[key] != info[key]:
                raise CheckpointError(f"checkpoint {path} differs from {checkpoints[0]} in {key} ({other[key]} vs {info[key]}); "
                                      "only checkpoints of one training setup can be averaged")
    parameters = [dict(generator.named_parameters()) for generator, _ in loaded]
    for name, parameter in parameters[0].items():
        shapes = {tuple(p[name].shape) for p in parameters}
        if len(shapes) > 1:
            raise CheckpointError(f"checkpoints {', '.join(map(str, checkpoints))} have generators of different widths ({name}: {sorted(shapes)})")
        parameter.copy_(torch.stack([p[name] for p in parameters]).mean(dim=0))
    standing_statistics(averaged, seed)
    return averaged, {**info, "averaged_steps": [other["step"] for _, other in loaded],
                      "averaged_checkpoints": [str(path) for path in checkpoints]}
