"""Plain ``nn.Module`` generators, discriminators and blocks (no Lightning imports here)."""

from lightning_gans.networks.dcgan import DCGANDiscriminator28, DCGANGenerator28
from lightning_gans.networks.minibatch import MinibatchDiscrimination
from lightning_gans.networks.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator28", "DCGANGenerator28", "MLPDiscriminator", "MLPGenerator", "MinibatchDiscrimination"]
from lightning_gans.networks.progan import ProGANDiscriminator, ProGANGenerator  # noqa: E402

__all__ += ["ProGANDiscriminator", "ProGANGenerator"]
from lightning_gans.networks.srgan import SRGANDiscriminator, SRResNetGenerator, VGGFeatures  # noqa: E402

__all__ += ["SRGANDiscriminator", "SRResNetGenerator", "VGGFeatures"]
from lightning_gans.networks.age_cgan import AgeDiscriminator, AgeEncoder, AgeGenerator  # noqa: E402

__all__ += ["AgeDiscriminator", "AgeEncoder", "AgeGenerator"]
from lightning_gans.networks.gan3d import VoxelDiscriminator, VoxelGenerator  # noqa: E402

__all__ += ["VoxelDiscriminator", "VoxelGenerator"]
