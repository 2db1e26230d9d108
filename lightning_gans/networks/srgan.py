"""SRGAN networks (*GAN Projects* ch. 5, reference §6; Ledig et al. 2017, "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network") and the VGG19 feature network of the content loss.

Keras → PyTorch: ``BatchNormalization(momentum=0.8)`` is ``momentum=0.2, eps=1e-3``; Conv ``same`` with stride 1
is ``padding=k//2``; stride-2 k3 ``same`` convs use ``padding=1`` (same output size as TF, whose extra padding
sits bottom/right: a one-pixel shift, reference §2); ``Dense`` on a 4-D tensor is a 1×1 conv; Keras
``glorot_uniform`` init with zero biases (``keras_init``). The discriminator returns *logits*; the sigmoid of the
chapter's last layer lives in the model's losses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from lightning_gans.errors import VGGWeightsError  # noqa: F401 - re-exported (old import path)
from lightning_gans.networks.init import keras_init

KERAS_BN = {"momentum": 0.2, "eps": 1e-3}  # Keras BatchNormalization(momentum=0.8), epsilon 1e-3


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "prelu":
        return nn.PReLU(channels)
    raise ValueError(f"activation must be 'relu' (the chapter) or 'prelu' (Ledig et al.), got {kind!r}")


class ResidualBlock(nn.Module):
    """Conv 64 k3 → act → BN → Conv 64 k3 → BN → + input (the chapter's code order, ``order="conv_act_bn"``);
    ``order="conv_bn_act"`` is the paper's Conv → BN → act (Ledig et al., Fig. 4)."""

    def __init__(self, channels: int, activation: str, order: str) -> None:
        super().__init__()
        if order not in ("conv_act_bn", "conv_bn_act"):
            raise ValueError(f"block_order must be 'conv_act_bn' (the chapter) or 'conv_bn_act', got {order!r}")
        conv1, conv2 = (nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2))
        act, bn1, bn2 = (
            _activation(activation, channels),
            nn.BatchNorm2d(channels, **KERAS_BN),
            nn.BatchNorm2d(channels, **KERAS_BN),
        )
        first = [conv1, act, bn1] if order == "conv_act_bn" else [conv1, bn1, act]
        self.body = nn.Sequential(*first, conv2, bn2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _fold(weight: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """The 3-tap kernels along ``dim`` seen by the two output phases of a nearest ×2 upsample: phase 0 reads
    low-res taps (i−1, i) with weights (w0, w1 + w2); phase 1 reads (i, i + 1) with (w0 + w1, w2)."""
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack([w0, w1 + w2], dim), torch.stack([w0 + w1, w2], dim)


class NearestUpsampleConv(nn.Conv2d):
    """``Conv2d(k3, padding 1)(Upsample(×2, nearest)(x))`` — the chapter's ``UpSampling2D`` → ``Conv2D`` — computed
    exactly at the low resolution: each of the four output phases is a 2×2 convolution with folded weights, 16
    instead of 36 multiply-adds per input channel and low-res pixel, and no 4× larger upsampled tensor. Same
    parameters (and state-dict entries) as the ``Conv2d``; the folding is differentiable."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        padded = nn.functional.pad(x, (1, 1, 1, 1))
        phases = []
        for a, rows in enumerate(_fold(self.weight, 2)):
            for b, kernel in enumerate(_fold(rows, 3)):
                window = padded[..., a : a + height + 1, b : b + width + 1]
                phases.append(nn.functional.conv2d(window, kernel, self.bias))
        out = torch.stack(phases, dim=2).unflatten(2, (2, 2))  # N×C×2(a)×2(b)×H×W
        return out.permute(0, 1, 4, 2, 5, 3).reshape(x.shape[0], -1, 2 * height, 2 * width)


class SRResNetGenerator(nn.Module):
    """The SRGAN / SRResNet generator: LR (B×C×h×w) → SR (B×C×4h×4w) in [-1, 1] (tanh).

    The chapter: Conv 64 k9 → ReLU → 16 residual blocks → Conv 64 k3 → BN → + long skip → 2 × (Up×2 nearest →
    Conv 256 k3 → ReLU) → Conv C k9 → tanh. Paper options: ``activation="prelu"``, ``upsample="pixel_shuffle"``
    (Conv 256 k3 → PixelShuffle ×2 → 64 channels → act, the sub-pixel convolution of Shi et al. 2016),
    ``block_order="conv_bn_act"``. ``num_upsample`` ×2 stages give the scale factor 2^num_upsample.
    """

    def __init__(
        self,
        channels: int = 3,
        features: int = 64,
        num_blocks: int = 16,
        upsample_features: int = 256,
        num_upsample: int = 2,
        activation: Literal["relu", "prelu"] = "relu",
        upsample: Literal["nearest", "pixel_shuffle"] = "nearest",
        block_order: Literal["conv_act_bn", "conv_bn_act"] = "conv_act_bn",
    ) -> None:
        super().__init__()
        if upsample not in ("nearest", "pixel_shuffle"):
            raise ValueError(f"upsample must be 'nearest' (the chapter) or 'pixel_shuffle', got {upsample!r}")
        if upsample == "pixel_shuffle" and upsample_features % 4:
            raise ValueError(f"pixel_shuffle needs upsample_features divisible by 4, got {upsample_features}")
        self.channels, self.scale = channels, 2**num_upsample
        self.head = nn.Sequential(nn.Conv2d(channels, features, 9, padding=4), _activation(activation, features))
        blocks = [ResidualBlock(features, activation, block_order) for _ in range(num_blocks)]
        self.residual = nn.Sequential(*blocks)
        self.post = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.BatchNorm2d(features, **KERAS_BN))
        stages: list[nn.Module] = []
        width = features
        for _ in range(num_upsample):
            if upsample == "nearest":  # Up×2 nearest → Conv k3, computed at the low resolution (exact)
                stages.append(NearestUpsampleConv(width, upsample_features))
                width = upsample_features
            else:
                stages += [nn.Conv2d(width, upsample_features, 3, padding=1), nn.PixelShuffle(2)]
                width = upsample_features // 4
            stages.append(_activation(activation, width))
        self.upsample = nn.Sequential(*stages)
        self.tail = nn.Sequential(nn.Conv2d(width, channels, 9, padding=4), nn.Tanh())
        keras_init(self)

    def forward(self, lr: Tensor) -> Tensor:
        head = self.head(lr)
        body = self.post(self.residual(head)) + head
        return self.tail(self.upsample(body))


class SRGANDiscriminator(nn.Module):
    """The SRGAN discriminator on HR images → logits.

    Conv 64 k3 s1 → LReLU 0.2, then 7 × Conv k3 (64 s2, 128 s1, 128 s2, 256 s1, 256 s2, 512 s1, 512 s2) with
    BN and LReLU 0.2 — BN *after* the activation as the chapter's code has it (``bn_position="after_act"``; the
    paper: ``"before_act"``). ``head="patch"`` (the chapter): Dense 1024 → LReLU → Dense 1 applied per position as
    1×1 convs → a (H/16)×(W/16) logit map (16×16 for 256² inputs). ``head="global"`` (the paper): Flatten →
    Dense 1024 → LReLU → Dense 1 → one logit per image (needs ``image_size``).
    """

    PLAN = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))

    def __init__(
        self,
        channels: int = 3,
        head: Literal["patch", "global"] = "patch",
        image_size: int | None = None,
        bn_position: Literal["after_act", "before_act"] = "after_act",
        dense_features: int = 1024,
    ) -> None:
        super().__init__()
        if head not in ("patch", "global"):
            raise ValueError(f"head must be 'patch' (the chapter) or 'global' (Ledig et al.), got {head!r}")
        if bn_position not in ("after_act", "before_act"):
            raise ValueError(f"bn_position must be 'after_act' or 'before_act', got {bn_position!r}")
        layers: list[nn.Module] = [nn.Conv2d(channels, 64, 3, padding=1), nn.LeakyReLU(0.2)]
        width, size = 64, image_size
        for out, stride in self.PLAN:
            conv, act, bn = (
                nn.Conv2d(width, out, 3, stride, padding=1),
                nn.LeakyReLU(0.2),
                nn.BatchNorm2d(out, **KERAS_BN),
            )
            layers += [conv, act, bn] if bn_position == "after_act" else [conv, bn, act]
            width = out
            size = None if size is None else (size - 1) // stride + 1
        self.body = nn.Sequential(*layers)
        if head == "patch":
            self.head = nn.Sequential(
                nn.Conv2d(width, dense_features, 1), nn.LeakyReLU(0.2), nn.Conv2d(dense_features, 1, 1)
            )
        else:
            if size is None:
                raise ValueError("head='global' flattens the feature map: set image_size (the HR size)")
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(width * size * size, dense_features),
                nn.LeakyReLU(0.2),
                nn.Linear(dense_features, 1),
            )
        keras_init(self)

    def forward(self, hr: Tensor) -> Tensor:
        return self.head(self.body(hr))


# ---------------------------------------------------------------------------------------------- VGG19 features
def _vgg19_layer_names() -> list[str]:
    """torchvision ``vgg19().features`` layer names: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, …"""
    from torchvision.models.vgg import cfgs

    names, block, index = [], 1, 1
    for item in cfgs["E"]:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


VGG19_LAYERS = _vgg19_layer_names()
KERAS_VGG_NAMES = {f"block{b}_conv{i}": f"relu{b}_{i}" for b in range(1, 6) for i in range(1, 5)}  # Keras: ReLU in conv
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_weights_file(weights_path: str | Path | None = None) -> Path:
    """``weights_path`` if given, else torchvision's file in the torch hub cache
    (``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``, where ``vgg19(weights=IMAGENET1K_V1)`` downloads it)."""
    if weights_path:
        return Path(weights_path).expanduser()
    from torchvision.models import VGG19_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_Weights.IMAGENET1K_V1.url).name


def vgg_layer_index(layer: str | int) -> int:
    """Index in ``vgg19().features`` of a layer name (``relu3_3``, Keras ``block3_conv3`` = its ReLU output)."""
    if isinstance(layer, int) or str(layer).isdigit():
        index = int(layer)
    else:
        name = KERAS_VGG_NAMES.get(str(layer), str(layer))
        if name not in VGG19_LAYERS:
            raise ValueError(f"unknown VGG19 layer {layer!r}; use e.g. relu3_3 (block3_conv3), relu5_4 or an index")
        index = VGG19_LAYERS.index(name)
    if not 0 <= index < len(VGG19_LAYERS):
        raise ValueError(f"VGG19 feature index must be in [0, {len(VGG19_LAYERS) - 1}], got {index}")
    return index


def check_vgg_weights(weights_path: str | Path | None = None) -> Path:
    """The weights file, or :class:`VGGWeightsError` naming it, where to put it, and the ``mse`` alternative."""
    path = vgg19_weights_file(weights_path)
    if path.is_file():
        return path
    from torchvision.models import VGG19_Weights

    raise VGGWeightsError(
        f"VGG19 ImageNet weights for the content loss not found: {path.name}\n"
        f"  Expected at: {path}\n"
        f"  Get it on a connected machine (torchvision.models.vgg19(weights='IMAGENET1K_V1') downloads it into the "
        f"torch hub cache, or wget {VGG19_Weights.IMAGENET1K_V1.url}) and copy it there (TORCH_HOME moves the "
        "cache), or pass --model.vgg_weights=/path/to/vgg19-dcbb9e9d.pth.\n"
        "  Or train without VGG: --model.content_loss=mse (pixel MSE, the SRResNet-MSE of Ledig et al.)."
    )


class VGGFeatures(nn.Module):
    """Frozen ImageNet VGG19 ``features[: index(layer) + 1]`` of [-1, 1] images (the content-loss network).

    The chapter feeds its [-1, 1] images to VGG19 unchanged — a bug: the ImageNet weights expect RGB in [0, 1]
    normalised by the ImageNet mean/std (torchvision's convention). Fixed here: x → ((x + 1)/2 − mean)/std;
    grey images are repeated to three channels. The layer cut is ``layer`` *inclusive*: the chapter's
    ``block3_conv3`` (Keras convs include their ReLU) is ``relu3_3`` = ``features[:16]``; Ledig et al.'s VGG54
    is ``relu5_4`` = ``features[:36]``.

    Weights come from a state dict saved by torchvision (``features.<i>.weight``/``bias`` keys; the classifier,
    if present, is ignored); only the layers up to the cut must be present.
    """

    def __init__(self, layer: str | int = "relu3_3", weights_path: str | Path | None = None, load: bool = True) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.layer_index = vgg_layer_index(layer)
        self.features = make_layers(cfgs["E"])[: self.layer_index + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if load:
            self.load_weights(check_vgg_weights(weights_path))
        self.requires_grad_(False).eval()

    def load_weights(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated download, not a state dict
            raise VGGWeightsError(f"could not read VGG19 weights {path}: {type(err).__name__}: {err}") from None
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        own = {f"features.{k}" for k in self.features.state_dict()}
        missing = sorted(own - set(wanted))
        if missing:
            raise VGGWeightsError(f"{path} is not a torchvision VGG19 state dict: missing {', '.join(missing[:4])}")
        self.load_state_dict({k: wanted[k] for k in own}, strict=False)

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)  # always inference mode (no dropout/BN here, but keep it explicit)

    def normalise(self, images: Tensor) -> Tensor:
        """[-1, 1] RGB (or grey) → ImageNet-normalised RGB."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return ((images + 1.0) * 0.5 - self.mean) / self.std

    def forward(self, images: Tensor) -> Tensor:
        return self.features(self.normalise(images))
