"""Device choice and seeding shared by every stage that trains a network."""

from __future__ import annotations

import random
import threading
from typing import Literal

import numpy as np
import torch

from ganaug.errors import ConfigError

# Seeded weight initialisation draws from torch's global generator; every module built from a seed
# (classifiers, GAN networks, the monitor's fixed features) holds this lock from seeding to the end
# of construction, so trainings in parallel threads stay reproducible.
WEIGHT_INIT_LOCK = threading.Lock()

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]


def select_device(choice: DeviceChoice = "auto") -> torch.device:
    """cuda, then mps, then cpu for 'auto'; an explicit choice that is not available is an error."""
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; use device 'auto' or 'cpu'")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was requested but MPS is not available; use device 'auto' or 'cpu'")
    return torch.device(choice)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
