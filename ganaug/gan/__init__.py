"""Class-conditional GAN: networks, losses, augmentation, EMA, trainer, checkpoints and the training stage."""

from ganaug.gan.checkpoint import discriminator_scores, load_generator
from ganaug.gan.config import GanConfig
from ganaug.gan.sampling import sample
from ganaug.gan.stage import GanResult, train_gan

__all__ = ["GanConfig", "GanResult", "discriminator_scores", "load_generator", "sample", "train_gan"]
