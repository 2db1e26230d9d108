"""One LightningModule per GAN family; ``base.GANModule`` holds the shared training schedule."""

from lightning_gans.models.base import GANModule, NonFiniteLossError
from lightning_gans.models.dcgan import DCGAN
from lightning_gans.models.gan import GAN

__all__ = ["DCGAN", "GAN", "GANModule", "NonFiniteLossError"]
