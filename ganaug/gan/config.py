"""`GanConfig`: every option of the GAN training stage, with defaults tuned on digits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ganaug.configbase import StrictModel
from ganaug.device import DeviceChoice
from ganaug.gan.networks import default_widths

GanLoss = Literal["bce", "hinge", "wgan-gp"]
Conditioning = Literal["projection", "acgan"]
AugmentOp = Literal["color", "translation", "cutout"]
LrSchedule = Literal["constant", "exponential", "cosine"]
EmaStatistics = Literal["standing", "copied"]
ClassSampling = Literal["auto", "images", "balanced"]
ScheduleSource = Literal["fixed", "learned"]
PoolUse = Literal["auto", "pseudo_label", "off"]
StepCapture = Literal["graph", "auto"]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]

# Options that fix the networks' shapes: a checkpoint can only be resumed or loaded with these unchanged.
ARCHITECTURE_FIELDS = ("latent_dim", "g_width", "d_width", "spectral_norm", "minibatch_std", "conditioning")


class GanConfig(StrictModel):
    """How to train the class-conditional GAN.

    The defaults are the configuration measured in docs/benchmarks/gan.md on digits (8x8) and on
    MNIST with 100 labels per class (28x28); network widths follow the image size unless given.
    """

    loss: GanLoss = Field("hinge", description="Adversarial loss: non-saturating BCE, hinge or WGAN-GP.")
    g_lr: float = Field(2e-4, gt=0.0, le=1.0, description="Generator learning rate (Adam).")
    d_lr: float = Field(8e-4, gt=0.0, le=1.0, description="Discriminator learning rate (Adam); above g_lr (two time-scale rule).")
    betas: tuple[Beta, Beta] = Field((0.0, 0.9), description="Adam betas (beta1, beta2) of both networks.")
    batch_size: int = Field(64, ge=1, le=65536, description="Real images per discriminator step (fakes: the same number).")
    class_sampling: ClassSampling = Field(
        "auto", description="How real batches are drawn (the fakes take their labels): images = every image equally often, so classes "
                            "in their data proportions; balanced = every class equally often, then one of its images (BAGAN-style); "
                            "auto = balanced when a class has under half the images of the largest, else images.",
    )
    steps: int = Field(3000, ge=1, le=10_000_000, description="Generator steps to train in total.")
    d_steps_per_g: int = Field(1, ge=1, le=16, description="Discriminator steps per generator step.")
    latent_dim: int = Field(64, ge=1, le=1024, description="Size of the generator's noise vector.")
    g_width: int | None = Field(None, ge=8, le=4096, description="Generator channels at full resolution (doubled per coarser level, at most 8x); None = chosen from the image size.")
    d_width: int | None = Field(None, ge=8, le=4096, description="Discriminator channels at full resolution (doubled per downsampling, at most 8x); None = chosen from the image size.")
    spectral_norm: bool = Field(True, description="Spectral normalization on every discriminator layer.")
    minibatch_std: bool = Field(False, description="Give D the within-group spread of its features, so it can spot collapsed samples.")
    conditioning: Conditioning = Field("projection", description="Class conditioning in D: projection (Miyato & Koyama 2018) or an auxiliary classifier head (AC-GAN).")
    acgan_weight: float = Field(1.0, ge=0.0, le=100.0, description="Weight of the auxiliary classification loss (conditioning='acgan').")
    diffaugment: list[AugmentOp] | None = Field(
        None, description="DiffAugment operations on real and fake images in D's pass, e.g. ['translation', 'cutout']; None = off."
    )
    ada_target: float | None = Field(None, gt=0.0, lt=1.0, description="Adaptive augmentation (ADA): raise the probability of each DiffAugment operation while the share of real images D scores positive exceeds this target, lower it otherwise; None = always apply.")
    ada_kimg: float = Field(100.0, gt=0.0, le=100_000.0, description="Thousands of real images over which the ADA probability can move from 0 to 1.")
    lecam_weight: float | None = Field(None, gt=0.0, le=100.0, description="LeCam regularization of D (Tseng et al. 2021): pulls D's outputs towards moving averages of the other side's; None = off.")
    mode_seeking: float | None = Field(1.0, gt=0.0, le=100.0, description="Mode-seeking regularization of G (Mao et al. 2019): pairs of fakes of one class from different noise must differ; the weight, None = off.")
    ema_decay: float | None = Field(0.999, ge=0.0, lt=1.0, description="Decay of the generator's weight average (used for sampling); None = off.")
    ema_statistics: EmaStatistics = Field("standing", description="Batch-norm statistics of the averaged generator: standing = recomputed for its own weights before each use; copied = the live generator's.")
    schedule: ScheduleSource = Field("fixed", description="fixed: g_lr, d_lr, lr_schedule and lr_decay_rate as configured; learned: set when the training starts from the run history for this dataset (eta0 and eta1 of lr_t = eta0 * exp(-eta1 t), ganaug.tune.schedule); leave those four at their defaults then.")
    lr_schedule: LrSchedule = Field("constant", description="Learning-rate schedule of both networks.")
    lr_decay_rate: float = Field(2.0, ge=0.0, le=50.0, description="k in lr_t = lr_0 * exp(-k t), t = fraction of training done (lr_schedule='exponential').")
    r1_gamma: float | None = Field(None, gt=0.0, le=1000.0, description="R1 gradient penalty weight on real images; None = off.")
    gp_weight: float = Field(10.0, ge=0.0, le=1000.0, description="Gradient-penalty weight (loss='wgan-gp').")
    weight_decay: float | None = Field(None, gt=0.0, le=1.0, description="L2 weight regularization of both networks (Adam weight_decay); None = off.")
    checkpoint_every: int | None = Field(500, ge=1, le=10_000_000, description="Write a checkpoint every this many steps (and at the end); None = only at the end.")
    keep_checkpoints: int = Field(3, ge=1, le=10_000, description="Periodic checkpoints kept besides last.pt (oldest removed first).")
    metrics_every: int = Field(50, ge=1, le=10_000_000, description="Record metrics (and check losses are finite) every this many steps.")
    monitor_every: int | None = Field(250, ge=1, le=10_000_000, description="Every this many steps (and at the end) measure within-class spread, recall and Fréchet distance of the sampling generator against real val images, and keep the best checkpoint; None = off (best = last).")
    monitor_per_class: int = Field(50, ge=8, le=10_000, description="Real val images (at most) and generated images per class that the collapse monitor compares.")
    collapse_spread: float = Field(0.3, ge=0.0, le=1.0, description="Warn that a class collapsed when its samples' within-class spread falls below this share of the real val spread.")
    grid_every: int | None = Field(1000, ge=1, le=10_000_000, description="Write a sample-grid PNG every this many steps (always at the end); None = only at the end.")
    grid_columns: int = Field(10, ge=1, le=64, description="Samples per class (columns) in the sample grid.")
    pool: PoolUse = Field(
        "auto", description="The dataset's unlabelled pool: pseudo_label = also train on the pool images that a teacher (ganaug's "
                            "self-training, its threshold and rounds chosen on val) labels confidently, in class-balanced batches; "
                            "off = labelled images only; auto = pseudo_label when the dataset has a pool.",
    )
    device: DeviceChoice = Field("auto", description="Training device: auto (cuda, then mps, then cpu), cpu, cuda or mps.")
    compile: bool | StepCapture = Field(
        False, description="How the training step runs: false = eagerly; true = eagerly with G and D wrapped in torch.compile "
                           "(pays a compile delay); graph = the whole step (D and G passes, both Adam steps, EMA) captured once in a "
                           "CUDA graph and replayed, falling back to eager with a logged reason where it cannot (not CUDA, gradient "
                           "penalties, ADA, a learning-rate schedule); auto = graph where it can, else eager.",
    )
    amp: bool = Field(True, description="bf16 autocast on CUDA (CPU and MPS always train in float32).")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of weights, noise, batches and augmentation.")
    resume: bool = Field(False, description="Continue from gan/checkpoints/last.pt when it exists.")

    @model_validator(mode="after")
    def _check_combination(self) -> GanConfig:
        if self.compile is True and (self.loss == "wgan-gp" or self.r1_gamma is not None):
            raise ValueError("compile=true cannot be combined with loss='wgan-gp' or r1_gamma (gradient penalties need double backward, which torch.compile does not support)")
        if self.diffaugment is not None and len(set(self.diffaugment)) != len(self.diffaugment):
            raise ValueError(f"diffaugment lists an operation twice: {self.diffaugment}")
        if self.ada_target is not None and not self.diffaugment:
            raise ValueError("ada_target adapts the probability of the DiffAugment operations; set diffaugment too, e.g. ['translation', 'cutout']")
        return self

    def widths(self, height: int, width: int) -> tuple[int, int]:
        """(g_width, d_width) for images of this size: the configured ones, else the size's defaults."""
        g_default, d_default = default_widths(height, width)
        return self.g_width or g_default, self.d_width or d_default

    def architecture(self, height: int, width: int) -> dict[str, object]:
        """The options that fix the networks' shapes, widths resolved for the image size."""
        resolved = {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}
        resolved["g_width"], resolved["d_width"] = self.widths(height, width)
        return resolved
