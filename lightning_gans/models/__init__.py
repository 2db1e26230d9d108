"""One LightningModule per GAN family; ``base.GANModule`` holds the shared training schedule."""

from lightning_gans.models.base import GANModule, NonFiniteLossError
from lightning_gans.models.cgan import CGAN
from lightning_gans.models.dcgan import DCGAN
from lightning_gans.models.gan import GAN
from lightning_gans.models.sgan import SGAN

__all__ = ["CGAN", "DCGAN", "GAN", "GANModule", "NonFiniteLossError", "SGAN"]
from lightning_gans.models.progan import ProGAN  # noqa: E402

__all__ += ["ProGAN"]
from lightning_gans.models.srgan import SRGAN  # noqa: E402

__all__ += ["SRGAN"]
from lightning_gans.models.age_cgan import AgeCGAN  # noqa: E402

__all__ += ["AgeCGAN"]
from lightning_gans.models.cyclegan import CycleGAN  # noqa: E402
from lightning_gans.models.discogan import DiscoGAN  # noqa: E402

__all__ += ["CycleGAN", "DiscoGAN"]
from lightning_gans.models.gan3d import GAN3D  # noqa: E402

__all__ += ["GAN3D"]
