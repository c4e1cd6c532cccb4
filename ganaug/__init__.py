"""ganaug: GAN-based data augmentation, measured honestly."""

__version__ = "0.1.0"
