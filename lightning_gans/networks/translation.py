"""Image-to-image translation networks: CycleGAN (Zhu et al. 2017) generators and PatchGAN discriminators, the
TF2 tutorial's pix2pix U-Net, *GANs in Action* ch. 9's U-Net and 8×8-patch D, and the DiscoGAN chapter's G/D.

All map N×C×H×W images in [-1, 1] (generators end in tanh); discriminators return raw scores (N×1×h×w).

* ``ResnetGenerator`` — paper appendix 7.2: c7s1-64, d128, d256, R256 × ``num_blocks`` (9 at 256², 6 at 128²),
  u128, u64, c7s1-3; reflection padding, instance norm (no affine, as in the authors' code), ReLU.
* ``UNetGenerator`` — the TF2 CycleGAN tutorial's ``pix2pix.unet_generator(norm_type='instancenorm')``: log2(size)
  downsamplings (8 at 256²) Conv k4 s2 → IN → LReLU(0.3), mirrored ConvT k4 s2 → IN → (Dropout 0.5 on the first 3)
  → ReLU with skip concatenations; no norm on the first down block nor on the 1×1 bottleneck (PyTorch's
  InstanceNorm2d rejects a 1×1 map; the tutorial's IN there only outputs its offset: reference §2.8 bug 6).
* ``PatchGANDiscriminator`` — the 70×70 PatchGAN: C64 (no norm) – C128 – C256 – C512 (stride 1) – conv 1,
  k4, LReLU 0.2, IN; 30×30 scores at 256².
* ``BookUNetGenerator`` / ``BookPatchDiscriminator`` — *GANs in Action* ch. 9 (gf 32, df 64, 128²): 4-down U-Net
  with nearest-upsample + conv up blocks, D with an 8×8 score map at 128².
* ``DiscoGANGenerator`` / ``DiscoGANDiscriminator`` — the DiscoGAN chapter (*Intelligent Projects Using Python*
  ch. 4) at 64², its bugs fixed (see the class docstrings).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_gans.networks.init import dcgan_normal_init, keras_init


def _normal_init(module: nn.Module) -> nn.Module:
    """N(0, 0.02) conv weights, zero biases; affine norm scales N(1, 0.02), offsets 0 (CycleGAN code, TF tutorial)."""
    dcgan_normal_init(module)
    for layer in module.modules():
        if isinstance(layer, nn.InstanceNorm2d) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
    return module


def _check_size(image_size: int, factor: int, name: str) -> None:
    if image_size % factor:
        raise ValueError(f"{name}: image_size must be a multiple of {factor}, got {image_size}")


def _same_conv4(in_channels: int, out_channels: int) -> nn.Sequential:
    """Keras ``Conv2D(k=4, strides=1, padding='same')``: TF pads an even kernel 1 before and 2 after."""
    return nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(in_channels, out_channels, 4))


# ---------------------------------------------------------------------------------------------- ResNet generator
class ResidualBlock(nn.Module):
    """R_k of the CycleGAN paper: two reflection-padded 3×3 convs with IN (ReLU between) plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN ResNet generator (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016): ``num_blocks`` = 9 for
    256² images (ResNet-9), 6 for 128² and smaller (ResNet-6)."""

    def __init__(self, channels: int = 3, base_channels: int = 64, num_blocks: int = 9) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        c = base_channels
        layers: list[nn.Module] = [  # c7s1-64
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, c, 7),
            nn.InstanceNorm2d(c),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):  # d128, d256
            layers += [nn.Conv2d(c * mult, c * mult * 2, 3, 2, 1), nn.InstanceNorm2d(c * mult * 2), nn.ReLU(True)]
        layers += [ResidualBlock(c * 4) for _ in range(num_blocks)]
        for mult in (4, 2):  # u128, u64: fractionally strided 3×3 convs
            layers += [
                nn.ConvTranspose2d(c * mult, c * mult // 2, 3, 2, 1, output_padding=1),
                nn.InstanceNorm2d(c * mult // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, channels, 7), nn.Tanh()]  # c7s1-3
        self.net = _normal_init(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x.shape[-1], 4, type(self).__name__)
        return self.net(x)


# ---------------------------------------------------------------------------------------------- U-Nets
def _unet_forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net.down`` blocks, then ``net.up`` blocks each followed by concatenating the mirrored down output,
    then ``net.last``."""
    skips = []
    for block in net.down:
        x = block(x)
        skips.append(x)
    for block, skip in zip(net.up, reversed(skips[:-1])):
        x = torch.cat([block(x), skip], dim=1)
    return net.last(x)


class UNetGenerator(nn.Module):
    """The TF2 tutorial's pix2pix U-Net with instance norm (see module docstring); ``image_size`` sets the depth
    (log2(size) downsamplings down to 1×1: 8 at 256², 7 at 128²). Block convs have no bias; init N(0, 0.02)."""

    def __init__(
        self,
        image_size: int = 256,
        channels: int = 3,
        base_channels: int = 64,
        max_channels: int = 512,
        dropout: float = 0.5,
        num_dropout: int = 3,
        negative_slope: float = 0.3,
    ) -> None:
        super().__init__()
        depth = int(math.log2(image_size))
        if 2**depth != image_size or depth < 2:
            raise ValueError(f"UNetGenerator: image_size must be a power of 2 >= 4, got {image_size}")
        self.image_size = image_size
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            norm = 0 < i < depth - 1  # none on the first block and on the 1×1 bottleneck
            layers: list[nn.Module] = [nn.Conv2d(channels if i == 0 else widths[i - 1], width, 4, 2, 1, bias=False)]
            layers += [nn.InstanceNorm2d(width, affine=True)] if norm else []
            self.down.append(nn.Sequential(*layers, nn.LeakyReLU(negative_slope)))
        self.up = nn.ModuleList()
        in_ch = widths[-1]
        for j, width in enumerate(reversed(widths[:-1])):
            layers = [nn.ConvTranspose2d(in_ch, width, 4, 2, 1, bias=False), nn.InstanceNorm2d(width, affine=True)]
            layers += [nn.Dropout(dropout)] if j < num_dropout and dropout > 0 else []
            self.up.append(nn.Sequential(*layers, nn.ReLU()))
            in_ch = width * 2  # after the skip concatenation
        self.last = nn.Sequential(nn.ConvTranspose2d(in_ch, channels, 4, 2, 1), nn.Tanh())
        _normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_square(x, self.image_size, type(self).__name__)
        return _unet_forward(self, x)


class BookUNetGenerator(nn.Module):
    """*GANs in Action* ch. 9 U-Net (gf = 32, 128² → 128²): down(f) = Conv k4 s2 → LReLU 0.2 → IN for
    f = gf·(1, 2, 4, 8); up(f) = nearest ×2 → Conv k4 s1 'same' → ReLU → IN → concat(skip) for f = gf·(4, 2, 1);
    then nearest ×2 → Conv 3 k4 s1 'same' → tanh. The book's up-block dropout has rate 0 and is omitted.

    Book bug fixed: keras_contrib's ``InstanceNormalization()`` with its default ``axis=None`` normalises each
    sample over H, W *and* C together with one scalar scale/offset (a layer norm); the text calls it instance
    normalisation, so this is per-channel ``InstanceNorm2d`` (affine)."""

    def __init__(self, channels: int = 3, gf: int = 32) -> None:
        super().__init__()
        widths = [gf, gf * 2, gf * 4, gf * 8]
        self.down = nn.ModuleList()
        in_ch = channels
        for width in widths:
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.InstanceNorm2d(width, affine=True)
                )
            )
            in_ch = width
        self.up = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    _same_conv4(in_ch, width),
                    nn.ReLU(),
                    nn.InstanceNorm2d(width, affine=True),
                )
            )
            in_ch = width * 2
        self.last = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _same_conv4(in_ch, channels), nn.Tanh())
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x.shape[-1], 16, type(self).__name__)
        return _unet_forward(self, x)


# ---------------------------------------------------------------------------------------------- discriminators
class PatchGANDiscriminator(nn.Module):
    """70×70 PatchGAN (Isola et al. 2017; CycleGAN paper appendix 7.2): C64-C128-C256 (k4 s2), C512 (k4 s1),
    conv 1 (k4 s1), padding 1, LReLU 0.2, IN from the 2nd layer; 30×30 raw scores at 256² (each sees 70×70)."""

    def __init__(self, channels: int = 3, base_channels: int = 64, num_strided: int = 3) -> None:
        super().__init__()
        c = base_channels
        layers: list[nn.Module] = [nn.Conv2d(channels, c, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = c
        for i in range(1, num_strided + 1):
            out = c * min(2**i, 8)
            stride = 2 if i < num_strided else 1
            layers += [nn.Conv2d(width, out, 4, stride, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = _normal_init(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BookPatchDiscriminator(nn.Module):
    """*GANs in Action* ch. 9 D (df = 64): Conv f k4 s2 → LReLU 0.2 → IN (none on the first) for f = 64, 128,
    256, 512, then Conv 1 k4 s1 'same', linear: an 8×8 score map at 128² (receptive field 94×94). Instance norm
    per channel (see ``BookUNetGenerator`` for the keras_contrib axis fix)."""

    def __init__(self, channels: int = 3, df: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = channels
        for i, width in enumerate((df, df * 2, df * 4, df * 8)):
            layers += [nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            layers += [nn.InstanceNorm2d(width, affine=True)] if i > 0 else []
            in_ch = width
        layers.append(_same_conv4(in_ch, 1))
        self.net = keras_init(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------------- DiscoGAN
def _disco_bn(channels: int) -> nn.BatchNorm2d:
    """tf.contrib batch_norm as the chapter sets it: eps 1e-3, ``scale=False`` (γ frozen at 1).

    Chapter bug 7 fixed: its moving averages are never updated (UPDATE_OPS not run), so it always normalises with
    batch statistics; here the running statistics are kept (PyTorch momentum 0.1) and used in eval mode, so a
    single image can be translated (batch statistics of one image are undefined at the 1×1 bottleneck).
    """
    bn = nn.BatchNorm2d(channels, eps=1e-3)
    bn.weight.requires_grad_(False)
    return bn


def _disco_depth(image_size: int, name: str) -> int:
    """Strided convs before the 4×4 valid conv: log2(size) − 2 (4 at the chapter's 64²; 3 at 32² for CPU runs)."""
    depth = int(math.log2(image_size)) - 2
    if 2 ** (depth + 2) != image_size or depth < 1:
        raise ValueError(f"{name}: image_size must be a power of 2 >= 8 (the chapter uses 64), got {image_size}")
    return depth


def _check_square(x: torch.Tensor, size: int, name: str) -> None:
    if tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"{name} was built for {size}×{size} images, got {tuple(x.shape[-2:])}")


class DiscoGANGenerator(nn.Module):
    """DiscoGAN chapter G (64² → 64², gf = 64, no skips; ``image_size`` 32 drops one down/up level):
    Conv 64/128/256/512 k4 s2 (BN from the 2nd, LReLU 0.2) → Conv 100 k4 valid (BN, LReLU; 1×1×100) → ConvT 512
    k4 valid → ConvT 256/128/64 k4 s2 (BN, ReLU) → ConvT 3 k4 s2 → tanh. Glorot-uniform init (tf.contrib
    default); layers followed by BN have no bias (tf.contrib drops it when a normalizer is set).

    Chapter bug 2(b) fixed: every tf.contrib conv there has an implicit ReLU (``activation_fn`` default), so it ran
    conv → ReLU → BN → LReLU; here conv → BN → LReLU(0.2) down and convT → BN → ReLU up, as intended.
    Bug 6: its docstring says U-Net but there are no skip connections; none here either by default (the chapter's
    network). ``skips=True`` builds the U-Net the docstring describes (Ronneberger et al. 2015; pix2pix, Isola et al.
    2017): every up block's output is concatenated with the mirrored down block's output (same size and width), so
    the next up layer takes twice the channels; the 1×1 bottleneck stays. Without skips everything the output keeps
    of the input passes the 1×1×100 code (``docs/models/cyclegan.md``, "Why DiscoGAN collapses").
    """

    def __init__(
        self, channels: int = 3, gf: int = 64, bottleneck: int = 100, image_size: int = 64, skips: bool = False
    ) -> None:
        super().__init__()
        n = _disco_depth(image_size, type(self).__name__)  # 4 strided convs at 64² (the chapter)
        self.image_size, self.skips = image_size, skips
        down = [nn.Sequential(nn.Conv2d(channels, gf, 4, 2, 1), nn.LeakyReLU(0.2))]
        for i in range(1, n):
            conv = nn.Conv2d(gf * 2 ** (i - 1), gf * 2**i, 4, 2, 1, bias=False)
            down.append(nn.Sequential(conv, _disco_bn(gf * 2**i), nn.LeakyReLU(0.2)))
        top = gf * 2 ** (n - 1)
        bottleneck_conv = nn.Conv2d(top, bottleneck, 4, 1, 0, bias=False)
        down.append(nn.Sequential(bottleneck_conv, _disco_bn(bottleneck), nn.LeakyReLU(0.2)))
        up = [nn.Sequential(nn.ConvTranspose2d(bottleneck, top, 4, 1, 0, bias=False), _disco_bn(top), nn.ReLU())]
        widen = 2 if skips else 1  # the concatenated skip doubles every later up layer's input
        for i in range(n - 1, 0, -1):
            conv = nn.ConvTranspose2d(gf * 2**i * widen, gf * 2 ** (i - 1), 4, 2, 1, bias=False)
            up.append(nn.Sequential(conv, _disco_bn(gf * 2 ** (i - 1)), nn.ReLU()))
        last = nn.Sequential(nn.ConvTranspose2d(gf * widen, channels, 4, 2, 1), nn.Tanh())
        if skips:  # the U-Net layout _unet_forward runs (down, up, last; the bottleneck has no mirror)
            self.down, self.up, self.last = nn.ModuleList(down), nn.ModuleList(up), last
            keras_init(self)
        else:  # one flat Sequential: the state-dict keys (net.0 …) of checkpoints made before the option
            self.net = keras_init(nn.Sequential(*(layer for block in (*down, *up, last) for layer in block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_square(x, self.image_size, type(self).__name__)
        return _unet_forward(self, x) if self.skips else self.net(x)


class DiscoGANDiscriminator(nn.Module):
    """DiscoGAN chapter D (64², df = 64): Conv 64/128/256/512 k4 s2 (BN from the 2nd, LReLU 0.2) → Conv 1 k4
    valid → one **raw logit** per image (N×1×1×1).

    Chapter bug 2(a) fixed: tf.contrib's implicit ReLU on the last conv made every logit ≥ 0 (σ ≥ 0.5, D could
    never call an image fake); here the logit is linear. Bug 2(b) as in ``DiscoGANGenerator``.
    """

    def __init__(self, channels: int = 3, df: int = 64, image_size: int = 64) -> None:
        super().__init__()
        n = _disco_depth(image_size, type(self).__name__)
        self.image_size = image_size
        layers: list[nn.Module] = [nn.Conv2d(channels, df, 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, n):
            layers += [nn.Conv2d(df * 2 ** (i - 1), df * 2**i, 4, 2, 1, bias=False), _disco_bn(df * 2**i)]
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(df * 2 ** (n - 1), 1, 4, 1, 0))
        self.net = keras_init(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_square(x, self.image_size, type(self).__name__)
        return self.net(x)
